# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tiny LeRobot VLA backends (SmolVLA, PI0, PI05) built offline, for the tests of policies/.

The backbones are written in-process (a tiny SmolVLM folder, a tokenizer trained on a few
sentences, tiny PaliGemma / Gemma sizes): nothing is downloaded. Helpers here are plain
functions; each test module wraps them in its own fixtures.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import torch
from lerobot.policies.pi0 import modeling_pi0
from lerobot.policies.pi0.configuration_pi0 import PI0Config
from lerobot.policies.pi0.modeling_pi0 import PI0Policy
from lerobot.policies.pi05 import modeling_pi05
from lerobot.policies.pi05.configuration_pi05 import PI05Config
from lerobot.policies.pi05.modeling_pi05 import PI05Policy
from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

from snapflow_ros.policies.base import RobotInterface
from snapflow_ros.policies.lerobot_vla.offline_backbones import (
    TINY_PALIGEMMA_DIMS,
    train_tokenizer,
    write_smolvlm_backbone,
)
from snapflow_ros.policies.lerobot_vla.paligemma import paligemma_backbone_dims
from snapflow_ros.policies.normalization import NormalizationStats
from snapflow_ros.policies.registry import new_policy

KINDS = ("smolvla", "pi0", "pi05")
CHUNK = 8
MAX_DIM = 8
ROBOT = RobotInterface(joint_names=("shoulder", "elbow", "gripper"), camera_keys=("top",),
                       image_height=48, image_width=64)
STATS = NormalizationStats(state_mean=[0.1, -0.2, 0.5], state_std=[0.5, 0.4, 0.3],
                           action_mean=[0.0, 0.3, -0.1], action_std=[0.6, 0.2, 0.9],
                           state_q01=[-1.1, -1.1, -0.2], state_q99=[1.3, 0.7, 1.2],
                           action_q01=[-1.4, -0.2, -2.2], action_q99=[1.4, 0.8, 2.0])
"""Mean / std (SmolVLA, PI0) and q01 / q99 (PI05's QUANTILES) of a robot's state and action."""
STOCK = {
    "smolvla": (SmolVLAConfig, SmolVLAPolicy, None),
    "pi0": (PI0Config, PI0Policy, modeling_pi0),
    "pi05": (PI05Config, PI05Policy, modeling_pi05),
}
"""Stock LeRobot config and policy class of each kind, and the module PI0 / PI05 build in."""
TARGET_TIME_PREFIX = "model.target_time_embedding."


def write_backbones(root: Path) -> SimpleNamespace:
    """A tiny SmolVLM folder (``smolvlm``) and a tokenizer folder (``tokenizer``) under root."""
    return SimpleNamespace(smolvlm=write_smolvlm_backbone(root / "smolvlm"),
                           tokenizer=train_tokenizer(root / "tokenizer"))


def vla_options(kind: str, backbones: SimpleNamespace, **changes) -> dict:
    """LeRobotVLAConfig options of a tiny ``kind`` backend (``changes`` on top)."""
    overrides = {"max_state_dim": MAX_DIM, "max_action_dim": MAX_DIM}
    if kind == "smolvla":
        options = dict(vlm_model_name=str(backbones.smolvlm), image_size=64)
    else:
        options = dict(tokenizer_path=str(backbones.tokenizer), image_size=32)
        overrides.update(backbone_dims=TINY_PALIGEMMA_DIMS, tokenizer_max_length=24)
    options.update(chunk_size=CHUNK, lerobot_overrides=overrides)
    options.update(changes)
    return options


def build_vla(kind: str, backbones: SimpleNamespace, **changes):
    """A tiny ``kind`` backend for :data:`ROBOT` through the registry (seeded, time-sensitive)."""
    torch.manual_seed(0)
    policy = new_policy(kind, vla_options(kind, backbones, **changes), ROBOT, STATS)
    give_time_conditioning_weights(policy)
    return policy


def give_time_conditioning_weights(policy) -> None:
    """Make the time conditioning count, as pretrained weights do.

    PI05 zero-initialises its adaRMS layers, so a fresh model would ignore the time.
    """
    with torch.no_grad():
        for name, param in policy.model.named_parameters():
            if ".dense." in name:
                param.normal_(0.0, 0.2)


def raw_batch(rows: int = 3, seed: int = 0) -> dict:
    """A training batch for :data:`ROBOT`: uint8 images, state, tasks, actions, padding."""
    generator = torch.Generator().manual_seed(seed)
    is_pad = torch.zeros(rows, CHUNK, dtype=torch.bool)
    is_pad[0, CHUNK - 3:] = True
    return {
        "images": {"top": torch.randint(0, 256, (rows, 3, 48, 64), dtype=torch.uint8,
                                        generator=generator)},
        "state": torch.randn(rows, 3, generator=generator) * 0.3,
        "task": [("pick up the cube", "insert the peg", "open the drawer")[i % 3]
                 for i in range(rows)],
        "action": torch.randn(rows, CHUNK, 3, generator=generator) * 0.5,
        "action_is_pad": is_pad,
    }


def perturb_target_time(policy) -> None:
    """Give phi_s non-zero weights, as after SnapFlow training."""
    with torch.no_grad():
        for param in policy.target_time_parameters():
            param.add_(torch.randn_like(param) * 0.5)


def target_time_state(policy) -> dict[str, torch.Tensor]:
    """The phi_s entries of ``policy``'s state dict."""
    return {k: v for k, v in policy.state_dict().items() if k.startswith(TARGET_TIME_PREFIX)}


def stock_twin(kind: str, policy):
    """The stock LeRobot policy (no phi_s) with the same config and weights as ``policy``."""
    config_cls, policy_cls, module = STOCK[kind]
    ours = policy.lerobot_policy.config
    stock_fields = {f.name for f in dataclasses.fields(config_cls) if f.init}
    config = config_cls(**{f.name: getattr(ours, f.name) for f in dataclasses.fields(ours)
                           if f.name in stock_fields})
    if module is None:
        stock = policy_cls(config)
    else:
        with paligemma_backbone_dims(module, ours):
            stock = policy_cls(config)
    state = {k: v for k, v in policy.state_dict().items()
             if not k.startswith(TARGET_TIME_PREFIX)}
    stock.load_state_dict(state, strict=True)
    return stock.eval()


def lerobot_chunk(lerobot_policy, preprocessor, postprocessor, batch, noise):
    """Raw batch -> actions exactly as LeRobot runs a policy (processors around the policy)."""
    observation = {"observation.state": batch["state"],
                   "observation.images.top": batch["images"]["top"].float() / 255.0,
                   "task": list(batch["task"])}
    with torch.no_grad():
        actions = lerobot_policy.predict_action_chunk(preprocessor(observation), noise=noise)
    return postprocessor(actions)


def check_phi_s_enters_the_time_half(policy) -> None:
    """SmolVLA / PI0: phi_s enters the time half of ``action_time_mlp_in``'s input.

    With phi_s set to a known constant, the input ``cat[action_emb, time_emb]`` keeps its action
    half and its time half moves by exactly that constant at every token; the velocity changes.
    """
    core = policy.lerobot_policy.model
    width = core.action_in_proj.out_features
    phi_s = core.target_time_embedding
    inputs = []
    hook = core.action_time_mlp_in.register_forward_hook(
        lambda module, args, out: inputs.append(args[0].detach().clone()))
    constant = torch.linspace(-1.0, 1.0, width)
    try:
        with torch.no_grad():
            context = policy.encode(raw_batch(rows=2))
            x = torch.randn(2, policy.chunk_size, policy.action_dim,
                            generator=torch.Generator().manual_seed(0))
            t, s = torch.tensor([0.7, 1.0]), torch.tensor([0.2, 0.0])
            before = policy.velocity(x, s, t, context)
            phi_s.out.bias.copy_(constant)  # phi_s(s) = constant for every s
            after = policy.velocity(x, s, t, context)
    finally:
        hook.remove()
        with torch.no_grad():
            phi_s.out.bias.zero_()
    plain, shifted = inputs
    assert plain.shape[-1] == 2 * width
    assert torch.equal(shifted[..., :width], plain[..., :width])  # the action half
    moved = shifted[..., width:] - plain[..., width:]
    assert torch.allclose(moved, constant.expand_as(moved), atol=1e-5)
    assert not torch.allclose(after, before)  # and the velocity sees it


def export_tiny_vla(root: Path, kind: str, task: str):
    """A tiny ``kind`` VLA and its ONNX export under ``root``: ``(policy, folder, manifest)``."""
    from snapflow_ros.export.onnx_export import OnnxExportConfig, export_policy_onnx

    policy = build_vla(kind, write_backbones(root)).eval()
    manifest = export_policy_onnx(policy, root / "onnx", OnnxExportConfig(task=task),
                                  log=lambda line: None)
    return policy, root / "onnx", manifest
