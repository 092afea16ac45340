# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow train --policy-path <hub id>`` offline from a Hugging Face cache, then on a robot.

Tiny stock SmolVLA, PI0 and PI05 checkpoints are written with LeRobot's own
``save_pretrained`` and laid out in a temporary cache as ``hf download`` leaves them, beside
the backbone and tokenizer their configs name by hub id (SmolVLM2, PaliGemma's tokenizer).
With ``HF_HUB_OFFLINE=1`` a couple of training steps run from the hub id; the checkpoint then
loads in the policy runner (what the policy node configures) and in a real policy node process
with the cache gone. Something missing from the cache is one error line naming it and its
``hf download`` command, exit 2.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from bag_fixtures import write_demo_bag
from hub_fixtures import SMOLVLM, cache_repo, offline_cache
from vla_fixtures import KINDS, build_vla, stock_twin, vla_options, write_backbones

from snapflow_ros import cli
from snapflow_ros.policies.base import RobotInterface
from snapflow_ros.policies.checkpoint import read_checkpoint_info
from snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla import PALIGEMMA_TOKENIZER
from snapflow_ros.runtime.policy_runner import PolicyRunner

JOINTS = ("shoulder", "elbow", "gripper")
CAMERA = "/camera/top/image_raw"
IMAGE = (24, 32)
FLAGS = ["--camera-topic", CAMERA, "--action-topic", "/leader/joint_states", "--rate-hz", "50",
         "--stage", "teacher", "--steps", "2", "--batch-size", "2", "--device", "cpu",
         "--no-progress", "--set", "warmup_steps=0", "--set", "val_every=0",
         "--set", "val_fraction=0", "--set", f"data.image_height={IMAGE[0]}",
         "--set", f"data.image_width={IMAGE[1]}"]
BACKBONE = {"smolvla": SMOLVLM, "pi0": PALIGEMMA_TOKENIZER, "pi05": PALIGEMMA_TOKENIZER}
"""The hub id each published config relies on: SmolVLA's VLM, PI0 / PI05's tokenizer."""


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Stock checkpoints (SmolVLA naming its VLM by hub id), the backbones, the options."""
    root = tmp_path_factory.mktemp("published")
    backbones = write_backbones(root / "backbones")
    folders = {}
    for kind in KINDS:
        folder = root / kind
        stock_twin(kind, build_vla(kind, backbones)).save_pretrained(folder)
        if kind == "smolvla":
            config = json.loads((folder / "config.json").read_text())
            config["vlm_model_name"] = SMOLVLM
            (folder / "config.json").write_text(json.dumps(config))
        folders[kind] = folder
    sources = {SMOLVLM: backbones.smolvlm, PALIGEMMA_TOKENIZER: backbones.tokenizer}
    return folders, sources, backbones


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    return write_demo_bag(tmp_path_factory.mktemp("bags") / "episode_0", n_steps=16,
                          joint_names=JOINTS, camera_topics=(CAMERA,), image_size=IMAGE).path


def policy_config(kind: str, backbones, tmp_path) -> str:
    """A ``--config`` file with the tiny sizes of ``kind`` and no backbone path of its own."""
    options = vla_options(kind, backbones)
    options.pop("vlm_model_name", None)
    options.pop("tokenizer_path", None)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"policy": options}))
    return str(path)


def train(kind: str, policy_path: str, bag, backbones, tmp_path) -> tuple[int, str]:
    out = tmp_path / "run"
    code = cli.main(["train", "--bags", str(bag), "--policy", kind, "--policy-path",
                     policy_path, "--config", policy_config(kind, backbones, tmp_path),
                     "--out", str(out), *FLAGS])
    return code, out


@pytest.mark.parametrize("kind, style", [("smolvla", "HF_HUB_CACHE"), ("pi0", "HF_HOME"),
                                         ("pi05", "HF_HUB_CACHE")])
def test_a_hub_id_trains_offline_from_the_cache_and_its_checkpoint_runs_without_it(
        kind, style, published, bag, monkeypatch, tmp_path):
    folders, sources, backbones = published
    cache = offline_cache(monkeypatch, tmp_path, style)
    hub_id = f"lerobot/{kind}_tiny"
    cache_repo(cache, hub_id, folders[kind])
    cache_repo(cache, BACKBONE[kind], sources[BACKBONE[kind]])
    code, out = train(kind, hub_id, bag, backbones, tmp_path)
    assert code == 0
    info = read_checkpoint_info(out)
    assert info["info"]["step"] == 2 and info["config"]["policy_type"] == kind
    # The robot has no Hugging Face cache: the checkpoint carries its backbone's small files.
    shutil.rmtree(cache)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    robot = RobotInterface(joint_names=JOINTS, camera_keys=("top",), image_height=IMAGE[0],
                           image_width=IMAGE[1])
    runner = PolicyRunner(out, device="cpu", expected_robot=robot, seed=0)
    try:
        result = runner.warmup(iterations=1, task="pick up the cube")
    finally:
        runner.close()
    assert result.actions.shape == (runner.chunk_size, len(JOINTS))
    assert np.isfinite(result.actions).all()


def test_a_checkpoint_folder_trains_as_well(published, bag, monkeypatch, tmp_path):
    folders, sources, backbones = published
    cache = offline_cache(monkeypatch, tmp_path, "HF_HUB_CACHE")
    cache_repo(cache, SMOLVLM, sources[SMOLVLM])
    code, out = train("smolvla", str(folders["smolvla"]), bag, backbones, tmp_path)
    assert code == 0 and read_checkpoint_info(out)["info"]["step"] == 2


@pytest.mark.parametrize("kind", ["smolvla", "pi0"])
def test_a_missing_backbone_is_one_line_naming_its_download_exit_2(
        kind, published, bag, monkeypatch, tmp_path, capsys):
    folders, _, backbones = published
    cache = offline_cache(monkeypatch, tmp_path, "HF_HUB_CACHE")
    cache_repo(cache, f"lerobot/{kind}_tiny", folders[kind])
    code, out = train(kind, f"lerobot/{kind}_tiny", bag, backbones, tmp_path)
    assert code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    missing = BACKBONE[kind]
    assert f"'{missing}' is not a folder" in lines[0]
    assert f"hf download {missing}" in lines[0]
    assert not out.exists()


def test_a_checkpoint_missing_from_the_cache_is_refused_before_the_bags_are_read(
        published, monkeypatch, tmp_path, capsys):
    _, _, backbones = published
    offline_cache(monkeypatch, tmp_path, "HF_HOME")
    code, out = train("pi05", "lerobot/pi05_base", tmp_path / "no_such_bag", backbones, tmp_path)
    assert code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "lerobot/pi05_base: not a folder and not in the Hugging Face cache" in lines[0]
    assert "hf download lerobot/pi05_base" in lines[0]
    assert not out.exists()



def test_a_partial_download_without_weights_is_named_with_the_command(
        published, monkeypatch, tmp_path, capsys):
    folders, _, backbones = published
    cache = offline_cache(monkeypatch, tmp_path, "HF_HUB_CACHE")
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(folders["pi0"] / "config.json", partial)  # hf download ID config.json
    cache_repo(cache, "lerobot/pi0_tiny", partial)
    code, out = train("pi0", "lerobot/pi0_tiny", tmp_path / "no_such_bag", backbones, tmp_path)
    assert code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "no model.safetensors" in lines[0], lines
    assert "hf download lerobot/pi0_tiny" in lines[0]
    assert not out.exists()

@pytest.fixture
def ros_env(ros_env, tmp_path):
    """The node processes' environment: offline, with an empty Hugging Face home."""
    env = {k: v for k, v in ros_env.items() if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    return {**env, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty_hf_home")}


@pytest.mark.slow
@pytest.mark.ros
def test_the_policy_node_configures_a_checkpoint_trained_from_a_hub_id_without_the_cache(
        published, bag, monkeypatch, tmp_path, start_node, graph_client):
    folders, sources, backbones = published
    cache = offline_cache(monkeypatch, tmp_path, "HF_HUB_CACHE")
    cache_repo(cache, "lerobot/smolvla_tiny", folders["smolvla"])
    cache_repo(cache, SMOLVLM, sources[SMOLVLM])
    code, out = train("smolvla", "lerobot/smolvla_tiny", bag, backbones, tmp_path)
    assert code == 0
    shutil.rmtree(cache)
    node = "snapflow_policy"
    proc = start_node("snapflow_ros.nodes.policy_node", params={
        "checkpoint": str(out), "camera_topics": ["camera/image_raw"], "device": "cpu",
        "control_rate_hz": 10.0, "n_act": 4})
    assert graph_client.wait_for_node(node, timeout=30), proc.log_text()
    assert graph_client.change_lifecycle_state(node, "configure"), proc.log_text()
    assert graph_client.lifecycle_state(node) == "inactive"
    assert graph_client.change_lifecycle_state(node, "shutdown")
