# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Scripted expert demonstrations for the ALOHA sim tasks (the ACT recipe).

Two passes per episode, both with the object poses of the same seed:

1. End-effector pass: gym-aloha's mocap variant of the task follows a hand-written schedule of
   gripper poses (position, orientation, open/close) interpolated per control step; after each
   step the arm joints reached are recorded with the commanded gripper opening (the label is
   the command, not the finger joints, which stop on the object).
2. Tracking correction (ours, ``tracking_corrections=1``): the joint position controllers lag
   and sag under load, so replayed joints miss the recorded path by ~7 mrad on average and 3 in
   40 insertions end with the peg stuck on the socket rim. One headless replay measures the
   error and the command is shifted by it (one step of iterative learning control); the
   corrected replay tracks ~6x closer and inserts 40/40 (measured on seeds 0-39).
3. Joint-space pass: the commands are replayed as actions in the joint-space task
   (:class:`~snapflow_ros.sim.aloha_env.AlohaSim`), which renders the observations. Only this
   pass counts for success: it is the environment a policy is evaluated in.

``transfer_cube_obstacle`` is multimodal on purpose: TransferCube's meeting point is taken by a
post, so the expert hands the cube over 10 cm in front of it or behind it, drawn per seed
(:func:`strategy_for_seed`). Both ways succeed (100/100 seeds each, seeds 0-99); the step-wise
mean of the two joint plans of a seed runs the left arm into the post (0/100), as a policy that
averages the modes would.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from snapflow_ros.sim.aloha_env import (
    OBSTACLE_XYZ,
    TASKS,
    AlohaSim,
    AlohaSimConfig,
    make_task_environment,
    object_poses_for_seed,
)


class Waypoint(NamedTuple):
    """Gripper pose to reach at control step ``step``: xyz (m), quat (w, x, y, z), gripper."""

    step: int
    xyz: np.ndarray
    quat: np.ndarray
    gripper: float  # normalised opening: 0 closed .. 1 open


@dataclasses.dataclass
class Demonstration:
    """One scripted episode replayed in the joint-space task; arrays indexed by control step."""

    task: str
    seed: int
    images: np.ndarray  # (T, H, W, 3) uint8: observation before action t
    qpos: np.ndarray  # (T, 14) joint positions before action t
    qvel: np.ndarray  # (T, 14) joint velocities before action t
    actions: np.ndarray  # (T, 14) commanded joint targets (gripper: commanded opening)
    rewards: np.ndarray  # (T,) reward after action t
    success: bool  # the joint-space replay reached the task's success reward
    first_success_step: int | None  # 1-based step count at which it first succeeded
    # (T, 7 N) object poses before action t (AlohaObservation.object_poses); None: not recorded
    object_poses: np.ndarray | None = None
    strategy: str | None = None  # the plan's strategy (multimodal tasks), else None

    @property
    def num_steps(self) -> int:
        """Number of (observation, action) pairs."""
        return len(self.actions)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of quaternions in (w, x, y, z) order."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ])


def quat_from_axis_angle(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    """Unit quaternion (w, x, y, z) rotating by ``degrees`` about ``axis``."""
    axis = np.asarray(axis, dtype=np.float64)
    half = np.deg2rad(degrees) / 2.0
    return np.concatenate([[np.cos(half)], np.sin(half) * axis / np.linalg.norm(axis)])


def quat_slerp(a: np.ndarray, b: np.ndarray, fraction: float) -> np.ndarray:
    """Spherical interpolation from ``a`` (fraction 0) to ``b`` (fraction 1), shortest arc."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    dot = float(np.dot(a, b))
    if dot < 0.0:
        b, dot = -b, -dot
    if dot > 0.9995:  # nearly parallel: the linear blend is exact enough and stable
        q = a + fraction * (b - a)
        return q / np.linalg.norm(q)
    angle = np.arccos(dot)
    return (np.sin((1 - fraction) * angle) * a + np.sin(fraction * angle) * b) / np.sin(angle)


def interpolate_waypoints(waypoints: list[Waypoint], step: int) -> tuple[np.ndarray, float]:
    """Gripper pose at ``step``: (8,) xyz + quat, and the gripper opening; holds past the end."""
    if step <= waypoints[0].step:
        w = waypoints[0]
        return np.concatenate([w.xyz, w.quat]), w.gripper
    for before, after in zip(waypoints, waypoints[1:]):
        if before.step <= step <= after.step:
            f = (step - before.step) / max(after.step - before.step, 1)
            xyz = before.xyz + f * (after.xyz - before.xyz)
            quat = quat_slerp(before.quat, after.quat, f)
            gripper = before.gripper + f * (after.gripper - before.gripper)
            return np.concatenate([xyz, quat]), gripper
    w = waypoints[-1]
    return np.concatenate([w.xyz, w.quat]), w.gripper


# Where TransferCube's arms meet: the cube is held here (m).
TRANSFER_CUBE_MEETING_POINT = (0.0, 0.5, 0.25)
# transfer_cube_obstacle: the two ways past the post, chosen per seed with probability 1/2:
# hand over in front of it (y - offset, towards the front cameras; the right arm passes the post
# on its left) or behind it (y + offset).
OBSTACLE_STRATEGIES = ("front", "back")
OBSTACLE_PASS_OFFSET = 0.1  # m, in y from the post's axis
TASK_STRATEGIES = {"transfer_cube_obstacle": OBSTACLE_STRATEGIES}


def strategy_for_seed(task: str, seed: int) -> str | None:
    """The scripted expert's strategy of ``seed`` (each with equal probability); None: one only."""
    strategies = TASK_STRATEGIES.get(task)
    if strategies is None:
        return None
    # Its own stream: the seed's first draws are the object poses.
    rng = np.random.default_rng([int(seed), 0x5EED])
    return strategies[int(rng.integers(len(strategies)))]


def transfer_cube_waypoints(init_left: np.ndarray, init_right: np.ndarray,
                            box_xyz: np.ndarray, meet: np.ndarray | None = None,
                            ) -> tuple[list[Waypoint], list[Waypoint]]:
    """Left and right gripper schedules that hand the cube from the right arm to the left.

    ``init_left``/``init_right``: initial mocap poses (7,) xyz + quat; ``box_xyz`` (3,) in m;
    ``meet``: where the cube is handed over (default :data:`TRANSFER_CUBE_MEETING_POINT`).
    """
    pick = quat_multiply(init_right[3:], quat_from_axis_angle((0, 1, 0), -60))
    meet_left = quat_from_axis_angle((1, 0, 0), 90)
    meet = np.array(TRANSFER_CUBE_MEETING_POINT if meet is None else meet, dtype=np.float64)
    rest = np.array([1.0, 0.0, 0.0, 0.0])
    left_wait = meet + [-0.1, 0, -0.02]
    left_grasp = meet + [0.02, 0, -0.02]
    left = [
        Waypoint(0, init_left[:3], init_left[3:], 0.0),
        Waypoint(100, left_wait, meet_left, 1.0),  # wait beside the meeting point, open
        Waypoint(260, left_grasp, meet_left, 1.0),  # reach around the held cube
        Waypoint(310, left_grasp, meet_left, 0.0),  # close on it
        Waypoint(360, left_wait, rest, 0.0),  # pull it away
        Waypoint(400, left_wait, rest, 0.0),
    ]
    right = [
        Waypoint(0, init_right[:3], init_right[3:], 0.0),
        Waypoint(90, box_xyz + [0, 0, 0.08], pick, 1.0),  # above the cube, open
        Waypoint(130, box_xyz + [0, 0, -0.015], pick, 1.0),  # down around it
        Waypoint(170, box_xyz + [0, 0, -0.015], pick, 0.0),  # close
        Waypoint(200, meet + [0.05, 0, 0], pick, 0.0),  # lift towards the meeting point
        Waypoint(220, meet, pick, 0.0),
        Waypoint(310, meet, pick, 1.0),  # release once the left gripper holds it
        Waypoint(360, meet + [0.1, 0, 0], pick, 1.0),  # retreat
        Waypoint(400, meet + [0.1, 0, 0], pick, 1.0),
    ]
    return left, right


def insertion_waypoints(init_left: np.ndarray, init_right: np.ndarray, peg_xyz: np.ndarray,
                        socket_xyz: np.ndarray) -> tuple[list[Waypoint], list[Waypoint]]:
    """Schedules that pick the socket (left) and the peg (right) and push the peg in.

    Poses as in :func:`transfer_cube_waypoints`; ``peg_xyz``, ``socket_xyz`` (3,) in m.
    """
    pick_right = quat_multiply(init_right[3:], quat_from_axis_angle((0, 1, 0), -60))
    pick_left = quat_multiply(init_left[3:], quat_from_axis_angle((0, 1, 0), 60))
    meet = np.array([0.0, 0.5, 0.15])
    # The peg is held 7 mm higher so that it lines up with the socket's hole.
    peg_lift = np.array([0.0, 0.0, 0.00715])
    left = [
        Waypoint(0, init_left[:3], init_left[3:], 0.0),
        Waypoint(120, socket_xyz + [0, 0, 0.08], pick_left, 1.0),
        Waypoint(170, socket_xyz + [0, 0, -0.03], pick_left, 1.0),
        Waypoint(220, socket_xyz + [0, 0, -0.03], pick_left, 0.0),
        Waypoint(285, meet + [-0.1, 0, 0], pick_left, 0.0),
        Waypoint(340, meet + [-0.05, 0, 0], pick_left, 0.0),
        Waypoint(400, meet + [-0.05, 0, 0], pick_left, 0.0),
    ]
    right = [
        Waypoint(0, init_right[:3], init_right[3:], 0.0),
        Waypoint(120, peg_xyz + [0, 0, 0.08], pick_right, 1.0),
        Waypoint(170, peg_xyz + [0, 0, -0.03], pick_right, 1.0),
        Waypoint(220, peg_xyz + [0, 0, -0.03], pick_right, 0.0),
        Waypoint(285, meet + [0.1, 0, 0] + peg_lift, pick_right, 0.0),
        Waypoint(340, meet + [0.05, 0, 0] + peg_lift, pick_right, 0.0),
        Waypoint(400, meet + [0.05, 0, 0] + peg_lift, pick_right, 0.0),
    ]
    return left, right


# Arm joints of the 14-dim action (the grippers, 6 and 13, are commanded openings).
ARM_JOINTS = np.array([0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12])


@dataclasses.dataclass
class JointPlan:
    """Joint commands planned for one seed: the end-effector path, tracking-corrected."""

    task: str
    seed: int
    actions: np.ndarray  # (T, 14) arm joint commands (rad) + commanded gripper opening
    reference: np.ndarray  # (T, 14) arm joints the end-effector pass reached after each step
    end_effector_max_reward: float  # highest reward of the end-effector pass itself
    tracking_error: float  # mean |arm joint - reference| (rad) of the last headless replay
    strategy: str | None = None  # the way a multimodal task was solved (TASK_STRATEGIES)


class ScriptedExpert:
    """The scripted policy for one task; reuses its MuJoCo models across episodes."""

    def __init__(self, task: str, *, episode_steps: int = 400, tracking_corrections: int = 1,
                 render_backend: str = "auto") -> None:
        if task not in TASKS:
            raise ValueError(f"task={task!r}: must be one of {', '.join(TASKS)}")
        if tracking_corrections < 0:
            raise ValueError("tracking_corrections must be >= 0")
        self.task = task
        self.episode_steps = episode_steps
        self.tracking_corrections = tracking_corrections
        self._render_backend = render_backend
        self._ee_env = None
        self._joint_env = None

    def waypoints(self, observation: dict, strategy: str | None = None,
                  ) -> tuple[list[Waypoint], list[Waypoint]]:
        """Left and right schedules for the first observation of an end-effector episode."""
        left, right = observation["mocap_pose_left"], observation["mocap_pose_right"]
        objects = np.asarray(observation["env_state"])
        if self.task == "transfer_cube":
            return transfer_cube_waypoints(left, right, objects[:3])
        if self.task == "transfer_cube_obstacle":
            side = -1.0 if strategy == "front" else 1.0
            meet = np.array([TRANSFER_CUBE_MEETING_POINT[0], OBSTACLE_XYZ[1]
                             + side * OBSTACLE_PASS_OFFSET, TRANSFER_CUBE_MEETING_POINT[2]])
            return transfer_cube_waypoints(left, right, objects[:3], meet)
        return insertion_waypoints(left, right, objects[:3], objects[7:10])

    def plan(self, seed: int, strategy: str | None = None) -> JointPlan:
        """End-effector pass for ``seed``, then the tracking corrections (no rendering).

        ``strategy``: one of ``TASK_STRATEGIES[task]`` (default: :func:`strategy_for_seed`).
        """
        strategies = TASK_STRATEGIES.get(self.task, ())
        if strategy is None:
            strategy = strategy_for_seed(self.task, seed)
        elif strategy not in strategies:
            raise ValueError(f"strategy={strategy!r}: {self.task} has "
                             f"{', '.join(strategies) or 'no strategies'}")
        if self._ee_env is None:
            self._ee_env = make_task_environment(self.task, end_effector=True,
                                                 render_backend=self._render_backend)
        env = self._ee_env
        env.task.object_poses = object_poses_for_seed(self.task, seed)
        first = env.reset()
        left, right = self.waypoints(first.observation, strategy)
        reference = np.zeros((self.episode_steps, 14))
        max_reward = 0.0
        for step in range(self.episode_steps):
            left_pose, left_grip = interpolate_waypoints(left, step)
            right_pose, right_grip = interpolate_waypoints(right, step)
            reward = env.step(np.concatenate([left_pose, [left_grip], right_pose, [right_grip]]))
            max_reward = max(max_reward, float(reward.reward or 0.0))
            # The joints the mocap weld pulled the arm to during this step become the target.
            qpos = env.physics.data.qpos
            reference[step, :6] = qpos[:6]
            reference[step, 6] = left_grip
            reference[step, 7:13] = qpos[8:14]
            reference[step, 13] = right_grip
        actions = reference.copy()
        error = float("nan")
        for _ in range(self.tracking_corrections):
            reached = self._replay_headless(seed, actions)
            actions[:, ARM_JOINTS] += reference[:, ARM_JOINTS] - reached[:, ARM_JOINTS]
            error = float(np.abs(reference[:, ARM_JOINTS] - reached[:, ARM_JOINTS]).mean())
        return JointPlan(self.task, int(seed), actions, reference, max_reward, error, strategy)

    def _replay_headless(self, seed: int, actions: np.ndarray) -> np.ndarray:
        """Joint positions (T, 14) after each step of ``actions`` in the joint-space task."""
        if self._joint_env is None:
            self._joint_env = make_task_environment(self.task,
                                                    render_backend=self._render_backend)
        env = self._joint_env
        env.task.object_poses = object_poses_for_seed(self.task, seed)
        env.reset()
        return np.array([env.step(action).observation["qpos"] for action in actions])

    def demonstrate(self, seed: int, sim: AlohaSim) -> Demonstration:
        """Plan for ``seed`` and replay the plan in ``sim`` (which renders the observations)."""
        return self.replay(self.plan(seed), sim)

    def replay(self, plan: JointPlan, sim: AlohaSim) -> Demonstration:
        """Replay ``plan`` in the joint-space ``sim`` from its seed's object poses."""
        if sim.config.task != plan.task:
            raise ValueError(f"sim runs {sim.config.task!r}, the plan is for {plan.task!r}")
        seed = plan.seed
        steps = len(plan.actions)
        size = sim.config.image_size
        images = np.zeros((steps, size, size, 3), dtype=np.uint8)
        qpos = np.zeros((steps, 14))
        qvel = np.zeros((steps, 14))
        rewards = np.zeros(steps)
        first_success = None
        obs = sim.reset(seed)
        object_poses = np.zeros((steps, len(obs.object_poses)))
        for step, action in enumerate(plan.actions):
            images[step], qpos[step], qvel[step] = obs.image, obs.qpos, obs.qvel
            object_poses[step] = obs.object_poses
            obs, rewards[step], success, _ = sim.step(action)
            if success and first_success is None:
                first_success = step + 1
        return Demonstration(
            task=plan.task, seed=seed, images=images, qpos=qpos, qvel=qvel,
            actions=plan.actions.copy(), rewards=rewards, success=first_success is not None,
            first_success_step=first_success, object_poses=object_poses, strategy=plan.strategy,
        )


def make_demonstration_sim(task: str, image_size: int = 128, **overrides) -> AlohaSim:
    """An :class:`AlohaSim` set up for recording demonstrations of ``task``."""
    return AlohaSim(AlohaSimConfig(task=task, image_size=image_size, **overrides))
