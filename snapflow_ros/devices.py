# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The one rule that turns a ``device`` setting into a torch device, for training and inference.

- ``auto``: CUDA when available (``cuda:<local_rank>`` when a rank is given), else the CPU;
- ``cuda``: the same CUDA device, and :class:`~snapflow_ros.config_fields.ConfigError` without
  CUDA: asking for a GPU that is not there is a setting to fix, not a reason to run 100x slower;
- ``cuda:N``, ``cpu``, ``mps``: as given, refused when the machine does not have it.

torch is imported when the function runs, so configs can name this rule without loading it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from snapflow_ros.config_fields import ConfigError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """The torch device for the setting ``name`` (auto, cpu, cuda, cuda:N, mps).

    ``local_rank``: this process's GPU in a distributed run (torchrun's ``LOCAL_RANK``); it picks
    the index of ``auto`` and ``cuda``. Raises :class:`ConfigError` for a device this machine does
    not have, including a local rank past the machine's GPU count.
    """
    import torch

    text = str(name).strip()
    cuda = torch.cuda.is_available()
    index = "" if local_rank is None else f":{int(local_rank)}"
    if text == "auto" and not cuda:
        return torch.device("cpu")
    try:
        device = torch.device(f"cuda{index}" if text in ("auto", "cuda") else text)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"device={name!r}: not a device (use auto, cpu, cuda, cuda:N or "
                          f"mps): {exc}") from None
    if device.type == "cuda":
        if not cuda:
            raise ConfigError(f"device={name!r} but no CUDA device is available (use cpu or "
                              "auto)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            if local_rank is not None and text in ("auto", "cuda"):
                # More processes on this machine than GPUs (torchrun --nproc_per_node).
                raise ConfigError(f"local rank {local_rank} has no GPU: this machine has {count} "
                                  f"CUDA device(s); start at most {count} process(es) per machine")
            raise ConfigError(f"device={str(device)!r} but this machine has {count} CUDA "
                              "device(s)")
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(f"device={name!r} but MPS is not available (use cpu or auto)")
    elif device.type != "cpu":
        raise ConfigError(f"device={name!r}: use auto, cpu, cuda, cuda:N or mps")
    return device
