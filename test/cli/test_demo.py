# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow demo``: its settings file, the stage logic (skip, resume) and a real tiny run."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml

from snapflow_ros import cli
from snapflow_ros.cli.demo import (
    DEMO_STAGES,
    SimDemoConfig,
    final_tables,
    load_demo_config,
    run_command,
    run_pipeline,
    stage_commands,
)
from snapflow_ros.cli.exit_codes import EXIT_INTERRUPTED
from snapflow_ros.cli.signals import stop_signals_raise
from snapflow_ros.config_fields import ConfigError

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "sim_demo.yaml"


def _yaml() -> dict:
    return yaml.safe_load(CONFIG.read_text())


# ------------------------------------------------------------------------ settings file

def test_every_profile_loads_and_sets_every_field():
    profiles = _yaml()["snapflow_demo"]["ros__parameters"]
    assert {"quick", "full", "multimodal", "insertion", "image_only"} <= set(profiles)
    fields = {f.name for f in dataclasses.fields(SimDemoConfig)}
    for profile in profiles:
        assert set(profiles[profile]) == fields, profile
        config = load_demo_config(CONFIG, profile)
        assert config.policy["chunk_size"] == 50
    quick, full = load_demo_config(CONFIG, "quick"), load_demo_config(CONFIG, "full")
    assert full.demos > quick.demos and full.teacher_steps > quick.teacher_steps
    assert full.eval_episodes >= 50 > quick.eval_episodes


def test_the_experiment_profiles_pick_their_task_inputs_and_offline_samples():
    multimodal = load_demo_config(CONFIG, "multimodal")
    assert (multimodal.task, multimodal.environment_state) == ("transfer_cube_obstacle", True)
    assert multimodal.heldout_demos == 10 and multimodal.offline_samples_per_frame == 8
    # The two ways' first chunks are 0.0039 apart: under the default threshold of 10x.
    assert multimodal.offline_distinct_truth_mse == 0.002
    insertion = load_demo_config(CONFIG, "insertion")
    assert (insertion.task, insertion.heldout_demos, insertion.teacher_steps) == (
        "insertion", 0, 3000)
    image_only = load_demo_config(CONFIG, "image_only")
    assert (image_only.task, image_only.environment_state) == ("transfer_cube", False)
    assert image_only.teacher_steps == 6000
    assert multimodal.eval_episodes == 100  # the issue's >= 100 held-out seeds
    for config in (insertion, image_only):
        assert config.eval_episodes == 20
    for config in (multimodal, insertion, image_only):
        assert config.sweep_episodes == 0


def test_every_quick_setting_is_documented_by_a_comment():
    lines = CONFIG.read_text().splitlines()
    start = lines.index("    quick:")
    block = lines[start + 1:lines.index("    full:")]
    for index, line in enumerate(block):
        match = re.match(r"^      (\w+):", line)
        if not match:
            continue
        above = index - 1
        while above >= 0 and re.match(r"^      \w+:", block[above]):
            above -= 1  # a key of the same commented group
        assert above >= 0 and block[above].strip().startswith("#"), match.group(1)


def test_node_sections_set_only_parameters_the_nodes_declare():
    from snapflow_ros.config_fields import config_from_dict, flat_fields
    from snapflow_ros.nodes.sim_robot_node import SimRobotNodeConfig
    from snapflow_ros.runtime.config import PolicyNodeConfig
    from snapflow_ros.sim.aloha_env import AlohaSimConfig

    data = _yaml()
    sim = data["sim_robot"]["ros__parameters"]
    sim_fields = {f.name for cls in (AlohaSimConfig, SimRobotNodeConfig)
                  for f in dataclasses.fields(cls)}
    assert set(sim) <= sim_fields
    AlohaSimConfig(**{k: v for k, v in sim.items() if k in
                      {f.name for f in dataclasses.fields(AlohaSimConfig)}})
    SimRobotNodeConfig(**{k: v for k, v in sim.items() if k in
                          {f.name for f in dataclasses.fields(SimRobotNodeConfig)}})
    policy = dict(data["snapflow_policy"]["ros__parameters"])
    assert policy.pop("use_sim_time") is True  # lockstep: the node follows /clock
    assert set(policy) <= set(flat_fields(PolicyNodeConfig))
    config_from_dict(PolicyNodeConfig, policy)
    assert policy["expected_image_height"] == sim["image_size"]


def test_overrides_apply_and_bad_settings_are_named(tmp_path):
    config = load_demo_config(CONFIG, "quick", ["demos=3", "policy.hidden_dim=64",
                                                "n_act_sweep=[1, 2]"])
    assert config.demos == 3 and config.policy["hidden_dim"] == 64
    assert config.policy["chunk_size"] == 50 and config.n_act_sweep == (1, 2)
    with pytest.raises(ConfigError, match="demo_count"):
        load_demo_config(CONFIG, "quick", ["demo_count=3"])
    with pytest.raises(ConfigError, match="exceed the chunk size"):
        load_demo_config(CONFIG, "quick", ["n_act=60"])
    with pytest.raises(ConfigError, match="blending"):
        load_demo_config(CONFIG, "quick", ["blending=cubic"])
    with pytest.raises(ConfigError, match="no profile 'medium'"):
        load_demo_config(CONFIG, "medium")
    assert cli.main(["demo", "--config", str(tmp_path / "missing.yaml")]) == 2


# --------------------------------------------------------------------------- stage logic

TINY = SimDemoConfig(demos=3, teacher_steps=8, snapflow_steps=4, batch_size=4,
                     eval_episodes=2, sweep_episodes=1, n_act_sweep=(1, 5), n_act=5,
                     policy={"chunk_size": 10, "hidden_dim": 16})


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


class FakeStages:
    """Stands in for the stage commands: writes what each would write, records the calls."""

    def __init__(self, interrupt_teacher_at: int | None = None, fail: str | None = None):
        self.calls: list[list[str]] = []
        self.interrupt_teacher_at = interrupt_teacher_at
        self.fail = fail

    def __call__(self, command, log_path, *, env=None):
        self.calls.append(command)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if "snapflow_ros.sim.demo_recording" in command:
            Path(_flag(command, "--out")).mkdir(parents=True, exist_ok=True)
            summary = {"kept": int(_flag(command, "--episodes")), "bags": []}
            log_path.write_text("$ record\n" + json.dumps(summary, indent=2) + "\n")
            return 0
        verb = command[command.index("snapflow_ros.cli") + 1]
        if verb == self.fail:
            return 1
        if verb == "train":
            run = Path(_flag(command, "--out"))
            step = int(_flag(command, "--steps"))
            interrupted = (_flag(command, "--stage") == "teacher"
                           and self.interrupt_teacher_at is not None)
            if interrupted:
                step = self.interrupt_teacher_at
            checkpoint = run / "checkpoints" / f"step_{step:08d}"
            checkpoint.mkdir(parents=True, exist_ok=True)
            (checkpoint / "info.json").write_text(json.dumps({"step": step}))
            (run / "latest").write_text(f"checkpoints/{checkpoint.name}\n")
            if interrupted:
                self.interrupt_teacher_at = None
                return EXIT_INTERRUPTED
            return 0
        if verb == "eval":
            Path(_flag(command, "--json")).write_text("{}")
            return 0
        if verb == "bench":
            Path(_flag(command, "--json")).write_text(json.dumps({"complete": True}))
            return 0
        raise AssertionError(f"unexpected command {command}")


def _run(out, runner, config=TINY, **kwargs):
    return run_pipeline(config, out, profile="quick", sim_python="/sim/python",
                        python="/policy/python", params_file="sim_demo.yaml",
                        log=lambda line: None, runner=runner, **kwargs)


def test_stage_commands_chain_the_outputs_of_earlier_stages(tmp_path):
    commands = stage_commands(TINY, tmp_path, sim_python="/sim/python", python="/py",
                              params_file="sim_demo.yaml")
    (demos,) = commands["demos"]
    assert demos[0] == "/sim/python" and _flag(demos, "--seed-start") == "0"
    (teacher,) = commands["teacher"]
    assert _flag(teacher, "--stage") == "teacher" and _flag(teacher, "--bags") == str(
        tmp_path / "demos")
    assert "policy.chunk_size=10" in teacher and _flag(teacher, "--policy") == "compact"
    (snapflow,) = commands["snapflow"]
    assert _flag(snapflow, "--init") == str(tmp_path / "teacher")
    (offline,) = commands["offline"]
    assert "--all-episodes" not in offline  # the teacher run's validation split
    (closed,) = commands["closed_loop"]
    assert _flag(closed, "--snapflow") == str(tmp_path / "snapflow")
    assert _flag(closed, "--n-act-sweep") == "1,5" and "--resume" in closed
    assert _flag(closed, "--params-file") == "sim_demo.yaml"
    assert _flag(closed, "--blending") == "none" and _flag(closed, "--blend-steps") == "5"
    faded = stage_commands(dataclasses.replace(TINY, blending="linear", blend_steps=3), tmp_path,
                           sim_python="/s", python="/p", params_file=None)["closed_loop"][0]
    assert _flag(faded, "--blending") == "linear" and _flag(faded, "--blend-steps") == "3"
    held_out = stage_commands(dataclasses.replace(TINY, heldout_demos=2), tmp_path,
                              sim_python="/s", python="/p", params_file=None)
    assert _flag(held_out["demos"][1], "--seed-start") == "100000"
    assert "--all-episodes" in held_out["offline"][0]
    assert "--params-file" not in held_out["closed_loop"][0]
    assert "--strategy" not in held_out["demos"][1]  # one way only: nothing to force
    assert _flag(offline, "--samples-per-frame") == "1"


def test_a_multimodal_task_records_its_held_out_seeds_both_ways(tmp_path):
    config = dataclasses.replace(TINY, task="transfer_cube_obstacle", heldout_demos=2,
                                 offline_samples_per_frame=8, offline_distinct_truth_mse=0.002)
    commands = stage_commands(config, tmp_path, sim_python="/s", python="/p", params_file=None)
    train, held_out = commands["demos"]
    assert "--strategy" not in train  # training: the way drawn from each seed
    assert _flag(held_out, "--strategy") == "both"
    assert _flag(held_out, "--task") == "transfer_cube_obstacle"
    (offline,) = commands["offline"]
    assert _flag(offline, "--samples-per-frame") == "8"
    assert float(_flag(offline, "--distinct-truth-mse")) == 0.002
    assert _flag(offline, "--bags") == str(tmp_path / "heldout_demos")
    assert _flag(commands["closed_loop"][0], "--task") == "transfer_cube_obstacle"


def _demo_cli(monkeypatch, tmp_path, *flags):
    """Run ``snapflow demo`` with the pipeline replaced; returns (exit code, its arguments)."""
    seen = {}

    def fake_pipeline(config, out, *, profile, **kwargs):
        seen.update(config=config, out=out, profile=profile)
        out.mkdir(parents=True, exist_ok=True)
        return {}

    monkeypatch.setattr("snapflow_ros.cli.demo.run_pipeline", fake_pipeline)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["demo", "--config", str(CONFIG), "--sim-python", sys.executable, *flags])
    return code, seen


def test_profile_selects_any_profile_and_names_the_output_after_it(monkeypatch, tmp_path):
    code, seen = _demo_cli(monkeypatch, tmp_path, "--profile", "multimodal")
    assert code == 0 and seen["profile"] == "multimodal"
    assert seen["config"] == load_demo_config(CONFIG, "multimodal")
    assert seen["out"] == Path("outputs/sim_demo_multimodal")
    assert (tmp_path / "outputs" / "sim_demo_multimodal" / "summary.md").is_file()
    code, seen = _demo_cli(monkeypatch, tmp_path, "--full")
    assert code == 0 and seen["profile"] == "full"
    code, seen = _demo_cli(monkeypatch, tmp_path)
    assert code == 0 and seen["profile"] == "quick"
    with pytest.raises(SystemExit):  # a shortcut and --profile together are ambiguous
        cli.main(["demo", "--config", str(CONFIG), "--quick", "--profile", "insertion"])


def test_an_unknown_profile_is_refused_with_the_profiles_there_are(monkeypatch, tmp_path,
                                                                    capsys):
    code, seen = _demo_cli(monkeypatch, tmp_path, "--profile", "multimodel")
    assert code == 2 and not seen
    error = capsys.readouterr().err
    assert "no profile 'multimodel'" in error
    assert all(name in error for name in ("quick", "full", "multimodal", "image_only"))


def _offline_row(steps: int, mse: float, **extra) -> dict:
    return {"steps": steps, "mode": "euler", "mse_mean": mse, "mse_median": mse,
            "mse_p90": mse, "mse_p95": mse, "mse_std": 0.0, "cos_sim": 0.9, "num_samples": 4,
            **extra}


def test_final_tables_show_the_distribution_columns_only_when_sampled(tmp_path):
    old = {"checkpoints": {"teacher": {"stage": "teacher",
                                       "results": {"10": _offline_row(10, 0.02)}}}}
    (tmp_path / "offline_eval.json").write_text(json.dumps(old))
    table = final_tables(tmp_path)
    assert "| 0.02000 |" in table and "best-of-K" not in table  # an older result still reads
    sampled = {"config": {"samples_per_frame": 8},
               "multi_truth": {"frames_with_matching_observation": 12},
               "checkpoints": {"teacher": {"stage": "teacher", "results": {
                   "10": _offline_row(10, 0.02, samples_per_frame=8, best_of_k_mse_mean=0.005,
                                      between_modes_share=0.25, mode_coverage=0.5,
                                      sample_spread=0.1, multi_truth_frames=6)}}}}
    (tmp_path / "offline_eval.json").write_text(json.dumps(sampled))
    table = final_tables(tmp_path)
    assert "best-of-K MSE" in table and "| 25.0% | 50.0% |" in table
    assert "K = 8 noise samples per frame" in table and ": 6 frames" in table


def test_a_run_from_before_a_new_setting_continues_at_its_default(tmp_path):
    _run(tmp_path, FakeStages(), stages=("demos",))
    settings = json.loads((tmp_path / "demo_settings.json").read_text())
    del settings["offline_samples_per_frame"]  # written before the setting existed
    (tmp_path / "demo_settings.json").write_text(json.dumps(settings))
    _run(tmp_path, FakeStages(), stages=("demos",))
    with pytest.raises(ConfigError, match="offline_samples_per_frame"):
        _run(tmp_path, FakeStages(), stages=("demos",),
             config=dataclasses.replace(TINY, offline_samples_per_frame=4))


def test_pipeline_runs_each_stage_once_and_skips_finished_ones(tmp_path):
    runner = FakeStages()
    timings = _run(tmp_path, runner)
    assert list(timings) == list(DEMO_STAGES)
    order = [c[c.index("snapflow_ros.cli") + 1] if "snapflow_ros.cli" in c else "record"
             for c in runner.calls]
    assert order == ["record", "train", "train", "eval", "bench"]
    assert json.loads((tmp_path / "demos" / "recording.json").read_text())["kept"] == 3
    again = FakeStages()
    _run(tmp_path, again)
    assert again.calls == []  # everything was done: nothing reruns


def test_an_interrupted_training_stage_is_resumed_on_the_next_run(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, FakeStages(interrupt_teacher_at=3))
    runner = FakeStages()
    _run(tmp_path, runner)
    teacher = next(c for c in runner.calls if "teacher" in c)
    assert "--resume" in teacher  # continues from step 3 instead of starting over
    assert not any("snapflow_ros.sim.demo_recording" in c for c in runner.calls)


def test_other_settings_in_the_same_output_directory_are_refused(tmp_path):
    _run(tmp_path, FakeStages(), stages=("demos",))
    with pytest.raises(ConfigError, match="teacher_steps"):
        _run(tmp_path, FakeStages(), config=dataclasses.replace(TINY, teacher_steps=9))


def test_a_failed_stage_stops_the_pipeline_and_is_named(tmp_path):
    runner = FakeStages(fail="eval")
    with pytest.raises(RuntimeError, match="stage offline failed"):
        _run(tmp_path, runner)
    assert not any("bench" in c for c in runner.calls)


# A stage that reports its session, then how it was stopped, and exits 0 after cleaning up.
_STAGE = """
import os, signal, sys, time
def stop(signum, frame):
    print("stopping on", signal.Signals(signum).name, flush=True)
    sys.exit(0)
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(sig, stop)
print("session", os.getsid(0), flush=True)
time.sleep(30)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_reaches_the_running_stage_which_finishes_cleanly(tmp_path, signum):
    """The stage has its own session; the demo passes the signal on and keeps its output."""
    log_path = tmp_path / "stage.log"

    def echo(line: str) -> None:
        if "session" in line:
            os.kill(os.getpid(), signum)

    started = time.monotonic()
    with stop_signals_raise(), pytest.raises(KeyboardInterrupt):
        run_command([sys.executable, "-c", _STAGE], log_path, echo=echo)
    assert time.monotonic() - started < 20
    log = log_path.read_text()
    assert f"stopping on {signal.Signals(signum).name}" in log
    session = int(re.search(r"session (\d+)", log).group(1))
    assert session != os.getsid(0)


# ------------------------------------------------------------------------- real tiny run

@pytest.mark.slow
@pytest.mark.ros
def test_tiny_demo_runs_end_to_end_and_a_rerun_skips_every_stage(tmp_path, capsys):
    from snapflow_ros.evaluation.closed_loop import default_sim_python

    sim_python = default_sim_python()
    if not Path(sim_python).exists():
        pytest.skip(f"needs the simulator environment ({sim_python}); `make setup-sim`")
    # The nodes' sections of the real file (the policy node subscribes to the object poses);
    # the multimodal task, its held-out seed recorded both ways and scored with K = 2 samples.
    settings = _yaml()
    settings["snapflow_demo"] = {"ros__parameters": {"quick": {
        "task": "transfer_cube_obstacle", "demos": 2, "heldout_demos": 1,
        "teacher_steps": 4, "snapflow_steps": 2, "batch_size": 4,
        "val_fraction": 0.5, "train_threads": 1, "offline_steps": [1, 2],
        "offline_samples": 8, "offline_samples_per_frame": 2, "eval_episodes": 1,
        "sweep_episodes": 0, "episode_steps": 30,
        "n_act": 5, "policy": {"chunk_size": 10, "cnn_channels": [8, 16], "hidden_dim": 16,
                               "num_layers": 1, "num_heads": 2, "num_keypoints": 4}}}}
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(settings))
    out = tmp_path / "out"
    argv = ["demo", "--config", str(config), "--out", str(out), "--sim-python", sim_python]
    code = cli.main(argv)
    output = capsys.readouterr()
    assert code == 0, output.out[-3000:] + output.err[-2000:]
    printed = output.out
    assert "Offline: action MSE" in printed and "Closed loop over ROS 2" in printed
    assert sorted(p.name for p in (out / "heldout_demos").iterdir() if p.is_dir()) == [
        "transfer_cube_obstacle_seed100000_back", "transfer_cube_obstacle_seed100000_front"]
    offline = json.loads((out / "offline_eval.json").read_text())
    assert offline["config"]["samples_per_frame"] == 2 and "best-of-K MSE" in printed
    closed_loop = json.loads((out / "closed_loop.json").read_text())
    assert closed_loop["complete"]
    assert list(closed_loop["cases"]) == ["teacher@10", "teacher@1", "snapflow@1"]
    assert all(c["summary"]["episodes"] == 1 for c in closed_loop["cases"].values())
    assert (out / "summary.md").is_file() and (out / "closed_loop_report" / "report.md").is_file()
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("skipped") == len(DEMO_STAGES)
