# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Each LeRobot VLA backend built once per test module, reset before every test.

``vla`` is the module's backend (parametrised over SmolVLA, PI0 and PI05) back at its initial
weights (phi_s zero) and in eval mode.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from vla_fixtures import KINDS, build_vla, write_backbones


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    return write_backbones(tmp_path_factory.mktemp("backbones"))


@pytest.fixture(scope="module", params=KINDS)
def built(request, backbones, tmp_path_factory):
    kind = request.param
    policy = build_vla(kind, backbones)
    initial = {k: v.clone() for k, v in policy.state_dict().items()}
    return SimpleNamespace(kind=kind, policy=policy, initial=initial, backbones=backbones,
                           root=tmp_path_factory.mktemp(f"{kind}_checkpoints"))


@pytest.fixture
def vla(built):
    built.policy.load_state_dict(built.initial)
    built.policy.lerobot_policy.target_time.attach()
    for param in built.policy.parameters():
        param.requires_grad_(True)
    built.policy.eval()
    return built
