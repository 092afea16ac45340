# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the simulator tests (run with the simulator environment, Python 3.11)."""

from __future__ import annotations

import os

import pytest

# MuJoCo reads the OpenGL backend once, on first import: headless EGL unless the caller chose.
os.environ.setdefault("MUJOCO_GL", "egl")

pytest.importorskip("gym_aloha", reason="the simulator tests run in the sim environment "
                    "(.venv-sim: gym-aloha, MuJoCo 2.3.7)")


@pytest.fixture(scope="session")
def transfer_cube_sim():
    """One 128 px TransferCube simulator shared by the tests of a run."""
    from snapflow_ros.sim.aloha_env import AlohaSim, AlohaSimConfig

    sim = AlohaSim(AlohaSimConfig(task="transfer_cube", image_size=128))
    yield sim
    sim.close()


@pytest.fixture(scope="session")
def insertion_sim():
    """One 128 px Insertion simulator shared by the tests of a run."""
    from snapflow_ros.sim.aloha_env import AlohaSim, AlohaSimConfig

    sim = AlohaSim(AlohaSimConfig(task="insertion", image_size=128))
    yield sim
    sim.close()
