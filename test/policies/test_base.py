# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The policy protocol's hooks are declared on the base class, with their documented defaults.

A backend that implements only the model calls still saves (no config, no statistics, no extra
files), runs through the accelerated path (no capture shims, inputs moved to its device), and
refuses clearly to be rebuilt from a checkpoint.
"""

import pytest
import torch
from toy_policies import ToyFlowPolicy, toy_batch

from snapflow_ros.policies import registry
from snapflow_ros.policies.base import FlowMatchingPolicy
from snapflow_ros.policies.checkpoint import CheckpointError, export_checkpoint, load_policy

HOOKS = ("from_policy_config", "from_config", "policy_config_dict", "normalization_stats",
         "save_extra", "load_extra", "preprocess", "encode_preprocessed",
         "install_capture_shims")


def test_every_hook_the_checkpoint_and_runtime_call_is_declared_on_the_base_class():
    for name in HOOKS:
        assert callable(getattr(FlowMatchingPolicy, name)), name
        assert getattr(FlowMatchingPolicy, name).__doc__, name
        assert name not in vars(ToyFlowPolicy), f"the toy policy overrides {name}"


def test_a_policy_without_overrides_gets_the_documented_defaults(tmp_path):
    policy = ToyFlowPolicy()
    assert policy.policy_config_dict() == {}
    assert policy.normalization_stats() is None
    assert policy.save_extra(tmp_path) is None and policy.load_extra(tmp_path) is None
    assert list(tmp_path.iterdir()) == []  # the default extra hooks write nothing
    undo = policy.install_capture_shims()
    assert undo() is None
    batch = toy_batch(policy, 2)
    prepared = policy.preprocess(batch)
    assert prepared["state"].device == policy.device
    assert torch.equal(prepared["state"], batch["state"])
    with torch.no_grad():
        assert torch.equal(policy.encode_preprocessed(prepared), policy.encode(batch))
    with pytest.raises(NotImplementedError, match="from_policy_config"):
        ToyFlowPolicy.from_policy_config({}, policy.robot, None)
    with pytest.raises(NotImplementedError, match="from_policy_config"):
        ToyFlowPolicy.from_config({}, policy.robot, None)


def test_a_checkpoint_of_a_policy_that_cannot_be_rebuilt_fails_on_load_by_name(
        tmp_path, monkeypatch):
    monkeypatch.setitem(registry.POLICY_BACKENDS, "toy", registry.PolicyBackend("toy_policies"))
    path = export_checkpoint(ToyFlowPolicy(), tmp_path / "toy", stage="teacher", step=0)
    with pytest.raises(CheckpointError, match="ToyFlowPolicy.*from_policy_config"):
        load_policy(path)
