# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The compact policy: a small CNN per camera and a small transformer action expert.

:class:`CompactPolicyConfig` (torch-free) lives in ``configuration_compact``,
:class:`CompactFlowPolicy` in ``modeling_compact``; both are importable from here.
"""

from snapflow_ros.policies.compact.configuration_compact import CompactPolicyConfig

__all__ = ["CompactFlowPolicy", "CompactPolicyConfig"]


def __getattr__(name: str):
    if name == "CompactFlowPolicy":
        from snapflow_ros.policies.compact.modeling_compact import CompactFlowPolicy

        return CompactFlowPolicy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
