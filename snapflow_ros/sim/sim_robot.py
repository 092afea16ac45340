# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ROS-free core of the simulated robot node: simulator, command queue and episodes.

:class:`SimRobot` owns an :class:`~snapflow_ros.sim.aloha_env.AlohaSim` and a
:class:`~snapflow_ros.sim.trajectory_follower.JointTrajectoryFollower`. Each :meth:`tick`
executes one 20 ms control step with the follower's target for that tick. Episodes end after
``episode_steps`` steps, or ``success_extra_steps`` steps after the first success; the next
episode uses the next seed (or the one requested with :attr:`SimRobot.next_seed`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

from snapflow_ros.sim.aloha_env import (
    ALOHA_JOINT_NAMES,
    CONTROL_PERIOD_S,
    AlohaObservation,
    AlohaSim,
    AlohaSimConfig,
)
from snapflow_ros.sim.trajectory_follower import JointTrajectoryFollower

TICK_NS = round(CONTROL_PERIOD_S * 1e9)


@dataclasses.dataclass
class EpisodeStatus:
    """Progress of the current episode, published as JSON on ``episode/status``."""

    task: str
    seed: int
    episode: int  # episodes started since the node started, from 1
    step: int  # control steps executed in this episode
    reward: float  # reward after the last step (0..4)
    max_reward: float  # best reward so far in this episode
    success: bool  # the episode has reached the task's success reward
    first_success_step: int | None
    done: bool  # the episode is over (steps exhausted, or success + extra steps)
    stamp_s: float  # stamp of the current observation (s; simulated time in lockstep)
    # SHA-256 (hex, first 16) over the float64 targets of every step so far: equal digests,
    # equal commands, so reruns of an episode can be compared bit for bit.
    command_digest: str = ""
    lockstep_timeouts: int = 0  # lockstep steps run on a held target: no command came in time
    obstacle_touched: bool = False  # transfer_cube_obstacle: the post was touched (a failure)

    def to_json(self) -> str:
        """One-line JSON object with every field."""
        return json.dumps(dataclasses.asdict(self))


class SimRobot:
    """A simulated ALOHA that follows streamed joint trajectories, one episode at a time."""

    def __init__(self, config: AlohaSimConfig, first_seed: int, *, success_extra_steps: int = 0,
                 interpolate: bool = True, sim: AlohaSim | None = None) -> None:
        self.config = config
        self.sim = sim or AlohaSim(config)
        # A point is the position to reach at its time: the step ending then executes it, as
        # ros2_control's JointTrajectoryController samples at the end of its cycle.
        self.follower = JointTrajectoryFollower(len(ALOHA_JOINT_NAMES), TICK_NS,
                                                interpolate=interpolate, lead_ns=TICK_NS)
        self.success_extra_steps = int(success_extra_steps)
        self.next_seed = int(first_seed)
        self.observation: AlohaObservation | None = None
        self.status: EpisodeStatus | None = None
        self._episode = 0

    @property
    def done(self) -> bool:
        """True when the current episode is over (or none was started)."""
        return self.status is None or self.status.done

    def reset(self, time_ns: int, seed: int | None = None) -> AlohaObservation:
        """Start an episode at ``time_ns`` with ``seed`` (default :attr:`next_seed`)."""
        seed = self.next_seed if seed is None else int(seed)
        self.observation = self.sim.reset(seed)
        self.next_seed = seed + 1
        self._episode += 1
        # Until a command arrives the arms hold the pose they start in.
        self.follower.reset(time_ns, self.observation.qpos)
        self._commands = hashlib.sha256()
        self.status = EpisodeStatus(
            task=self.config.task, seed=seed, episode=self._episode, step=0, reward=0.0,
            max_reward=0.0, success=False, first_success_step=None, done=False,
            stamp_s=time_ns * 1e-9)
        return self.observation

    def tick(self, time_ns: int, stamp_ns: int | None = None,
             target: np.ndarray | None = None) -> tuple[AlohaObservation, np.ndarray]:
        """Execute the control step starting at ``time_ns``: the observation, the target applied.

        The observation is stamped ``stamp_ns`` (default one tick later). ``target`` defaults
        to ``follower.sample(time_ns)``; a caller that guards the follower with a lock samples
        it itself and passes the result.
        """
        if self.status is None:
            raise RuntimeError("SimRobot.tick called before reset")
        if target is None:
            target = self.follower.sample(time_ns)
        self.observation, reward, success, info = self.sim.step(target)
        self._commands.update(np.asarray(target, dtype=np.float64).tobytes())
        status = self.status
        status.command_digest = self._commands.hexdigest()[:16]
        status.step = self.observation.step
        status.reward = reward
        status.max_reward = info["max_reward"]
        status.obstacle_touched = self.sim.obstacle_touched
        status.stamp_s = (time_ns + TICK_NS if stamp_ns is None else stamp_ns) * 1e-9
        if success and status.first_success_step is None:
            status.first_success_step = status.step
            status.success = True
        status.done = status.step >= self.config.episode_steps or (
            status.first_success_step is not None
            and status.step >= status.first_success_step + self.success_extra_steps)
        return self.observation, target

    def close(self) -> None:
        """Free the simulator's rendering resources (from the thread that stepped it)."""
        self.sim.close()
