# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Command timing: a chunk sent as the policy node sends it runs as the demonstrations ran.

The policy node sends action ``i`` of a chunk observed at ``t`` as the point to reach at
``t + (i + 1) * tick``; the recordings applied action ``t`` during step ``t``. The sim robot's
follower executes a point during the step that ends at its time, so both agree.
"""

import numpy as np
import pytest

from snapflow_ros.runtime.chunk_scheduler import ActionChunkScheduler, SchedulerConfig
from snapflow_ros.sim.aloha_env import AlohaSimConfig
from snapflow_ros.sim.scripted_expert import ScriptedExpert
from snapflow_ros.sim.sim_robot import TICK_NS, SimRobot
from snapflow_ros.sim.trajectory_follower import JointTrajectoryFollower


def node_trajectory(scheduler, chunk, now_ns):
    """The policy node's trajectory for ``chunk`` observed (and ready) at ``now_ns``."""
    now = now_ns * 1e-9
    scheduler.add_chunk(chunk, t_obs=now, t_ready=now)
    points = scheduler.take_trajectory(now)
    return [now_ns + round(t * 1e9) for t, _ in points], [p for _, p in points]


def test_a_chunk_point_runs_during_the_step_that_ends_at_its_time():
    follower = JointTrajectoryFollower(1, TICK_NS, lead_ns=TICK_NS)
    follower.reset(0, [0.0])
    observed = 5 * TICK_NS
    follower.insert([observed + (i + 1) * TICK_NS for i in range(3)], [[1.0], [2.0], [3.0]],
                    now_ns=observed)
    assert follower.covers(observed + 2 * TICK_NS) and not follower.covers(observed + 3 * TICK_NS)
    assert [follower.sample(observed + i * TICK_NS)[0] for i in range(4)] == [1.0, 2.0, 3.0, 3.0]


def test_a_recorded_command_stamped_with_its_observation_runs_during_that_step():
    # Demonstration bags: one point, time_from_start 0, stamped with the observation's stamp.
    follower = JointTrajectoryFollower(1, TICK_NS, lead_ns=TICK_NS)
    follower.reset(0, [0.0])
    follower.insert([4 * TICK_NS], [[7.0]], now_ns=4 * TICK_NS)
    assert follower.covers(4 * TICK_NS)
    assert follower.sample(4 * TICK_NS)[0] == 7.0


@pytest.mark.slow
@pytest.mark.parametrize("n_act", [1, 10])
def test_expert_actions_through_the_node_timing_run_exactly_as_recorded(transfer_cube_sim, n_act):
    plan = ScriptedExpert("transfer_cube").plan(seed=3)
    robot = SimRobot(AlohaSimConfig(task="transfer_cube", episode_steps=60), 3,
                     sim=transfer_cube_sim)
    scheduler = ActionChunkScheduler(SchedulerConfig(n_act=n_act, prefetch_threshold=0,
                                                     blending="none", chunk_size=20))
    now = TICK_NS
    robot.reset(now)
    executed = []
    while not robot.done:
        step = robot.status.step
        if scheduler.time_until_inference(now * 1e-9) <= 0:
            chunk = plan.actions[step:step + 20]
            times, positions = node_trajectory(scheduler, chunk, now)
            robot.follower.insert(times, positions, now)
        assert robot.follower.covers(now), "lockstep would wait for a command here"
        executed.append(robot.tick(now, now + TICK_NS)[1])
        now += TICK_NS
    # Step t executed action t of the plan: no tick of delay, no interpolated step between chunks.
    np.testing.assert_array_equal(np.array(executed), plan.actions[:60])
