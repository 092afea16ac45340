# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the simulator tests (run with the simulator environment, Python 3.11)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

# MuJoCo reads the OpenGL backend once, on first import: headless EGL unless the caller chose.
os.environ.setdefault("MUJOCO_GL", "egl")

HAVE_SIMULATOR = importlib.util.find_spec("gym_aloha") is not None


def pytest_collection_modifyitems(config, items):
    """Skip these tests, with the reason, in an environment without the simulator."""
    if HAVE_SIMULATOR:
        return
    here = Path(__file__).resolve().parent
    skip = pytest.mark.skip(reason="needs the simulator environment (.venv-sim: gym-aloha, "
                            "MuJoCo 2.3.7); run .venv-sim/bin/python -m pytest test/sim")
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)


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


@pytest.fixture(scope="session")
def obstacle_sim():
    """One 128 px TransferCube-with-a-post simulator shared by the tests of a run."""
    from snapflow_ros.sim.aloha_env import AlohaSim, AlohaSimConfig

    sim = AlohaSim(AlohaSimConfig(task="transfer_cube_obstacle", image_size=128))
    yield sim
    sim.close()
