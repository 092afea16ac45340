# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The one list of policy types: lookups, clear errors, and building a new policy of a type."""

import subprocess
import sys

import pytest

from snapflow_ros.policies import registry
from snapflow_ros.policies.base import RobotInterface
from snapflow_ros.policies.compact.modeling_compact import CompactFlowPolicy

ROBOT = RobotInterface(joint_names=("shoulder", "elbow"), camera_keys=("top",),
                       image_height=32, image_width=32)


def test_registry_reports_unknown_and_unimportable_backends(monkeypatch):
    with pytest.raises(registry.UnknownPolicyTypeError, match="known types: .*compact"):
        registry.policy_class("nope")
    monkeypatch.setitem(registry.POLICY_BACKENDS, "ghost",
                        registry.PolicyBackend("snapflow_ros.policies.no_such_backend"))
    with pytest.raises(registry.UnknownPolicyTypeError, match="no_such_backend"):
        registry.policy_class("ghost")
    monkeypatch.setitem(registry.POLICY_BACKENDS, "phantom",
                        registry.PolicyBackend("snapflow_ros.policies.compact.modeling_compact"))
    with pytest.raises(registry.UnknownPolicyTypeError, match="no policy class"):
        registry.policy_class("phantom")
    assert registry.policy_class("compact") is CompactFlowPolicy


def test_every_registered_type_names_a_class_recording_that_type():
    assert registry.policy_types() == ("compact", "pi0", "pi05", "smolvla")
    assert registry.lerobot_policy_types() == ("pi0", "pi05", "smolvla")
    for policy_type in registry.policy_types():
        cls = registry.policy_class(policy_type)
        assert cls.policy_type == policy_type
        # A LeRobot backend wraps the LeRobot type of the same (stock) name.
        if policy_type in registry.lerobot_policy_types():
            assert cls.lerobot_policy_class.name == f"snapflow_{policy_type}"


def test_new_policy_builds_from_config_options_and_rejects_unknown_ones():
    policy = registry.new_policy("compact", {"chunk_size": 6, "hidden_dim": 32}, ROBOT, None)
    assert isinstance(policy, CompactFlowPolicy)
    assert policy.chunk_size == 6 and policy.config.hidden_dim == 32
    assert policy.robot == ROBOT
    with pytest.raises(registry.UnknownPolicyTypeError, match="known types"):
        registry.new_policy("diffusion_v9", {}, ROBOT, None)
    with pytest.raises(registry.ConfigError, match="unknown CompactPolicyConfig option"):
        registry.new_policy("compact", {"chunk": 6}, ROBOT, None)


def test_the_registry_imports_no_backend_and_no_torch_until_asked():
    code = ("import sys; import snapflow_ros.policies.registry as r; r.policy_types(); "
            "print(sorted(m for m in ('torch', 'lerobot') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
