# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Under simulated time (a lockstep simulator) a chunk depends on its step only, bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np

from snapflow_ros.config_fields import replace_config
from snapflow_ros.runtime.chunk_scheduler import EpisodeTime
from snapflow_ros.runtime.policy_controller import PolicyController, PolicyControllerConfig

JOINTS = ("shoulder", "elbow")
PERIOD_NS = 20_000_000
IMAGE = np.zeros((4, 4, 3), np.uint8).tobytes()


@dataclasses.dataclass
class Result:
    actions: np.ndarray
    timings_ms: dict


class NoisyRunner:
    """Chunks ``(10, 2)`` from a seeded generator; records the stamps it was given."""

    action_names = JOINTS

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)
        self.stamps: list[dict] = []

    def infer(self, observation, num_steps, mode):
        self.stamps.append(dict(observation.stamps))
        return Result(0.3 + 0.05 * self.rng.standard_normal((10, 2)), {"model": 1.0})

    def warmup(self, iterations, num_steps, mode, task):
        pass

    def close(self):
        pass


class Lockstep:
    """A simulated clock (ns) that moves only when the test says; waits move the wall only."""

    def __init__(self, start_ns: int) -> None:
        self.now_ns, self.wall = start_ns, 0.0
        self.on_wait = None

    def wait(self, timeout, event):
        if self.on_wait is not None:
            self.on_wait()
        self.wall += max(timeout, 1e-4)


def make(sim: Lockstep, runner: NoisyRunner) -> PolicyController:
    config = replace_config(
        PolicyControllerConfig(), joint_names=JOINTS, camera_keys=("top",), n_act=3,
        prefetch_threshold=0, blending="linear", chunk_size=10, max_delta_per_tick=(0.05,),
        first_command_max_distance=0.05, first_command_mode="ramp",
        first_command_ramp_ticks=10, wait_for_fresh_image=True, max_input_age_s=1.0)
    controller = PolicyController(
        config, runner, clock=lambda: sim.now_ns * 1e-9, wall_clock=lambda: sim.wall,
        stamp_clock=lambda: sim.now_ns, wait=sim.wait, simulated_time=True)
    controller.activate()
    return controller


def publish_step(controller, sim, joints, *, image=True):
    stamp = sim.now_ns * 1e-9
    controller.add_joint_state(list(JOINTS), list(joints), stamp=stamp)
    if image:
        controller.add_raw_image("top", "rgb8", 4, 4, 12, IMAGE, stamp=stamp)


def run_episode(start_ns: int, steps: int = 30):
    """The commands of a lockstep episode: the robot steps only while a trajectory covers it."""
    sim, runner = Lockstep(start_ns), NoisyRunner()
    controller = make(sim, runner)
    commands, covered_until = [], start_ns
    position = np.zeros(2)
    for _ in range(steps):
        publish_step(controller, sim, position)
        while covered_until <= sim.now_ns:  # the robot waits for a command for this tick
            outputs = []
            controller.step(outputs.append)
            for output in outputs:
                if hasattr(output, "stamp_ns") and output.points:
                    points = [(round(t * 1e9), a.tobytes()) for t, a in output.points]
                    commands.append((output.stamp_ns - start_ns, points))
                    covered_until = output.stamp_ns + points[-1][0] - PERIOD_NS + 1
        position = position + 0.01
        sim.now_ns += PERIOD_NS
    return commands, runner


def test_the_same_episode_started_at_another_time_commands_the_same_bits():
    first, _ = run_episode(start_ns=40_000_000)
    later, _ = run_episode(start_ns=123_456_780_000_000)
    assert len(first) == 10  # a chunk every n_act = 3 steps
    assert first == later


def test_a_chunk_waits_for_every_input_of_the_step_it_is_due_at():
    sim, runner = Lockstep(1_000_000_000), NoisyRunner()
    controller = make(sim, runner)
    publish_step(controller, sim, (0.0, 0.0))
    sim.now_ns += PERIOD_NS  # the next step: its joint state came, its frame is on its way
    publish_step(controller, sim, (0.0, 0.0), image=False)
    waits = []

    def frame_arrives():
        waits.append(1)
        if len(waits) == 5:
            controller.add_raw_image("top", "rgb8", 4, 4, 12, IMAGE, stamp=sim.now_ns * 1e-9)

    sim.on_wait = frame_arrives
    outputs = []
    controller.step(outputs.append)
    assert len(waits) >= 5 and len(runner.stamps) == 1
    assert set(runner.stamps[0].values()) == {sim.now_ns * 1e-9}
    (trajectory,) = [o for o in outputs if hasattr(o, "stamp_ns")]
    assert trajectory.stamp_ns == sim.now_ns  # action 0 is for the observed step


def test_episode_time_counts_whole_nanoseconds_from_the_start():
    a, b = EpisodeTime(), EpisodeTime()
    assert a(5.0) == 5.0  # unchanged before it starts
    assert a.start_once(0.04) == 0.0 and b.start_once(8123.46) == 0.0
    assert a.start_once(0.1) == a(0.1)  # started once only
    for k in (1, 7, 399):
        assert a((40_000_000 + k * PERIOD_NS) * 1e-9) == b((8_123_460_000_000 + k * PERIOD_NS)
                                                           * 1e-9) == k * PERIOD_NS * 1e-9
