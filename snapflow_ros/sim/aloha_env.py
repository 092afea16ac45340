# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The simulated ALOHA robot: gym-aloha's joint-space TransferCube / Insertion tasks, fast.

:class:`AlohaSim` drives gym-aloha's MuJoCo tasks through dm_control, but renders only one
camera at the configured size with shadows and multisampling off (the stock gym env renders
three 640x480 cameras with shadows every step, ~20x slower). Object poses come from the seed
exactly as ``gym_aloha.AlohaEnv.reset(seed)`` draws them, so seeds mean the same poses here and
in LeRobot's gym evaluation.

``transfer_cube_obstacle`` (ours, not in gym-aloha) is TransferCube with a fixed post where the
arms meet: a multimodal task whose scripted expert passes the post in front or behind (see
:mod:`~snapflow_ros.sim.scripted_expert`); touching the post fails the episode.

Units: arm joints in radians, grippers normalised (0 closed, 1 open), 50 Hz control. The env's
declared ``Box(-1, 1)`` action space is wrong and actions are never clipped to it.

MuJoCo, dm_control and gym-aloha are imported lazily, after the OpenGL backend is chosen
(``MUJOCO_GL`` is read once, when dm_control is first imported).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from snapflow_ros.config_fields import ConfigError, check_config, param

TASKS = ("transfer_cube", "insertion", "transfer_cube_obstacle")
CONTROL_RATE_HZ = 50.0
CONTROL_PERIOD_S = 1.0 / CONTROL_RATE_HZ
CAMERAS = ("top", "angle", "left_pillar", "right_pillar", "front_close", "left_wrist",
           "right_wrist")
RENDER_BACKENDS = ("auto", "egl", "osmesa", "glfw")

# Per arm: six revolute joints (radians) then the normalised gripper (0 closed .. 1 open).
ALOHA_JOINT_NAMES = tuple(
    f"{side}_{joint}"
    for side in ("left", "right")
    for joint in ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate",
                  "gripper")
)
GRIPPER_INDICES = (6, 13)

# Task strings as LeRobot's ALOHA sim datasets phrase them.
TASK_DESCRIPTIONS = {
    "transfer_cube": "Pick up the cube with the right arm and transfer it to the left arm.",
    "insertion": "Insert the peg into the socket.",
    "transfer_cube_obstacle": "Pick up the cube with the right arm and transfer it to the left "
                              "arm without touching the post.",
}

# Objects of each task, in gym-aloha's env_state order (one free joint of 7 numbers each).
OBJECT_NAMES = {
    "transfer_cube": ("cube",),
    "insertion": ("peg", "socket"),
    "transfer_cube_obstacle": ("cube",),
}

# transfer_cube_obstacle: TransferCube with a fixed post (a static cylinder standing on the
# table) where the arms of TransferCube meet, so the hand-over happens in front of it or behind
# it; touching it with an arm or the cube fails the episode (reward 0 from then on). The cube
# starts at x >= 0 (its near face at x >= -0.02), clear of the post's x <= -0.035.
OBSTACLE_GEOM = "obstacle"
OBSTACLE_XYZ = (-0.05, 0.5, 0.25)  # centre of the post (m)
OBSTACLE_RADIUS = 0.015  # m
OBSTACLE_HALF_HEIGHT = 0.25  # m: from the table top (z = 0) to 0.5 m, above the arms' path
_OBSTACLE_XML = (
    f'<geom name="{OBSTACLE_GEOM}" type="cylinder" '
    f'size="{OBSTACLE_RADIUS} {OBSTACLE_HALF_HEIGHT}" '
    f'pos="{" ".join(str(v) for v in OBSTACLE_XYZ)}" rgba="0.9 0.8 0.1 1"/>'
)
# Scene and scripted expert of each task variant (the obstacle adds no joint: same poses).
_BASE_TASK = {"transfer_cube_obstacle": "transfer_cube"}

# Scene files of gym-aloha: joint-position control, and the mocap (end-effector) variant.
_SCENE_FILES = {
    ("transfer_cube", False): "bimanual_viperx_transfer_cube.xml",
    ("insertion", False): "bimanual_viperx_insertion.xml",
    ("transfer_cube", True): "bimanual_viperx_end_effector_transfer_cube.xml",
    ("insertion", True): "bimanual_viperx_end_effector_insertion.xml",
}


@dataclasses.dataclass(frozen=True)
class AlohaSimConfig:
    """The simulated ALOHA task, camera and episode length."""

    task: str = param("transfer_cube", "Simulated task.", choices=TASKS)
    image_size: int = param(
        128, "Side of the square camera image (pixels); >= 128 (the 4 cm cube is ~3 px at 96).",
        low=128, high=1024,
    )
    camera: str = param("top", "MuJoCo camera rendered as the robot's camera.", choices=CAMERAS)
    episode_steps: int = param(
        400, "Control steps per episode (scripted insertion succeeds at steps ~356-364).",
        low=1, high=100000,
    )
    control_rate_hz: float = param(
        CONTROL_RATE_HZ, "Control rate (Hz); fixed at 50 by the task's dynamics.",
        low=CONTROL_RATE_HZ, high=CONTROL_RATE_HZ,
    )
    render_backend: str = param(
        "auto", "OpenGL backend for MuJoCo (auto: $MUJOCO_GL if set, else egl).",
        choices=RENDER_BACKENDS,
    )

    def __post_init__(self) -> None:
        check_config(self)


@dataclasses.dataclass
class AlohaObservation:
    """One observation of the simulated robot at control step ``step``."""

    image: np.ndarray  # (H, W, 3) uint8 RGB from the configured camera
    qpos: np.ndarray  # (14,) float64: per arm 6 joints (rad) + gripper (0 closed .. 1 open)
    qvel: np.ndarray  # (14,) float64: joint velocities (rad/s), gripper in normalised units/s
    step: int  # control steps since reset
    # (7 N,) float64: per object (OBJECT_NAMES order) position (m) then quaternion (w, x, y, z)
    object_poses: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))


def poses_in_ros_order(object_poses: np.ndarray) -> np.ndarray:
    """(7 N,) poses as xyz + quaternion wxyz -> (N, 7) as geometry_msgs orders them: xyz, xyzw."""
    poses = np.asarray(object_poses, dtype=np.float64).reshape(-1, 7)
    return poses[:, [0, 1, 2, 4, 5, 6, 3]]


def object_poses_for_seed(task: str, seed: int) -> np.ndarray:
    """Object poses for ``seed`` as gym-aloha draws them: (7,) cube or (14,) peg then socket.

    Each pose is position (m) then quaternion (w, x, y, z).
    """
    if task not in TASKS:
        raise ConfigError(f"task={task!r}: must be one of {', '.join(TASKS)}")
    if not 0 <= int(seed) < 2**32:
        raise ConfigError(f"seed={seed!r}: must be in [0, 2**32)")
    from gym_aloha.utils import sample_box_pose, sample_insertion_pose

    if _BASE_TASK.get(task, task) == "transfer_cube":
        return np.asarray(sample_box_pose(int(seed)), dtype=np.float64)
    return np.concatenate(sample_insertion_pose(int(seed))).astype(np.float64)


def select_render_backend(backend: str) -> str:
    """Set ``MUJOCO_GL`` (and PyOpenGL's platform) before dm_control loads; return the backend.

    Raises :class:`ConfigError` when dm_control was already loaded with another backend.
    """
    if backend not in RENDER_BACKENDS:
        raise ConfigError(f"render_backend={backend!r}: must be one of {RENDER_BACKENDS}")
    if backend == "auto":
        backend = os.environ.get("MUJOCO_GL", "egl")
    loaded = sys.modules.get("dm_control._render")
    if loaded is not None:
        if loaded.BACKEND != backend:
            raise ConfigError(
                f"render_backend={backend!r} but MuJoCo rendering was already loaded with "
                f"{loaded.BACKEND!r} in this process (set MUJOCO_GL before the first import)"
            )
        return backend
    os.environ["MUJOCO_GL"] = backend
    if backend in ("egl", "osmesa"):
        os.environ["PYOPENGL_PLATFORM"] = backend
    return backend


@functools.cache
def _task_classes() -> dict[tuple[str, bool], type]:
    """gym-aloha task classes that render nothing and take object poses from the caller."""
    from dm_control.suite import base
    from gym_aloha.tasks import sim, sim_end_effector

    def observe(self, physics) -> dict:
        # The stock tasks render three 640x480 cameras here on every step; the caller renders
        # the one camera it needs instead.
        return {
            "qpos": self.get_qpos(physics),
            "qvel": self.get_qvel(physics),
            "env_state": self.get_env_state(physics),
        }

    def joint_space(parent: type) -> type:
        def initialize_episode(self, physics) -> None:
            # The stock tasks read the poses from this module-level slot.
            sim.BOX_POSE[0] = self.object_poses
            parent.initialize_episode(self, physics)

        return type(f"Headless{parent.__name__}", (parent,), {
            "object_poses": None,
            "initialize_episode": initialize_episode,
            "get_observation": observe,
        })

    def end_effector(parent: type) -> type:
        def initialize_episode(self, physics) -> None:
            # The stock end-effector tasks draw poses from an unseeded RandomState.
            self.initialize_robots(physics)
            start = 16  # the 16 robot joints come first, then one free joint (7) per object
            physics.data.qpos[start:start + len(self.object_poses)] = self.object_poses
            base.Task.initialize_episode(self, physics)

        def observe_with_mocap(self, physics) -> dict:
            obs = observe(self, physics)
            obs["mocap_pose_left"] = np.concatenate(
                [physics.data.mocap_pos[0], physics.data.mocap_quat[0]])
            obs["mocap_pose_right"] = np.concatenate(
                [physics.data.mocap_pos[1], physics.data.mocap_quat[1]])
            return obs

        return type(f"Headless{parent.__name__}", (parent,), {
            "object_poses": None,
            "initialize_episode": initialize_episode,
            "get_observation": observe_with_mocap,
        })

    def avoiding_obstacle(parent: type) -> type:
        def initialize_episode(self, physics) -> None:
            self.obstacle_touched = False
            parent.initialize_episode(self, physics)

        def get_reward(self, physics) -> float:
            # Contacts are checked once per control step (after its 10 physics steps).
            self.obstacle_touched = self.obstacle_touched or touches_obstacle(physics)
            return 0 if self.obstacle_touched else parent.get_reward(self, physics)

        return type(f"{parent.__name__}AvoidingObstacle", (parent,), {
            "obstacle_touched": False,
            "initialize_episode": initialize_episode,
            "get_reward": get_reward,
        })

    classes = {
        ("transfer_cube", False): joint_space(sim.TransferCubeTask),
        ("insertion", False): joint_space(sim.InsertionTask),
        ("transfer_cube", True): end_effector(sim_end_effector.TransferCubeEndEffectorTask),
        ("insertion", True): end_effector(sim_end_effector.InsertionEndEffectorTask),
    }
    for variant, base_task in _BASE_TASK.items():
        for mocap in (False, True):
            classes[variant, mocap] = avoiding_obstacle(classes[base_task, mocap])
    return classes


def touches_obstacle(physics) -> bool:
    """True when a moving body (an arm link, the cube) touches the obstacle geom now."""
    obstacle = physics.model.name2id(OBSTACLE_GEOM, "geom")
    model, data = physics.model, physics.data
    for contact in data.contact[:data.ncon]:
        if obstacle in (contact.geom1, contact.geom2):
            other = contact.geom2 if contact.geom1 == obstacle else contact.geom1
            if model.body_weldid[model.geom_bodyid[other]] != 0:  # 0: fixed to the world
                return True
    return False


@functools.cache
def _scene_assets() -> dict[str, bytes]:
    """gym-aloha's scene files and meshes by name, for a scene loaded from a string."""
    from gym_aloha.constants import ASSETS_DIR

    return {p.name: p.read_bytes() for p in Path(ASSETS_DIR).iterdir() if p.is_file()}


def _load_physics(task: str, end_effector: bool) -> Any:
    from dm_control import mujoco
    from gym_aloha.constants import ASSETS_DIR

    scene = Path(ASSETS_DIR) / _SCENE_FILES[_BASE_TASK.get(task, task), end_effector]
    if task not in _BASE_TASK:
        return mujoco.Physics.from_xml_path(str(scene))
    xml = scene.read_text().replace("</worldbody>", f"{_OBSTACLE_XML}\n</worldbody>", 1)
    return mujoco.Physics.from_xml_string(xml, assets=_scene_assets())


def make_task_environment(task: str, *, end_effector: bool = False,
                          render_backend: str = "auto") -> Any:
    """A dm_control ``control.Environment`` for ``task`` stepping at 50 Hz, rendering nothing.

    Set ``env.task.object_poses`` (see :func:`object_poses_for_seed`) before ``env.reset()``.
    ``end_effector`` selects the mocap variant (actions: per arm xyz, quat wxyz, gripper).
    """
    if task not in TASKS:
        raise ConfigError(f"task={task!r}: must be one of {', '.join(TASKS)}")
    select_render_backend(render_backend)
    from dm_control.rl import control

    physics = _load_physics(task, end_effector)
    return control.Environment(
        physics, _task_classes()[task, end_effector](), time_limit=float("inf"),
        control_timestep=CONTROL_PERIOD_S, n_sub_steps=None, flat_observation=False,
    )


class AlohaSim:
    """gym-aloha's joint-space task with one fast camera; one instance per thread."""

    def __init__(self, config: AlohaSimConfig | None = None) -> None:
        self.config = config or AlohaSimConfig()
        self._env = make_task_environment(self.config.task,
                                          render_backend=self.config.render_backend)
        physics = self._env.physics
        # Shadows (4096^2 maps) and multisampling dominate CPU rendering time.
        physics.model.light_castshadow[:] = 0
        physics.model.vis.quality.offsamples = 0
        size = self.config.image_size
        vis = physics.model.vis.global_
        vis.offwidth, vis.offheight = max(vis.offwidth, size), max(vis.offheight, size)
        from dm_control import mujoco

        self._camera = mujoco.Camera(physics, height=size, width=size,
                                     camera_id=self.config.camera)
        self._step = 0
        self._seed: int | None = None
        self._max_reward = 0.0

    @property
    def physics(self) -> Any:
        """The dm_control ``Physics`` (for inspection; do not step it directly)."""
        return self._env.physics

    @property
    def obstacle_touched(self) -> bool:
        """transfer_cube_obstacle: the post was touched in this episode (always False elsewhere)."""
        return bool(getattr(self._env.task, "obstacle_touched", False))

    @property
    def max_reward(self) -> float:
        """The task's success reward (4 for both tasks)."""
        return float(self._env.task.max_reward)

    @property
    def seed(self) -> int | None:
        """Seed of the current episode (None before the first reset)."""
        return self._seed

    @property
    def step_count(self) -> int:
        """Control steps since the last reset."""
        return self._step

    @property
    def episode_max_reward(self) -> float:
        """Highest reward seen in the current episode."""
        return self._max_reward

    def object_poses(self) -> np.ndarray:
        """Current object poses (position m, quaternion wxyz): (7,) or (14,)."""
        return np.array(self._env.physics.data.qpos[16:], dtype=np.float64)

    def render(self) -> np.ndarray:
        """The configured camera's current view: (H, W, 3) uint8 RGB."""
        return self._camera.render()

    def _observe(self, raw: dict) -> AlohaObservation:
        return AlohaObservation(image=self.render(), qpos=np.asarray(raw["qpos"], np.float64),
                                qvel=np.asarray(raw["qvel"], np.float64), step=self._step,
                                object_poses=self.object_poses())

    def reset(self, seed: int) -> AlohaObservation:
        """Start an episode with the object poses of ``seed``; arms at the rest pose."""
        self._env.task.object_poses = object_poses_for_seed(self.config.task, seed)
        time_step = self._env.reset()
        self._seed, self._step, self._max_reward = int(seed), 0, 0.0
        return self._observe(time_step.observation)

    def close(self) -> None:
        """Free the OpenGL and MuJoCo resources; call it from the thread that rendered.

        EGL contexts freed by the garbage collector from another thread (e.g. at interpreter
        exit) fail with noisy, harmless tracebacks.
        """
        if self._camera is not None:
            self._camera = None
            self._env.physics.free()

    def __enter__(self) -> AlohaSim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def step(self, action: np.ndarray) -> tuple[AlohaObservation, float, bool, dict]:
        """Apply one 14-dim joint-position target for 20 ms.

        Returns the next observation, the reward (0..4), whether this step succeeded
        (reward == 4, gym-aloha's ``is_success``) and an info dict with ``is_success``,
        ``max_reward`` (episode so far) and ``step``.
        """
        if self._seed is None or self._camera is None:
            raise RuntimeError("AlohaSim.step called before reset(seed) or after close()")
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (len(ALOHA_JOINT_NAMES),) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be 14 finite numbers, got shape {action.shape}")
        time_step = self._env.step(action)
        self._step += 1
        reward = float(time_step.reward or 0.0)
        self._max_reward = max(self._max_reward, reward)
        success = reward >= self.max_reward
        info = {"is_success": success, "max_reward": self._max_reward, "step": self._step}
        return self._observe(time_step.observation), reward, success, info
