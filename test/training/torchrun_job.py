# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training runs of the tiny task, started by torchrun (or called in one process) for the tests.

``python -m torch.distributed.run --nproc_per_node 2 torchrun_job.py SPEC.json`` runs the runs the
spec lists one after the other in every process, as ``snapflow train`` would (the process group
from torchrun's variables, in :func:`~snapflow_ros.training.trainer.run_training`), and each
rank writes ``<results>/<name>.rank<r>.json``. :func:`run_spec` is the same in one process.

The objective's noise and times come from :class:`SharedDraws` here, so that the runs compare
across process counts (see ``test_distributed.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import torch
from tiny_task import ReachDataset, build_policy

from snapflow_ros.policies.checkpoint import latest_checkpoint, load_policy
from snapflow_ros.snapflow import objective
from snapflow_ros.training.config import TrainConfig
from snapflow_ros.training.trainer import run_training

DRAWS_FILE = "shared_draws.pt"
"""The :class:`SharedDraws` generator state, kept inside each checkpoint for a resume."""


class SharedDraws:
    """The objective's noise and times for the global batch, from one generator every rank holds.

    Every call draws for ``world_size`` times the rows asked for and returns this rank's slice,
    so ranks 0 and 1 of ``b`` rows each get exactly the rows a single process of ``2 b`` rows
    gets, and all generators stay in step.
    """

    def __init__(self, seed: int, rank: int, world_size: int) -> None:
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator().manual_seed(seed)

    def _slice(self, full: torch.Tensor, rows: int) -> torch.Tensor:
        return full[self.rank * rows:(self.rank + 1) * rows]

    def noise(self, shape, *, generator=None, device=None, dtype=None) -> torch.Tensor:
        rows = int(shape[0])
        full = torch.randn((rows * self.world_size, *shape[1:]), generator=self.generator)
        return self._slice(full, rows).to(device=device, dtype=dtype or torch.float32)

    def time(self, batch_size, distribution="uniform", *, generator=None, device=None,
             dtype=None) -> torch.Tensor:
        full = torch.rand(batch_size * self.world_size, generator=self.generator)
        return self._slice(full, batch_size).to(device=device, dtype=dtype or torch.float32)

    @contextlib.contextmanager
    def installed(self):
        """Route the objective's draws here inside the block."""
        saved = objective.sample_noise, objective.sample_time
        objective.sample_noise, objective.sample_time = self.noise, self.time
        try:
            yield
        finally:
            objective.sample_noise, objective.sample_time = saved


def run_spec(spec: dict, rank: int = 0, world_size: int = 1) -> None:
    """Run every run of ``spec`` in order; ``batch_size`` is the global batch, split by rank."""
    torch.set_num_threads(1)
    dataset = ReachDataset(spec["samples"], seed=0)
    results = Path(spec["results"])
    for run in spec["runs"]:
        out_dir = Path(run["out_dir"])
        if run.get("init"):
            policy = load_policy(run["init"])
        else:  # no dropout, no image shifts: nothing random outside the objective's draws
            policy = build_policy(dataset, seed=0, dropout=0.0, random_shift_pixels=0)
        config = TrainConfig(stage=run["stage"], steps=run["steps"], device="cpu",
                             batch_size=spec["batch_size"] // world_size, lr=3e-3,
                             warmup_steps=1, log_every=1, val_every=0,
                             checkpoint_every=run.get("checkpoint_every", 0),
                             alpha=run.get("alpha", 0.5), seed=3)
        draws = SharedDraws(11, rank, world_size)
        found = latest_checkpoint(out_dir) if run.get("resume") else None
        if found is not None:  # continue the shared draws where the checkpoint left them
            draws.generator.set_state(torch.load(found / DRAWS_FILE))

        def keep_draws(path: Path, draws: SharedDraws = draws) -> None:
            torch.save(draws.generator.get_state(), path / DRAWS_FILE)

        with draws.installed():
            result = run_training(policy, dataset, None, config, out_dir, resume=run.get(
                "resume", False), progress=False, on_checkpoint=keep_draws)
        results.mkdir(parents=True, exist_ok=True)
        (results / f"{run['name']}.rank{rank}.json").write_text(json.dumps({
            "step": result.step, "loss": result.loss, "checkpoint": str(result.checkpoint)}))


if __name__ == "__main__":
    run_spec(json.loads(Path(sys.argv[1]).read_text()), int(os.environ["RANK"]),
             int(os.environ["WORLD_SIZE"]))
