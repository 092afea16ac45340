# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The one device rule of training and inference."""

from __future__ import annotations

import pytest
import torch

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.devices import resolve_device

CUDA = torch.cuda.is_available()


def test_auto_is_cuda_when_available_else_cpu():
    assert resolve_device("auto") == torch.device("cuda" if CUDA else "cpu")
    # A distributed process picks its own GPU.
    assert resolve_device("auto", local_rank=1) == torch.device("cuda:1" if CUDA else "cpu")


def test_explicit_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" cpu ") == torch.device("cpu")
    for name in ("nonsense", "tpu"):
        with pytest.raises(ConfigError, match=f"device='{name}'"):
            resolve_device(name)


@pytest.mark.skipif(CUDA, reason="checks the refusal on a machine without CUDA")
def test_cuda_without_cuda_is_a_config_error_for_training_and_inference():
    for name, rank in (("cuda", None), ("cuda", 0), ("cuda:0", None)):
        with pytest.raises(ConfigError, match="no CUDA device is available"):
            resolve_device(name, local_rank=rank)


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_index_follows_the_rank_and_must_exist():
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda", local_rank=0) == torch.device("cuda:0")
    assert resolve_device("cuda:0", local_rank=3) == torch.device("cuda:0")  # explicit wins
    with pytest.raises(ConfigError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
