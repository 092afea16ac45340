# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the training tests: small in-memory train and validation sets."""

from __future__ import annotations

import pytest
import torch
from tiny_task import ReachDataset


@pytest.fixture(scope="session")
def train_set() -> ReachDataset:
    return ReachDataset(96, seed=0)


@pytest.fixture(scope="session")
def val_set() -> ReachDataset:
    return ReachDataset(24, seed=1)


@pytest.fixture(autouse=True)
def single_thread():
    """Run the tiny models on one thread: a second one only adds contention at this size."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
