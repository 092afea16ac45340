# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The sim robot core: commands through the trajectory follower, episode ends and seeds."""

import json

import numpy as np
import pytest

from snapflow_ros.sim.aloha_env import AlohaSimConfig
from snapflow_ros.sim.scripted_expert import ScriptedExpert
from snapflow_ros.sim.sim_robot import TICK_NS, SimRobot


def make_robot(sim, **kwargs):
    return SimRobot(AlohaSimConfig(task=sim.config.task, episode_steps=kwargs.pop("steps", 400)),
                    first_seed=kwargs.pop("seed", 0), sim=sim, **kwargs)


def test_without_commands_the_arms_hold_their_start_pose(transfer_cube_sim):
    robot = make_robot(transfer_cube_sim)
    start = robot.reset(0).qpos
    for k in range(20):
        obs, target = robot.tick(k * TICK_NS)
    np.testing.assert_allclose(target, start)
    assert np.abs(obs.qpos[:6] - start[:6]).max() < 0.05


def test_episode_ends_at_episode_steps_and_the_next_seed_follows(transfer_cube_sim):
    robot = make_robot(transfer_cube_sim, steps=5, seed=30)
    robot.reset(0)
    assert robot.status.seed == 30 and not robot.done
    for k in range(5):
        robot.tick(k * TICK_NS)
    status = json.loads(robot.status.to_json())
    assert status["done"] and status["step"] == 5 and not status["success"]
    assert status["stamp_s"] == pytest.approx(0.1)
    robot.reset(5 * TICK_NS)
    assert robot.status.seed == 31 and robot.status.episode == 2 and robot.status.step == 0
    robot.next_seed = 7  # as when the ``seed`` parameter is set before ``~/reset``
    robot.reset(6 * TICK_NS)
    assert robot.status.seed == 7


@pytest.mark.slow
def test_streamed_expert_commands_succeed_and_end_the_episode_after_extra_steps(
        transfer_cube_sim):
    plan = ScriptedExpert("transfer_cube").plan(seed=3)
    robot = make_robot(transfer_cube_sim, seed=3, success_extra_steps=4)
    robot.reset(0)
    step = 0
    while not robot.done:
        # A policy answers each observation with one point stamped with that observation.
        robot.follower.insert([step * TICK_NS], [plan.actions[step]], now_ns=step * TICK_NS)
        robot.tick(step * TICK_NS)
        step += 1
    status = robot.status
    assert status.success and status.first_success_step is not None
    assert status.step == status.first_success_step + 4 < 400


@pytest.mark.slow
def test_status_reports_touching_the_obstacle(obstacle_sim):
    # transfer_cube's plan hands over where transfer_cube_obstacle's post stands.
    plan = ScriptedExpert("transfer_cube").plan(seed=3)
    robot = make_robot(obstacle_sim, seed=3, steps=150)
    robot.reset(0)
    assert json.loads(robot.status.to_json())["obstacle_touched"] is False
    for step in range(150):
        robot.tick(step * TICK_NS, target=plan.actions[step])
    status = json.loads(robot.status.to_json())
    assert status["obstacle_touched"] is True and status["max_reward"] == 0
