# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ONNX export of a policy and the runners that need neither torch nor LeRobot.

- :mod:`~snapflow_ros.export.onnx_export` (torch): ``snapflow export onnx``: the 1-NFE chunk as one
  graph, the k-step pieces (prefix, expert call, robot units), the round-trip check and int8.
- :mod:`~snapflow_ros.export.manifest` (numpy only): the export folder's ``manifest.json``.
- :mod:`~snapflow_ros.export.onnx_runner` (numpy + onnxruntime):
  :class:`~snapflow_ros.export.onnx_runner.OnnxPolicyRunner`, the interface of the PyTorch
  :class:`~snapflow_ros.runtime.policy_runner.PolicyRunner` over an export folder.

Importing this package imports none of them.
"""
