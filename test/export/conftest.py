# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the export tests: a tiny compact checkpoint with random weights, exported once."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from onnx_fixtures import write_random_checkpoint


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory) -> Path:
    """The checkpoint directory of :func:`write_random_checkpoint`."""
    return write_random_checkpoint(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="session")
def exported(random_checkpoint, tmp_path_factory) -> dict:
    """``snapflow export onnx --batch dynamic --quantize dynamic`` of it, run once.

    ``{"folder", "code", "stdout", "checkpoint"}``.
    """
    from snapflow_ros import cli

    folder = tmp_path_factory.mktemp("export") / "tiny_onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main(["export", "onnx", "--checkpoint", str(random_checkpoint.parent.parent),
                         "--out", str(folder), "--batch", "dynamic", "--quantize", "dynamic"])
    return {"folder": folder, "code": code, "stdout": printed.getvalue(),
            "checkpoint": random_checkpoint}


@pytest.fixture(scope="session")
def reference_policy(random_checkpoint):
    """The checkpoint loaded in PyTorch (CPU, eval mode)."""
    from snapflow_ros.policies.checkpoint import load_policy

    return load_policy(random_checkpoint)
