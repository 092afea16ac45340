# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The closed-loop harness: a real run of the policy node and the sim robot over ROS 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from checkpoint_fixtures import write_tiny_checkpoint

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.evaluation.closed_loop import ClosedLoopCase, ClosedLoopConfig, default_sim_python
from snapflow_ros.nodes.harness.closed_loop import ClosedLoopRunner, run_closed_loop

# The simulator's ALOHA_JOINT_NAMES (its package imports MuJoCo, absent from this environment).
ALOHA_JOINTS = tuple(f"{side}_{joint}" for side in ("left", "right") for joint in (
    "waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper"))
SIM_IMAGE_SIZE = 128


def test_missing_checkpoints_and_repeated_names_are_refused_before_any_node_starts(tmp_path):
    case = ClosedLoopCase(name="x", checkpoint=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="does not exist"):
        run_closed_loop([case], ClosedLoopConfig())
    with pytest.raises(ConfigError, match="unique"):
        run_closed_loop([case, case], ClosedLoopConfig())


def test_the_benchmark_settings_reach_the_policy_node_on_its_command_line(tmp_path, monkeypatch):
    import snapflow_ros.nodes.harness.closed_loop as harness

    started = {}

    class StartRefused(Exception):
        pass

    class RecordingProcess:
        def __init__(self, module, *, args, name, **_):
            started[name] = args

        def start(self):
            raise StartRefused

    monkeypatch.setattr(harness, "NodeProcess", RecordingProcess)
    monkeypatch.setattr(harness, "GraphClient", lambda name: None)
    config = ClosedLoopConfig(blending="linear", blend_steps=3, sim_python=__file__,
                              isolated_graph=False, log_dir=str(tmp_path))
    with pytest.raises(StartRefused):
        ClosedLoopRunner(config, log=lambda line: None).start()
    policy_args = started["policy_node"]
    assert "blending:=linear" in policy_args and "blend_steps:=3" in policy_args
    assert "prefetch_threshold:=0" in policy_args


def _simulator_environment() -> str:
    python = default_sim_python()
    if not Path(python).exists():
        pytest.skip(f"needs the simulator environment ({python}: gym-aloha, MuJoCo 2.3.7); "
                    "create it with `make setup-sim`")
    return python


@pytest.mark.ros
@pytest.mark.slow
def test_policy_node_drives_the_sim_robot_through_episodes_and_both_stop_cleanly(tmp_path):
    sim_python = _simulator_environment()
    teacher = write_tiny_checkpoint(tmp_path / "teacher", joint_names=ALOHA_JOINTS,
                                    image_size=SIM_IMAGE_SIZE, chunk_size=10,
                                    action_mean=0.0, action_std=0.01)
    snapflow = write_tiny_checkpoint(tmp_path / "snap", joint_names=ALOHA_JOINTS,
                                     image_size=SIM_IMAGE_SIZE, chunk_size=10,
                                     action_mean=0.0, action_std=0.01, stage="snapflow")
    config = ClosedLoopConfig(episodes=2, episode_steps=30, sim_python=sim_python,
                              log_dir=str(tmp_path / "logs"), episode_timeout_s=60.0,
                              startup_timeout_s=120.0)
    cases = [ClosedLoopCase(name="teacher@2", checkpoint=str(teacher), num_steps=2,
                            sampler_mode="euler", n_act=5),
             ClosedLoopCase(name="snapflow@1", checkpoint=str(snapflow), num_steps=1,
                            sampler_mode="jump", n_act=3, episodes=1)]
    entries = {}
    with ClosedLoopRunner(config, log=lambda line: None) as runner:
        for case in cases:
            entries[case.name] = runner.run_case(case)
        processes = list(runner._processes)
    # SIGINT stopped both nodes: each exited by itself with status 0.
    assert [p.process.returncode for p in processes] == [0, 0], [
        p.log_text()[-2000:] for p in processes]

    teacher_entry = entries["teacher@2"]
    assert [e["seed"] for e in teacher_entry["episodes"]] == [100000, 100001]
    for entry, n_act in ((teacher_entry, 5), (entries["snapflow@1"], 3)):
        for episode in entry["episodes"]:
            # The robot ran the whole (short) episode on the policy's commands, in lockstep:
            # every chunk was executed, n_act actions each.
            assert episode["steps"] == 30 and not episode["timed_out"]
            assert episode["sim_time_s"] == pytest.approx(0.6)
            assert episode["chunks"] >= 30 // n_act - 1
            assert episode["inference_ms_p50"] > 0
        summary = entry["summary"]
        assert summary["success_rate"] == 0.0  # an untrained policy does not transfer cubes
        assert summary["success_ci95"][0] == 0.0 and 0.0 < summary["success_ci95"][1] < 1.0
        assert summary["latency_ms_p50"] > 0 and summary["latency_ms_p95"] >= \
            summary["latency_ms_p50"]
    assert entries["snapflow@1"]["summary"]["episodes"] == 1
    assert entries["snapflow@1"]["case"]["sampler_mode"] == "jump"
