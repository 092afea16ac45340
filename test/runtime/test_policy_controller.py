# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the ROS-free policy controller, step by step on a fake clock with a fake runner."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from snapflow_ros.config_fields import replace_config
from snapflow_ros.runtime.policy_controller import (
    LATENCY_LABELS,
    LOCKSTEP_RESEND_S,
    HoldCommand,
    LatencyRecord,
    PolicyController,
    PolicyControllerConfig,
    TrajectoryCommand,
)

JOINTS = ("shoulder", "elbow")
RATE = 10.0
DT = 1.0 / RATE
IMAGE = np.zeros((4, 4, 3), np.uint8)


@dataclasses.dataclass
class Result:
    actions: np.ndarray
    timings_ms: dict


class FakeRunner:
    """Chunks ``(H, 2)`` whose action ``i`` is ``base + i / 100``; inference takes ``latency`` s."""

    action_names = JOINTS

    def __init__(self, world, horizon=10, latency=0.0):
        self.world, self.horizon, self.latency = world, horizon, latency
        self.calls: list[tuple[int, str, str]] = []  # (num_steps, mode, task)
        self.times: list[float] = []  # schedule clock at each inference
        self.fail = False
        self.base = 0.0
        self.closed = False

    def infer(self, observation, num_steps, mode):
        self.calls.append((num_steps, mode, observation.task))
        self.times.append(self.world.now)
        self.world.advance(self.latency)
        if self.fail:
            raise RuntimeError("model exploded")
        steps = np.arange(self.horizon)[:, None] / 100.0
        return Result(np.tile(self.base + steps, (1, 2)), {"preprocess": 1.0, "model": 2.0,
                                                           "postprocess": 0.5})

    def warmup(self, iterations, num_steps, mode, task):
        self.calls.append((num_steps, mode, f"warmup:{task}"))

    def close(self):
        self.closed = True


class World:
    """A fake schedule clock, wall clock and stamp clock; ``wait`` advances them."""

    def __init__(self, simulated=False):
        self.now = 100.0  # schedule clock (s)
        self.wall = 0.0
        self.simulated = simulated
        self.on_wait = None  # called before each wait (e.g. to publish a frame)

    def advance(self, seconds):
        self.wall += seconds
        if not self.simulated:
            self.now += seconds

    def wait(self, timeout, event):
        if self.on_wait is not None:
            self.on_wait(timeout)
        self.advance(max(timeout, 1e-4))


class Logs(list):
    """A logger that keeps ``(level, message)``."""

    def info(self, message):
        self.append(("info", message))

    def warning(self, message):
        self.append(("warning", message))

    def error(self, message):
        self.append(("error", message))


def make(world=None, runner=None, **flat):
    world = world or World()
    settings = {"joint_names": JOINTS, "camera_keys": ("top",), "control_rate_hz": RATE,
                "n_act": 5, "prefetch_threshold": 0, "blending": "none",
                "max_delta_per_tick": (1.0,), "first_command_max_distance": 1.0,
                "max_input_age_s": 0.3, "wait_for_fresh_image": False, "chunk_size": 10}
    settings.update(flat)
    config = replace_config(PolicyControllerConfig(), **settings)
    runner = runner or FakeRunner(world)
    logs = Logs()
    controller = PolicyController(
        config, runner, clock=lambda: world.now, wall_clock=lambda: world.wall,
        stamp_clock=lambda: int(world.now * 1e9), wait=world.wait,
        simulated_time=world.simulated, logger=logs)
    controller.activate()
    return controller, runner, world, logs


def feed(controller, world, joints=(0.0, 0.0)):
    assert controller.add_joint_state(list(reversed(JOINTS)), list(reversed(joints)))
    assert controller.add_raw_image("top", "rgb8", 4, 4, 12, IMAGE.tobytes())


def run(controller, world, seconds, fresh=True):
    """Step the loop for ``seconds`` of fake time, inputs fresh every step; returns outputs."""
    outputs = []
    end = world.now + seconds
    while world.now < end:
        if fresh:
            feed(controller, world)
        controller.step(outputs.append)
    return outputs


def trajectories(outputs):
    return [o for o in outputs if isinstance(o, TrajectoryCommand)]


def test_a_chunk_becomes_one_timed_trajectory_then_the_next_is_due_when_it_runs_out():
    controller, runner, world, _ = make()
    feed(controller, world)
    outputs = []
    controller.step(outputs.append)
    (trajectory,) = trajectories(outputs)
    times = [t for t, _ in trajectory.points]
    # Action i is reached one period after its time, observed at the stamp of now.
    assert times == pytest.approx([DT * (i + 1) for i in range(5)])
    assert [a[0] for _, a in trajectory.points] == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04])
    assert trajectory.stamp_ns == int(100.0 * 1e9)
    (latency,) = [o for o in outputs if isinstance(o, LatencyRecord)]
    assert set(latency.timings_ms) == set(LATENCY_LABELS) and latency.timings_ms["model"] == 2.0
    # The next inference waits until the last action (4 periods on) is due: no new trajectory.
    outputs = run(controller, world, 0.4)
    assert trajectories(outputs) == [] and len(runner.calls) == 1
    outputs = run(controller, world, 0.2)
    assert len(trajectories(outputs)) == 1 and len(runner.calls) == 2
    assert runner.times[1] - runner.times[0] == pytest.approx(4.5 * DT)
    diagnostics = controller.diagnostics()
    assert diagnostics["trajectories_published"] == 2 and diagnostics["commands_published"] == 10


def test_actions_whose_time_passed_during_inference_are_skipped_and_n_act_still_sent():
    world = World()
    runner = FakeRunner(world, latency=0.17)  # 1.7 periods: actions 0 and 1 are late
    controller, _, _, _ = make(world, runner, n_act=5)
    feed(controller, world)
    outputs = []
    controller.step(outputs.append)
    (trajectory,) = trajectories(outputs)
    assert [a[0] for _, a in trajectory.points] == pytest.approx([0.02, 0.03, 0.04, 0.05, 0.06])
    assert trajectory.points[0][0] == pytest.approx(0.3 * DT + DT)
    schedule = controller.diagnostics()["schedule"]
    assert schedule["actions_skipped"] == 2 and schedule["chunks_short"] == 0
    (latency,) = [o for o in outputs if isinstance(o, LatencyRecord)]
    assert latency.timings_ms["input_to_publish"] == pytest.approx(170.0)


def test_stale_inputs_hold_once_drop_the_plan_and_fresh_inputs_resume():
    controller, runner, world, logs = make()
    outputs = run(controller, world, 1.0)
    assert len(trajectories(outputs)) >= 2
    calls = len(runner.calls)
    outputs = run(controller, world, 2.0, fresh=False)  # cameras and joints fall silent
    holds = [o for o in outputs if isinstance(o, HoldCommand)]
    assert len(holds) == 1 and holds[0].reason == "stale inputs"
    assert trajectories(outputs) == [] and len(runner.calls) == calls
    # It holds what is commanded at that moment: a point of the last trajectory, one tick on.
    assert holds[0].points[0][0] == pytest.approx(DT)
    assert 0.0 <= holds[0].position[0] <= 0.04
    assert controller.diagnostics()["stale"] and "inputs stale" in controller.last_problem
    assert any("holding position" in message for _, message in logs)
    outputs = run(controller, world, 1.0)
    assert len(trajectories(outputs)) >= 2 and not controller.diagnostics()["stale"]


def test_under_simulated_time_a_still_clock_gets_the_last_trajectory_again():
    world = World(simulated=True)  # waits move the wall clock only
    controller, runner, _, _ = make(world)
    feed(controller, world)
    outputs = []
    controller.step(outputs.append)
    (first,) = trajectories(outputs)
    outputs = []
    while world.wall < LOCKSTEP_RESEND_S * 0.9:
        controller.step(outputs.append)
    assert trajectories(outputs) == []
    while world.wall < LOCKSTEP_RESEND_S * 1.2:
        controller.step(outputs.append)
    (again,) = trajectories(outputs)
    assert again.resent and again.stamp_ns == first.stamp_ns and again.points == first.points
    assert controller.diagnostics()["trajectories_resent"] == 1
    # A moving clock is no reason to resend.
    outputs = []
    for _ in range(200):
        world.now += 0.0001
        controller.step(outputs.append)
    assert trajectories(outputs) == [] and len(runner.calls) == 1


def test_wait_for_a_fresh_frame_uses_the_frame_after_the_chunk_became_due():
    world = World()
    controller, runner, _, _ = make(world, wait_for_fresh_image=True, max_input_age_s=1.0)
    frames = []

    def camera(timeout):  # a frame 30 ms after the chunk became due
        if world.now >= due + 0.03 and not frames:
            frames.append(world.now)
            controller.add_raw_image("top", "rgb8", 4, 4, 12, IMAGE.tobytes())

    feed(controller, world)
    controller.step([].append)  # the first chunk takes the newest frame at once
    world.now = due = world.now + 0.45  # the plan ran out: the next chunk is due
    controller.add_joint_state(list(JOINTS), [0.0, 0.0])
    world.on_wait = camera
    outputs = []
    controller.step(outputs.append)
    assert frames and len(runner.calls) == 2
    (trajectory,) = trajectories(outputs)
    (latency,) = [o for o in outputs if isinstance(o, LatencyRecord)]
    assert latency.timings_ms["input_to_publish"] < 10.0  # from the fresh frame, not an old one


def test_n_act_and_num_steps_changes_apply_at_the_next_chunk_with_n_act_points():
    world = World()
    runner = FakeRunner(world, horizon=12, latency=0.08)  # 0.8 periods: action 0 is late
    controller, _, _, _ = make(world, runner, n_act=5, chunk_size=12)
    feed(controller, world)
    outputs = []
    controller.step(outputs.append)
    assert len(trajectories(outputs)[0].points) == 5
    controller.update_config(replace_config(controller.config, n_act=8, num_steps=4,
                                            sampler_mode="euler", task="stack"))
    # The chunk in flight keeps its schedule: the next inference is due as it was planned.
    assert controller.diagnostics()["n_act"] == 8
    outputs = run(controller, world, 0.3)
    assert trajectories(outputs) == [] and len(runner.calls) == 1
    outputs = run(controller, world, 0.3)
    first_after = trajectories(outputs)[0]
    # The first trajectory after the change: n_act points although its first action was late.
    assert len(first_after.points) == 8
    assert runner.calls[1] == (4, "euler", "stack")
    assert controller.diagnostics()["schedule"]["chunks_short"] == 0


def test_a_failed_inference_is_counted_and_the_loop_goes_on():
    controller, runner, world, logs = make()
    runner.fail = True
    outputs = run(controller, world, 0.35)
    assert trajectories(outputs) == [] and len(runner.calls) >= 2
    diagnostics = controller.diagnostics()
    assert diagnostics["inference_errors"] == len(runner.calls)
    assert "model exploded" in controller.last_problem
    assert controller.health("active") == (False, controller.last_problem)
    assert ("error", "inference failed: model exploded") in logs
    runner.fail = False
    assert trajectories(run(controller, world, 0.2))


def test_a_refused_chunk_holds_and_publishes_nothing_new():
    controller, runner, world, _ = make()
    outputs = run(controller, world, 0.1)
    (trajectory,) = trajectories(outputs)
    runner.base = np.nan  # the next chunk is all NaN
    outputs = run(controller, world, 0.6)
    assert trajectories(outputs) == []
    holds = [o for o in outputs if isinstance(o, HoldCommand)]
    assert holds and holds[0].reason == "non-finite values: holding"
    assert np.all(np.isfinite(holds[0].position))
    diagnostics = controller.diagnostics()
    assert diagnostics["guard_refusals"] >= 1 and diagnostics["guard"]["non_finite"] >= 1


def test_nothing_is_held_before_anything_was_commanded_or_in_dry_run():
    controller, _, world, _ = make()
    assert controller.hold("deactivated") is None
    dry, _, dry_world, _ = make(dry_run=True)
    outputs = run(dry, dry_world, 0.5)
    assert trajectories(outputs) == [] and dry.hold("deactivated") is None
    assert dry.diagnostics()["guard"]["dry_run"] >= 1


def test_stream_mode_hands_out_one_guarded_point_per_tick():
    controller, _, world, _ = make(output_mode="stream", n_act=4)
    feed(controller, world)
    outputs = []
    controller.step(outputs.append)
    assert trajectories(outputs) == []
    commands = []
    for _ in range(6):
        command = controller.control_tick()
        if command is not None:
            commands.append(command)
        world.now += DT
    assert len(commands) == 4
    assert all(len(c.points) == 1 and c.points[0][0] == pytest.approx(DT) for c in commands)
    assert [c.points[0][1][0] for c in commands] == pytest.approx([0.0, 0.01, 0.02, 0.03])


def test_inputs_are_ignored_when_stopped_and_rejections_are_reported():
    controller, runner, world, logs = make()
    assert not controller.add_raw_image("top", "rgb8", 4, 4, 12, b"short")
    assert controller.diagnostics()["inputs_rejected"]["camera/top"] == {"truncated_data": 1}
    assert "camera top rejected" in controller.last_problem
    controller.stop()
    assert not controller.add_joint_state(list(JOINTS), [0.0, 0.0])
    controller.close()
    assert runner.closed


def test_repeated_problems_are_logged_once_per_throttle_interval():
    controller, _, world, logs = make()
    for _ in range(5):
        controller.add_raw_image("top", "rgb8", 4, 4, 12, b"short")
    world.wall += 2.5
    controller.add_raw_image("top", "rgb8", 4, 4, 12, b"short")
    rejected = [m for level, m in logs if level == "warning" and "rejected" in m]
    assert len(rejected) == 2
    assert controller.diagnostics()["inputs_rejected"]["camera/top"] == {"truncated_data": 6}
