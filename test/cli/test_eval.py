# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow eval`` end to end: JSON and report on held-out episodes, clear errors otherwise."""

import json

import pytest
from bag_fixtures import write_demo_bag
from evaluation_fixtures import SPLIT_SEED, VAL_FRACTION, run_cli

from snapflow_ros.data.dataset import split_episodes
from snapflow_ros.data.episodes import load_episodes
from snapflow_ros.evaluation.metrics import SUMMARY_KEYS

FAST = ["--samples", "16", "--spread-seeds", "2", "--spread-samples", "4",
        "--latency-calls", "2", "--no-progress"]


def _outputs(tmp_path):
    return tmp_path / "eval.json", tmp_path / "report"


def test_eval_writes_json_and_report_for_each_step_count(trained_runs, demo_bags, tmp_path):
    out_json, report = _outputs(tmp_path)
    code, stdout, stderr = run_cli([
        "eval", "--checkpoint", f"T={trained_runs['teacher']}",
        "--checkpoint", f"S={trained_runs['snap']}", "--steps", "1,3",
        "--json", str(out_json), "--report", str(report), *FAST])
    assert code == 0, stderr
    result = json.loads(out_json.read_text())
    assert set(result["checkpoints"]["T"]["results"]) == {"1", "3"}
    assert set(result["checkpoints"]["S"]["results"]) == {"1", "3", "1_euler", "3_euler"}
    for metrics in result["checkpoints"]["S"]["results"].values():
        assert set(SUMMARY_KEYS) <= set(metrics)
    # Split settings come from the training run (train_job.yaml), not the CLI defaults.
    assert result["config"]["val_fraction"] == VAL_FRACTION
    assert result["config"]["split_seed"] == SPLIT_SEED
    bag_dir, bags = demo_bags
    episodes, _ = load_episodes(bag_dir, bags[0].config(image_height=16, image_width=16),
                                progress=False)
    _, val = split_episodes(episodes, val_fraction=VAL_FRACTION, seed=SPLIT_SEED)
    assert [e["source"] for e in result["episodes"]] == [str(e.source) for e in val]
    files = {p.name for p in report.iterdir()}
    assert {"report.md", "mse_vs_steps.png", "mse_distribution.png", "per_joint_mse.png",
            "error_by_chunk_position.png"} <= files
    assert any(name.startswith("trajectory_") for name in files)
    text = (report / "report.md").read_text()
    assert "| T | teacher | 3 | euler |" in text and "| S | snapflow | 1 | jump |" in text
    assert "![MSE vs sampler steps](mse_vs_steps.png)" in text
    # The table is printed too.
    assert "| S | snapflow | 3 | euler |" in stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp files left"


def test_all_episodes_and_explicit_topic_flags(trained_runs, tmp_path):
    fresh = [write_demo_bag(tmp_path / "new" / f"b{i}", n_steps=20, image_size=(32, 32))
             for i in range(2)]
    out_json, _ = _outputs(tmp_path)
    code, _, stderr = run_cli([
        "eval", "--checkpoint", str(trained_runs["snap"]), "--bags", str(tmp_path / "new"),
        "--all-episodes", "--steps", "1", "--modes", "jump", "--state-topic", "/joint_states",
        "--json", str(out_json), *FAST])
    assert code == 0, stderr
    result = json.loads(out_json.read_text())
    assert result["split"] == "all"
    assert [e["source"] for e in result["episodes"]] == [str(b.path) for b in fresh]
    assert set(result["checkpoints"]["snap"]["results"]) == {"1"}
    # Images are read at the size the checkpoint was trained at, not the bag's 32x32.
    assert (result["data"]["image_height"], result["data"]["image_width"]) == (16, 16)


@pytest.mark.parametrize("case", ["camera", "joint"])
def test_interface_mismatch_is_a_clear_error_and_writes_nothing(case, trained_runs, tmp_path):
    if case == "camera":
        write_demo_bag(tmp_path / "bags" / "b", n_steps=20, image_size=(16, 16),
                       camera_topics=("/cam_wrist/image_raw",))
        flags = ["--camera-topic", "/cam_wrist/image_raw", "--camera-key", "wrist"]
        expected = ["camera_keys", "wrist"]
    else:
        write_demo_bag(tmp_path / "bags" / "b", n_steps=20, image_size=(16, 16),
                       joint_names=("shoulder", "elbow", "wrist"))
        flags = []
        expected = ["gripper"]
    out_json, report = _outputs(tmp_path)
    code, _, stderr = run_cli([
        "eval", "--checkpoint", str(trained_runs["teacher"]), "--bags", str(tmp_path / "bags"),
        "--all-episodes", "--steps", "1", *flags, "--json", str(out_json), "--report",
        str(report), *FAST])
    assert code == 2
    assert all(word in stderr for word in expected), stderr
    assert not out_json.exists() and not report.exists()


def test_bad_inputs_exit_2_with_a_message_and_no_output(trained_runs, demo_bags, tmp_path):
    not_a_bag = tmp_path / "notes.txt"
    not_a_bag.write_text("hello")
    bag_dir, _ = demo_bags
    out_json, report = _outputs(tmp_path)
    outputs = ["--json", str(out_json), "--report", str(report)]
    cases = [
        (["--checkpoint", str(trained_runs["teacher"]), "--bags", str(not_a_bag)],
         "not a rosbag2 recording"),
        (["--checkpoint", str(trained_runs["teacher"]), "--bags", str(bag_dir),
          "--state-topic", "/nope"], "'/nope'"),
        (["--checkpoint", str(tmp_path / "missing"), "--bags", str(bag_dir)],
         "does not exist"),
        (["--bags", str(bag_dir)], "no checkpoint given"),
        (["--checkpoint", str(trained_runs["teacher"]), "--bags", str(bag_dir), "--device",
          "nonsense"], "--device nonsense"),
        (["--checkpoint", str(trained_runs["teacher"]), "--bags", str(bag_dir), "--samples",
          "0"], "samples=0"),
        (["--checkpoint", str(trained_runs["teacher"]), "--checkpoint",
          str(trained_runs["teacher"]), "--bags", str(bag_dir)], "named 'teacher'"),
    ]
    for argv, message in cases:
        code, _, stderr = run_cli(["eval", "--steps", "1", *outputs, *FAST, *argv])
        assert code == 2, (argv, stderr)
        assert message in stderr, (argv, stderr)
        assert not out_json.exists() and not report.exists()


def test_config_file_gives_topics_and_split_for_a_checkpoint_outside_its_run(
        trained_runs, demo_bags, tmp_path):
    import shutil

    from snapflow_ros.policies.checkpoint import resolve_checkpoint

    copied = tmp_path / "deployed"
    shutil.copytree(resolve_checkpoint(trained_runs["snap"]), copied)
    bag_dir, bags = demo_bags
    config = tmp_path / "eval.yaml"
    config.write_text(
        f"bags: [{bag_dir}]\n"
        "data:\n  camera_topics: [/camera/top/image_raw]\n"
        "  action_topic: /leader/joint_states\n  action_type: joint_state\n"
        "  min_episode_steps: 1\n"
        f"train:\n  seed: {SPLIT_SEED}\n  val_fraction: {VAL_FRACTION}\n")
    out_json = tmp_path / "eval.json"
    code, _, stderr = run_cli(["eval", "--checkpoint", f"deployed={copied}", "--config",
                               str(config), "--steps", "1", "--json", str(out_json), *FAST])
    assert code == 0, stderr
    result = json.loads(out_json.read_text())
    assert (result["config"]["val_fraction"], result["config"]["split_seed"]) == (
        VAL_FRACTION, SPLIT_SEED)
    episodes, _ = load_episodes(bag_dir, bags[0].config(image_height=16, image_width=16),
                                progress=False)
    _, val = split_episodes(episodes, val_fraction=VAL_FRACTION, seed=SPLIT_SEED)
    assert [e["source"] for e in result["episodes"]] == [str(e.source) for e in val]
