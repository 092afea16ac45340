# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training on several processes (GPUs or machines) with PyTorch DistributedDataParallel.

Start one process per GPU with ``torchrun`` (``accelerate launch`` sets the same variables):
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` say which process this is, ``MASTER_ADDR`` /
``MASTER_PORT`` where rank 0 waits (the ``env://`` rendezvous). Without them (``WORLD_SIZE``
unset or 1) nothing here does anything and training runs in the one process.

:class:`DistributedRun` is that process's place in the run: it starts the process group (NCCL
for CUDA, gloo for the CPU), wraps the training objective in
:class:`~torch.nn.parallel.DistributedDataParallel` and offers the few collectives the training
loop needs (mean of the step metrics, any-rank stop request, gathering per-rank RNG states,
rank 0's values to every rank). This module imports torch only when a method runs.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
from typing import TYPE_CHECKING, Any

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.devices import resolve_device

if TYPE_CHECKING:
    import torch

_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def _int_variable(name: str, default: str) -> int:
    text = os.environ.get(name, default)
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r}: must be an integer (as torchrun sets it)") from None


@dataclasses.dataclass(frozen=True)
class DistributedRun:
    """This process's rank among ``world_size`` training processes (one by default)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    """This process's index on its machine: its GPU is ``cuda:<local_rank>``."""

    @property
    def enabled(self) -> bool:
        """True with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one process that writes checkpoints, logs and progress."""
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> DistributedRun:
        """The run torchrun's variables describe (``WORLD_SIZE`` unset or 1: one process)."""
        world_size = _int_variable("WORLD_SIZE", "1")
        if world_size <= 1:
            return cls()
        missing = [name for name in _VARIABLES if name not in os.environ]
        if missing:
            raise ConfigError(f"WORLD_SIZE={world_size} but {', '.join(missing)} not set: start "
                              "the processes with torchrun (or accelerate launch)")
        rank, local_rank = _int_variable("RANK", "0"), _int_variable("LOCAL_RANK", "0")
        if not 0 <= rank < world_size:
            raise ConfigError(f"RANK={rank} is outside WORLD_SIZE={world_size}")
        return cls(rank=rank, world_size=world_size, local_rank=local_rank)

    def device(self, name: str = "auto") -> torch.device:
        """This process's torch device for the setting ``name`` (``cuda:<local_rank>`` on GPUs).

        A fixed ``cuda:N`` would put every process on one GPU, so it is refused when distributed.
        """
        if not self.enabled:
            return resolve_device(name, 0)
        if str(name).strip().startswith("cuda:"):
            raise ConfigError(f"device={name!r} would put every process on one GPU: use auto or "
                              "cuda with torchrun (each process takes cuda:LOCAL_RANK)")
        device = resolve_device(name, self.local_rank)
        if device.type not in ("cuda", "cpu"):
            raise ConfigError(f"device={name!r}: distributed training runs on cuda or cpu")
        return device

    def start(self, device: torch.device) -> None:
        """Join the process group (NCCL on CUDA, gloo on the CPU) unless already joined."""
        if not self.enabled:
            return
        import torch
        import torch.distributed as dist

        if not dist.is_available():
            raise ConfigError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
        if device.type == "cuda":
            torch.cuda.set_device(device)  # NCCL collectives run on the current device
        if dist.is_initialized():
            return
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                init_method="env://", rank=self.rank,
                                world_size=self.world_size)
        # Left open for later runs of this process (a second stage); closed at exit after a
        # barrier, so no rank tears the group down while a peer still finishes a collective, and
        # gloo's threads are joined (an open group at exit can abort with "terminate called").
        atexit.register(_close_process_group)

    def wrap(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``module`` in DistributedDataParallel (itself when not distributed).

        Only parameters with ``requires_grad`` take part in the gradient all-reduce, so a frozen
        prefix costs nothing. ``find_unused_parameters`` as in LeRobot's training: a backend may
        leave some trainable parameters out of a step's graph. Buffers (normalisation
        statistics, caches) are identical on every rank and are not re-broadcast each step.
        """
        if not self.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, output_device=ids[0] if ids
                                       else None, find_unused_parameters=True,
                                       broadcast_buffers=False)

    def mean(self, values: dict[str, float], device: torch.device) -> dict[str, float]:
        """Each value averaged over the ranks (one all-reduce): per-rank batch means -> global."""
        if not self.enabled or not values:
            return values
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return dict(zip(values, (tensor / self.world_size).tolist()))

    def any_true(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is true on any (a stop request reaches all)."""
        if not self.enabled:
            return flag
        import torch
        import torch.distributed as dist

        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank (``[value]`` alone)."""
        if not self.enabled:
            return [value]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a picklable object; ``value`` alone)."""
        if not self.enabled:
            return value
        import torch.distributed as dist

        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def _close_process_group() -> None:
    """At exit: wait for every rank, then close the process group (best effort)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    try:
        dist.barrier()
        dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - a peer already gone: nothing left to close cleanly
        pass
