# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The scripted expert: waypoint interpolation, both passes on one seed, success per task."""

import dataclasses

import numpy as np
import pytest

from snapflow_ros.sim.aloha_env import OBSTACLE_XYZ, make_task_environment, object_poses_for_seed
from snapflow_ros.sim.scripted_expert import (
    ARM_JOINTS,
    OBSTACLE_STRATEGIES,
    ScriptedExpert,
    Waypoint,
    interpolate_waypoints,
    quat_from_axis_angle,
    quat_multiply,
    quat_slerp,
    strategy_for_seed,
)

IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])


def test_quaternion_helpers_compose_rotations():
    quarter = quat_from_axis_angle((1, 0, 0), 90)
    half = quat_from_axis_angle((1, 0, 0), 180)
    np.testing.assert_allclose(quat_multiply(quarter, quarter), half, atol=1e-12)
    np.testing.assert_allclose(quat_slerp(IDENTITY, quat_from_axis_angle((0, 0, 1), 90), 0.5),
                               quat_from_axis_angle((0, 0, 1), 45), atol=1e-12)


def test_waypoints_are_interpolated_per_step_and_held_after_the_last():
    half_turn = quat_from_axis_angle((0, 1, 0), -60)
    schedule = [Waypoint(0, np.zeros(3), IDENTITY, 0.0),
                Waypoint(10, np.array([1.0, 0.0, 0.2]), half_turn, 1.0)]
    pose, grip = interpolate_waypoints(schedule, 5)
    np.testing.assert_allclose(pose[:3], [0.5, 0.0, 0.1])
    np.testing.assert_allclose(np.linalg.norm(pose[3:]), 1.0)
    assert grip == pytest.approx(0.5)
    pose, grip = interpolate_waypoints(schedule, 50)
    np.testing.assert_allclose(pose, np.concatenate([[1.0, 0.0, 0.2], half_turn]))
    assert grip == 1.0


def test_end_effector_pass_starts_from_the_seed_poses_of_the_joint_pass(insertion_sim):
    env = make_task_environment("insertion", end_effector=True)
    env.task.object_poses = object_poses_for_seed("insertion", 21)
    first = env.reset()
    insertion_sim.reset(seed=21)
    np.testing.assert_allclose(first.observation["env_state"], insertion_sim.object_poses())


def test_plan_labels_grippers_with_the_commanded_opening():
    plan = ScriptedExpert("transfer_cube").plan(seed=2)
    assert plan.actions.shape == (400, 14)
    right_grip = plan.actions[:, 13]
    # Commanded: open fully by the approach (step 90), closed from step 170 until the hand-over.
    assert right_grip[90] == pytest.approx(1.0) and right_grip[200] == pytest.approx(0.0)
    assert np.all((plan.actions[:, [6, 13]] >= 0.0) & (plan.actions[:, [6, 13]] <= 1.0))


@pytest.mark.slow
@pytest.mark.parametrize("task, seeds", [("transfer_cube", (0, 1)), ("insertion", (0, 1))])
def test_scripted_demonstrations_succeed_in_the_joint_space_task(
        task, seeds, transfer_cube_sim, insertion_sim):
    sim = transfer_cube_sim if task == "transfer_cube" else insertion_sim
    expert = ScriptedExpert(task)
    for seed in seeds:
        plan = expert.plan(seed)
        demo = expert.replay(plan, sim)
        assert demo.success, f"{task} seed {seed}: max reward {demo.rewards.max()}"
        assert demo.images.shape == (400, 128, 128, 3) and demo.actions.shape == (400, 14)
        # The corrected commands make the replay follow the end-effector pass's joint path.
        error = np.abs(demo.qpos[1:, ARM_JOINTS] - plan.reference[:-1, ARM_JOINTS]).mean()
        assert error < 0.003, f"mean tracking error {error:.4f} rad"


@pytest.mark.slow
def test_tracking_correction_brings_the_replay_onto_the_end_effector_path():
    once = ScriptedExpert("insertion", tracking_corrections=1).plan(seed=6)
    twice = ScriptedExpert("insertion", tracking_corrections=2).plan(seed=6)
    np.testing.assert_array_equal(once.reference, twice.reference)
    # Error of the uncorrected replay vs. the error left after one correction.
    assert twice.tracking_error < once.tracking_error / 3


def test_obstacle_strategy_is_drawn_from_the_seed_with_equal_odds():
    drawn = [strategy_for_seed("transfer_cube_obstacle", seed) for seed in range(400)]
    assert drawn == [strategy_for_seed("transfer_cube_obstacle", seed) for seed in range(400)]
    assert set(drawn) == set(OBSTACLE_STRATEGIES) == {"front", "back"}
    assert 160 <= drawn.count("front") <= 240
    assert strategy_for_seed("transfer_cube", 0) is None
    with pytest.raises(ValueError, match="strategy"):
        ScriptedExpert("transfer_cube").plan(0, strategy="front")


@pytest.mark.slow
def test_obstacle_expert_succeeds_both_ways_and_the_average_of_its_plans_hits_the_post(
        obstacle_sim):
    expert = ScriptedExpert("transfer_cube_obstacle")
    seed = 1
    plans = {side: expert.plan(seed, side) for side in OBSTACLE_STRATEGIES}
    assert expert.plan(seed).strategy == strategy_for_seed("transfer_cube_obstacle", seed)
    for side, plan in plans.items():
        demo = expert.replay(plan, obstacle_sim)
        assert demo.success and not obstacle_sim.obstacle_touched, side
        assert demo.strategy == side
        # The cube is handed over in front of the post (smaller y) or behind it.
        cube_y = demo.object_poses[300, 1]
        assert (cube_y < OBSTACLE_XYZ[1] - 0.05) if side == "front" else \
            (cube_y > OBSTACLE_XYZ[1] + 0.05), (side, cube_y)
    # What a policy regressing to the mean of the two ways would do.
    mean = dataclasses.replace(plans["front"], strategy=None,
                               actions=(plans["front"].actions + plans["back"].actions) / 2)
    demo = expert.replay(mean, obstacle_sim)
    assert obstacle_sim.obstacle_touched and not demo.success and demo.rewards.max() == 0
