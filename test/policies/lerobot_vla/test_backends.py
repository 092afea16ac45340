# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""SmolVLA, PI0 and PI05 as SnapFlow policies, offline, with tiny backbones built in fixtures.

Each backend is built once per module (a tiny SmolVLM folder, or tiny PaliGemma / Gemma sizes
and a tokenizer trained in-process) and reset to its initial weights before every test.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
from types import SimpleNamespace

import pytest
import torch
from lerobot.policies.factory import make_pre_post_processors
from lerobot.policies.pi0 import modeling_pi0
from lerobot.policies.pi0.configuration_pi0 import PI0Config
from lerobot.policies.pi0.modeling_pi0 import PI0Policy
from lerobot.policies.pi05 import modeling_pi05
from lerobot.policies.pi05.configuration_pi05 import PI05Config
from lerobot.policies.pi05.modeling_pi05 import PI05Policy
from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
from safetensors.torch import load_file, save_file

from snapflow_ros.policies.base import RobotInterface
from snapflow_ros.policies.checkpoint import CheckpointError, load_policy, save_checkpoint
from snapflow_ros.policies.lerobot_vla import (
    LeRobotVLAConfig,
    TargetTimeDroppedError,
    load_stock_checkpoint,
    policy_class_for,
    verify_target_time_loaded,
)
from snapflow_ros.policies.lerobot_vla.common import LEROBOT_DIR
from snapflow_ros.policies.lerobot_vla.modeling_snapflow import (
    SNAPFLOW_POLICIES,
    paligemma_backbone_dims,
)
from snapflow_ros.policies.lerobot_vla.offline_backbones import (
    TINY_PALIGEMMA_DIMS,
    train_tokenizer,
    write_smolvlm_backbone,
)
from snapflow_ros.policies.normalization import NormalizationStats
from snapflow_ros.snapflow.objective import SnapFlowConfig, snapflow_loss
from snapflow_ros.snapflow.sampler import predict_action_chunk

KINDS = ("smolvla", "pi0", "pi05")
CHUNK = 8
MAX_DIM = 8
ROBOT = RobotInterface(joint_names=("shoulder", "elbow", "gripper"), camera_keys=("top",),
                       image_height=48, image_width=64)
STATS = NormalizationStats(state_mean=[0.1, -0.2, 0.5], state_std=[0.5, 0.4, 0.3],
                           action_mean=[0.0, 0.3, -0.1], action_std=[0.6, 0.2, 0.9])
STOCK = {
    "smolvla": (SmolVLAConfig, SmolVLAPolicy, None),
    "pi0": (PI0Config, PI0Policy, modeling_pi0),
    "pi05": (PI05Config, PI05Policy, modeling_pi05),
}
TARGET_TIME_PREFIX = "model.target_time_embedding."


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    root = tmp_path_factory.mktemp("backbones")
    return SimpleNamespace(smolvlm=write_smolvlm_backbone(root / "smolvlm"),
                           tokenizer=train_tokenizer(root / "tokenizer"))


def vla_config(kind: str, backbones, **changes) -> LeRobotVLAConfig:
    overrides = {"max_state_dim": MAX_DIM, "max_action_dim": MAX_DIM}
    if kind == "smolvla":
        options = dict(vlm_model_name=str(backbones.smolvlm), image_size=64)
    else:
        options = dict(tokenizer_path=str(backbones.tokenizer), image_size=32)
        overrides.update(backbone_dims=TINY_PALIGEMMA_DIMS, tokenizer_max_length=24)
    options.update(chunk_size=CHUNK, lerobot_overrides=overrides)
    options.update(changes)
    return LeRobotVLAConfig(**options)


@pytest.fixture(scope="module", params=KINDS)
def built(request, backbones, tmp_path_factory):
    kind = request.param
    torch.manual_seed(0)
    policy = policy_class_for(kind).build(vla_config(kind, backbones), ROBOT, STATS)
    give_time_conditioning_weights(policy)
    initial = {k: v.clone() for k, v in policy.state_dict().items()}
    return SimpleNamespace(kind=kind, policy=policy, initial=initial, backbones=backbones,
                           root=tmp_path_factory.mktemp(f"{kind}_checkpoints"))


@pytest.fixture
def vla(built):
    """The module's backend, back at its initial weights (phi_s zero) and in eval mode."""
    built.policy.load_state_dict(built.initial)
    built.policy.lerobot_policy.target_time.attach()
    for param in built.policy.parameters():
        param.requires_grad_(True)
    built.policy.eval()
    return built


def give_time_conditioning_weights(policy) -> None:
    """Make the time conditioning count, as pretrained weights do.

    PI05 zero-initialises its adaRMS layers, so a fresh model would ignore the time.
    """
    with torch.no_grad():
        for name, param in policy.model.named_parameters():
            if ".dense." in name:
                param.normal_(0.0, 0.2)


def raw_batch(rows: int = 3, seed: int = 0) -> dict:
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


def stock_twin(vla):
    """The stock LeRobot policy (no phi_s) with the same config and weights."""
    config_cls, policy_cls, module = STOCK[vla.kind]
    ours = vla.policy.lerobot_policy.config
    stock_fields = {f.name for f in dataclasses.fields(config_cls) if f.init}
    config = config_cls(**{f.name: getattr(ours, f.name) for f in dataclasses.fields(ours)
                           if f.name in stock_fields})
    if module is None:
        stock = policy_cls(config)
    else:
        with paligemma_backbone_dims(module, ours):
            stock = policy_cls(config)
    state = {k: v for k, v in vla.policy.state_dict().items()
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


# -- phi_s ----------------------------------------------------------------------------------------

def test_attaching_target_time_leaves_every_output_bit_identical(vla):
    policy = vla.policy
    batch = raw_batch()
    with torch.no_grad():
        context = policy.encode(batch)
        x = torch.randn(3, CHUNK, MAX_DIM)
        times = [(1.0, 1.0), (0.0, 1.0), (0.5, 0.5), (0.2, 0.7), (0.0, 0.3)]
        attached = [policy.velocity(x, torch.full((3,), s), torch.full((3,), t), context)
                    for s, t in times]
        policy.lerobot_policy.target_time.detach()
        stock = [policy.velocity(x, torch.full((3,), t), torch.full((3,), t), context)
                 for _, t in times]
        policy.lerobot_policy.target_time.attach()
    for (s, t), with_phi, without in zip(times, attached, stock):
        assert torch.equal(with_phi, without), f"(s, t) = ({s}, {t})"
    # LeRobot's own pipeline, against the stock LeRobot class holding the same weights.
    noise = torch.randn(3, CHUNK, MAX_DIM)
    stock_policy = stock_twin(vla)
    for steps in (1, 10):
        policy.set_lerobot_num_steps(steps)
        stock_policy.config.num_steps = stock_policy.config.num_inference_steps = steps
        ours = lerobot_chunk(policy.lerobot_policy, policy.preprocessor, policy.postprocessor,
                             batch, noise)
        theirs = lerobot_chunk(stock_policy, policy.preprocessor, policy.postprocessor,
                               batch, noise)
        assert torch.equal(ours, theirs), f"{steps} steps"


def test_target_time_changes_the_velocity_once_trained(vla):
    policy = vla.policy
    perturb_target_time(policy)
    batch = raw_batch()
    x = torch.randn(3, CHUNK, MAX_DIM)
    ones = torch.ones(3)
    with torch.no_grad():
        context = policy.encode(batch)
        local = policy.velocity(x, ones, ones, context)
        jump = policy.velocity(x, torch.zeros(3), ones, context)
    assert not torch.allclose(local, jump)


# -- training -------------------------------------------------------------------------------------

def test_snapflow_step_changes_no_vlm_parameter(vla):
    policy = vla.policy
    prefix = policy.prefix_parameters()
    trainable = policy.trainable_parameters("snapflow")
    assert prefix and trainable
    assert not {id(p) for p in prefix} & {id(p) for p in trainable}
    assert {id(p) for p in policy.target_time_parameters()} <= {id(p) for p in trainable}
    for param in prefix:
        param.requires_grad_(False)
    before_prefix = [p.detach().clone() for p in prefix]
    before_trainable = [p.detach().clone() for p in trainable]
    policy.train()
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    loss, metrics = snapflow_loss(policy, raw_batch(rows=4), SnapFlowConfig(alpha=0.5),
                                  generator=torch.Generator().manual_seed(1))
    loss.backward()
    optimizer.step()
    assert metrics["fm_fraction"] == 0.5
    assert all(torch.equal(a, p) for a, p in zip(before_prefix, prefix))
    changed = [not torch.equal(a, p) for a, p in zip(before_trainable, trainable)]
    assert sum(changed) > len(changed) // 2
    assert any(not torch.equal(a, p) for a, p in zip(
        before_trainable, trainable) if any(p is q for q in policy.target_time_parameters()))


def test_loss_mask_hides_padded_steps_and_padded_action_dims(vla):
    policy = vla.policy
    batch = raw_batch()
    x0, mask = policy.normalized_action_target(batch)
    assert x0.shape == mask.shape == (3, CHUNK, MAX_DIM)
    assert torch.all(mask[:, :, 3:] == 0) and torch.all(x0[:, :, 3:] == 0)
    assert torch.all(mask[0, CHUNK - 3:] == 0) and torch.all(mask[1:, :, :3] == 1)
    expected = (batch["action"] - torch.tensor(STATS.action_mean)) / torch.tensor(STATS.action_std)
    torch.testing.assert_close(x0[:, :, :3], expected)
    torch.testing.assert_close(policy.to_robot_actions(x0), batch["action"])


def test_queries_on_selected_rows_of_one_context_match_the_full_batch(vla):
    policy = vla.policy
    with torch.no_grad():
        context = policy.encode(raw_batch())
        shapes = [k.shape for k in context["keys"]]
        x = torch.randn(3, CHUNK, MAX_DIM)
        t = torch.tensor([0.9, 0.4, 0.7])
        full = policy.velocity(x, t, t, context)
        again = policy.velocity(x, t, t, context)
        rows = torch.tensor([2, 0])
        part = policy.velocity(x[rows], t[rows], t[rows], policy.select_context(context, rows))
    assert [k.shape for k in context["keys"]] == shapes  # SmolVLA's crop left it intact
    assert torch.equal(full, again)
    torch.testing.assert_close(part, full[rows], rtol=1e-5, atol=1e-5)


def test_calls_from_two_threads_are_serialised_not_interleaved(vla):
    policy = vla.policy
    batch = raw_batch()
    x = torch.randn(3, CHUNK, MAX_DIM)
    t = torch.full((3,), 0.6)
    with torch.no_grad():
        expected = policy.velocity(x, t, t, policy.encode(batch))
    results, errors = [], []

    def worker():
        try:
            with torch.no_grad():
                for _ in range(3):
                    results.append(policy.velocity(x, t, t, policy.encode(batch)))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 6 and all(torch.equal(r, expected) for r in results)


# -- sampling -------------------------------------------------------------------------------------

def test_one_and_ten_step_sampling_run_from_raw_observations(vla):
    policy = vla.policy
    perturb_target_time(policy)
    batch = {k: v for k, v in raw_batch().items() if k not in ("action", "action_is_pad")}
    noise = torch.randn(3, CHUNK, MAX_DIM)
    one = predict_action_chunk(policy, batch, num_steps=1, mode="jump", noise=noise)
    ten = predict_action_chunk(policy, batch, num_steps=10, mode="jump", noise=noise)
    euler = predict_action_chunk(policy, batch, num_steps=10, mode="euler", noise=noise)
    for actions in (one, ten, euler):
        assert actions.shape == (3, CHUNK, 3) and torch.isfinite(actions).all()
    assert not torch.allclose(one, ten)
    # 1 NFE is exactly eps - F(eps, 0, 1), un-normalised by LeRobot's postprocessor ...
    with torch.no_grad():
        jump = noise - policy.velocity(noise, torch.zeros(3), torch.ones(3), policy.encode(batch))
    assert torch.equal(one, policy.to_robot_actions(jump))
    # ... and what LeRobot's own pipeline gives with one Euler step of the SnapFlow policy.
    policy.set_lerobot_num_steps(1)
    lerobot = lerobot_chunk(policy.lerobot_policy, policy.preprocessor, policy.postprocessor,
                            batch, noise)
    assert torch.equal(one, lerobot)


def test_lerobot_step_count_is_read_where_each_model_reads_it(vla):
    policy = vla.policy
    calls = []
    denoise = policy.model.denoise_step
    policy.model.denoise_step = lambda *a, **k: calls.append(1) or denoise(*a, **k)
    try:
        policy.set_lerobot_num_steps(3)
        lerobot_chunk(policy.lerobot_policy, policy.preprocessor, policy.postprocessor,
                      raw_batch(), torch.randn(3, CHUNK, MAX_DIM))
    finally:
        del policy.model.denoise_step
    assert len(calls) == 3


# -- checkpoints ----------------------------------------------------------------------------------

def target_time_state(policy) -> dict[str, torch.Tensor]:
    return {k: v for k, v in policy.state_dict().items() if k.startswith(TARGET_TIME_PREFIX)}


def assert_same_target_time(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a
    assert all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def test_save_load_round_trips_target_time_through_lerobot_and_ours(vla):
    policy = vla.policy
    perturb_target_time(policy)
    expected = target_time_state(policy)
    checkpoint = save_checkpoint(policy, vla.root / "run", stage="snapflow", step=7)
    ours = load_policy(checkpoint, expected_robot=ROBOT)
    assert type(ours) is type(policy)
    assert_same_target_time(expected, target_time_state(ours))
    batch = raw_batch()
    noise = torch.randn(3, CHUNK, MAX_DIM)
    torch.testing.assert_close(
        predict_action_chunk(ours, batch, num_steps=1, noise=noise),
        predict_action_chunk(policy, batch, num_steps=1, noise=noise), rtol=0, atol=0)
    # The same checkpoint, through LeRobot's API (policy and processors, offline).
    lerobot_dir = checkpoint / LEROBOT_DIR
    loaded = SNAPFLOW_POLICIES[vla.kind].from_pretrained(lerobot_dir)
    assert_same_target_time(expected, target_time_state(loaded))
    preprocessor, postprocessor = make_pre_post_processors(loaded.config,
                                                           pretrained_path=str(lerobot_dir))
    policy.set_lerobot_num_steps(1)
    loaded.config.num_steps = loaded.config.num_inference_steps = 1
    torch.testing.assert_close(
        lerobot_chunk(loaded, preprocessor, postprocessor, batch, noise),
        lerobot_chunk(policy.lerobot_policy, policy.preprocessor, policy.postprocessor, batch,
                      noise), rtol=0, atol=0)
    # LeRobot's save_pretrained -> from_pretrained.
    policy.lerobot_policy.save_pretrained(vla.root / "lerobot_native")
    native = SNAPFLOW_POLICIES[vla.kind].from_pretrained(vla.root / "lerobot_native")
    assert_same_target_time(expected, target_time_state(native))


def test_loading_a_snapflow_checkpoint_by_a_path_that_drops_target_time_is_detected(vla):
    policy = vla.policy
    perturb_target_time(policy)
    checkpoint = save_checkpoint(policy, vla.root / "drop", stage="snapflow", step=1)
    lerobot_dir = checkpoint / LEROBOT_DIR
    _, stock_cls, module = STOCK[vla.kind]
    # Stock LeRobot class on the SnapFlow checkpoint: refused while it is built.
    with pytest.raises(TargetTimeDroppedError, match="phi_s"):
        stock_cls.from_pretrained(lerobot_dir)
    # The config relabelled as stock: LeRobot loads it silently; the drop is then detected.
    relabelled = vla.root / "relabelled"
    shutil.copytree(lerobot_dir, relabelled, symlinks=False)
    config = json.loads((relabelled / "config.json").read_text())
    config["type"] = vla.kind
    for key in ("target_time_hidden_dim", "lerobot_sampling", "tokenizer_name", "backbone_dims"):
        config.pop(key, None)
    (relabelled / "config.json").write_text(json.dumps(config))
    if module is None:
        stock = stock_cls.from_pretrained(relabelled)
    else:
        with paligemma_backbone_dims(module, policy.lerobot_policy.config):
            stock = stock_cls.from_pretrained(relabelled)
    with pytest.raises(TargetTimeDroppedError, match="drops"):
        verify_target_time_loaded(stock, relabelled)
    with pytest.raises(TargetTimeDroppedError, match="phi_s"):
        load_stock_checkpoint(relabelled)
    # A snapflow checkpoint whose weights lost phi_s: both loaders refuse it.
    stripped = vla.root / "stripped"
    shutil.copytree(lerobot_dir, stripped, symlinks=False)
    weights = load_file(str(stripped / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if not k.startswith(TARGET_TIME_PREFIX)},
              str(stripped / "model.safetensors"))
    with pytest.raises((TargetTimeDroppedError, RuntimeError), match="target_time|phi_s"):
        SNAPFLOW_POLICIES[vla.kind].from_pretrained(stripped)
    shutil.copy(stripped / "model.safetensors", checkpoint / "model.safetensors")
    info = json.loads((checkpoint / "info.json").read_text())
    info["weights_bytes"] = (checkpoint / "model.safetensors").stat().st_size
    (checkpoint / "info.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="phi_s"):
        load_policy(checkpoint)


def test_stock_lerobot_checkpoint_loads_as_the_teacher(vla):
    policy = vla.policy
    stock = stock_twin(vla)
    folder = vla.root / "stock_checkpoint"
    stock.save_pretrained(folder)
    policy.preprocessor.save_pretrained(folder)
    policy.postprocessor.save_pretrained(folder)
    config = vla_config(vla.kind, vla.backbones, pretrained_path=str(folder))
    teacher = policy_class_for(vla.kind).build(config, ROBOT, STATS)
    assert all(torch.equal(p, torch.zeros_like(p)) for p in
               (teacher.model.target_time_embedding.out.weight,
                teacher.model.target_time_embedding.out.bias))
    batch = raw_batch()
    noise = torch.randn(3, CHUNK, MAX_DIM)
    for steps, mode in ((1, "jump"), (10, "euler")):
        torch.testing.assert_close(
            predict_action_chunk(teacher, batch, num_steps=steps, mode=mode, noise=noise),
            predict_action_chunk(policy, batch, num_steps=steps, mode=mode, noise=noise),
            rtol=0, atol=0)


# -- options --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["smolvla", "pi05"])
def test_bfloat16_gradient_checkpointing_and_small_images_train_and_sample(kind, backbones):
    config = vla_config(kind, backbones, dtype="bfloat16", gradient_checkpointing=True,
                        image_size=32)
    policy = policy_class_for(kind).build(config, ROBOT, STATS)
    dtypes = {p.dtype for p in policy.model.parameters()}
    assert torch.bfloat16 in dtypes
    for param in policy.prefix_parameters():
        param.requires_grad_(False)
    policy.train()
    loss, _ = snapflow_loss(policy, raw_batch(), SnapFlowConfig(),
                            generator=torch.Generator().manual_seed(0))
    loss.backward()
    grads = [p.grad for p in policy.trainable_parameters("snapflow") if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    actions = predict_action_chunk(policy.eval(), raw_batch(), num_steps=1)
    assert actions.shape == (3, CHUNK, 3) and torch.isfinite(actions).all()
