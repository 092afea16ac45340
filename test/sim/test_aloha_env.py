# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The simulated ALOHA: observation layout, seeds -> object poses, no action clipping."""

import numpy as np
import pytest

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.sim.aloha_env import (
    ALOHA_JOINT_NAMES,
    OBSTACLE_GEOM,
    OBSTACLE_XYZ,
    TASKS,
    AlohaSimConfig,
    object_poses_for_seed,
    select_render_backend,
)
from snapflow_ros.sim.scripted_expert import ScriptedExpert


def test_joint_names_are_fourteen_per_arm_joints_then_gripper():
    assert len(ALOHA_JOINT_NAMES) == 14
    assert ALOHA_JOINT_NAMES[:7] == (
        "left_waist", "left_shoulder", "left_elbow", "left_forearm_roll", "left_wrist_angle",
        "left_wrist_rotate", "left_gripper")
    assert ALOHA_JOINT_NAMES[7:] == tuple(n.replace("left", "right") for n in ALOHA_JOINT_NAMES[:7])


def test_reset_and_step_return_image_qpos_reward_and_success(transfer_cube_sim):
    obs = transfer_cube_sim.reset(seed=0)
    assert obs.image.shape == (128, 128, 3) and obs.image.dtype == np.uint8
    assert obs.qpos.shape == (14,) and obs.qvel.shape == (14,) and obs.step == 0
    assert obs.image.std() > 10, "the rendered camera image is blank"
    obs, reward, success, info = transfer_cube_sim.step(obs.qpos)
    assert obs.image.shape == (128, 128, 3) and obs.step == 1
    assert reward == 0.0 and success is False
    assert info == {"is_success": False, "max_reward": 0.0, "step": 1}


def test_same_seed_gives_same_poses_and_pixels_other_seed_differs(transfer_cube_sim):
    first = transfer_cube_sim.reset(seed=11)
    poses = transfer_cube_sim.object_poses()
    again = transfer_cube_sim.reset(seed=11)
    np.testing.assert_array_equal(transfer_cube_sim.object_poses(), poses)
    np.testing.assert_array_equal(again.image, first.image)
    transfer_cube_sim.reset(seed=12)
    assert not np.allclose(transfer_cube_sim.object_poses()[:3], poses[:3])


def test_seed_gives_the_pose_of_the_stock_gym_env(transfer_cube_sim):
    # LeRobot evaluates in gym_aloha.AlohaEnv: a seed must mean the same cube pose there.
    from gym_aloha.env import AlohaEnv
    from gym_aloha.tasks.sim import BOX_POSE

    AlohaEnv(task="transfer_cube", observation_width=64, observation_height=48).reset(seed=5)
    stock_pose = np.array(BOX_POSE[0])
    transfer_cube_sim.reset(seed=5)
    np.testing.assert_allclose(transfer_cube_sim.object_poses(), stock_pose, atol=1e-9)


def test_insertion_places_peg_right_and_socket_left(insertion_sim):
    insertion_sim.reset(seed=3)
    poses = insertion_sim.object_poses()
    assert poses.shape == (14,)
    np.testing.assert_allclose(poses, object_poses_for_seed("insertion", 3))
    assert 0.1 <= poses[0] <= 0.2 and -0.2 <= poses[7] <= -0.1


def test_actions_outside_the_declared_box_are_not_clipped(transfer_cube_sim):
    obs = transfer_cube_sim.reset(seed=0)
    target = obs.qpos.copy()
    target[0] = 1.5  # left waist: beyond the (wrong) Box(-1, 1) action space
    for _ in range(60):
        obs, *_ = transfer_cube_sim.step(target)
    assert obs.qpos[0] > 1.2


def test_step_rejects_wrong_action_shape(transfer_cube_sim):
    transfer_cube_sim.reset(seed=0)
    with pytest.raises(ValueError, match="14"):
        transfer_cube_sim.step(np.zeros(7))


@pytest.mark.parametrize("field, value", [
    ("image_size", 96), ("task", "push_t"), ("control_rate_hz", 30.0), ("camera", "wrist"),
    ("episode_steps", 0),
])
def test_config_rejects_invalid_values(field, value):
    with pytest.raises(ConfigError, match=field):
        AlohaSimConfig(**{field: value})


def test_render_backend_cannot_change_once_mujoco_rendering_is_loaded(transfer_cube_sim):
    from dm_control import _render

    other = "osmesa" if _render.BACKEND != "osmesa" else "egl"
    with pytest.raises(ConfigError, match="already loaded"):
        select_render_backend(other)


def test_obstacle_task_is_transfer_cube_with_a_fixed_post(obstacle_sim):
    assert "transfer_cube_obstacle" in TASKS
    np.testing.assert_array_equal(object_poses_for_seed("transfer_cube_obstacle", 9),
                                  object_poses_for_seed("transfer_cube", 9))
    obstacle_sim.reset(seed=9)
    assert obstacle_sim.object_poses().shape == (7,)  # the post is static: only the cube moves
    physics = obstacle_sim.physics
    np.testing.assert_allclose(physics.named.data.geom_xpos[OBSTACLE_GEOM], OBSTACLE_XYZ)
    assert not obstacle_sim.obstacle_touched


@pytest.mark.slow
def test_touching_the_post_fails_the_episode_from_then_on(obstacle_sim, transfer_cube_sim):
    # The expert passes in front of the post; from step 200, while the right arm holds the
    # lifted cube, the left arm follows transfer_cube's plan, which meets where the post stands.
    front = ScriptedExpert("transfer_cube_obstacle").plan(seed=2, strategy="front").actions
    straight = ScriptedExpert("transfer_cube").plan(seed=2).actions
    actions = front.copy()
    actions[200:, :6] = straight[200:, :6]
    transfer_cube_sim.reset(seed=2)
    plain = np.array([transfer_cube_sim.step(a)[1] for a in actions[:300]])
    obstacle_sim.reset(seed=2)
    blocked, touched = [], []
    for action in actions[:300]:
        blocked.append(obstacle_sim.step(action)[1])
        touched.append(obstacle_sim.obstacle_touched)
    first_touch = touched.index(True)
    assert not transfer_cube_sim.obstacle_touched and all(touched[first_touch:])
    assert 200 <= first_touch < 230, first_touch
    np.testing.assert_array_equal(blocked[:first_touch], plain[:first_touch])
    assert blocked[first_touch - 1] >= 2  # the right arm lifted the cube
    assert plain[first_touch:250].min() >= 2, "without the post the cube stays lifted"
    assert max(blocked[first_touch:]) == 0
