# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The training loop for both stages: teacher flow matching and SnapFlow self-distillation.

:func:`run_training` takes any :class:`~snapflow_ros.policies.base.FlowMatchingPolicy`, torch
datasets yielding per-sample dicts in the batch layout of :mod:`snapflow_ros.policies.base`
(without the batch dimension), a :class:`~snapflow_ros.training.config.TrainConfig` and a run
directory. The run directory receives ``checkpoints/step_<n>`` (self-contained, see
:mod:`snapflow_ros.policies.checkpoint`), ``latest`` and ``metrics.jsonl``.

- ``teacher`` stage: :func:`~snapflow_ros.snapflow.objective.flow_matching_loss` on
  ``policy.trainable_parameters("teacher")``.
- ``snapflow`` stage: ``policy.prefix_parameters()`` are frozen (so the prefix is encoded once
  per batch without gradient) and :func:`~snapflow_ros.snapflow.objective.snapflow_loss` trains
  ``policy.trainable_parameters("snapflow")``.

Optimiser AdamW, linear warm-up then cosine decay, gradient-norm clipping. With ``ema_decay`` > 0
an exponential moving average of the trained parameters (:mod:`snapflow_ros.training.ema`) is
what validation measures and what every checkpoint's weights hold (what gets deployed); the raw
weights go into the checkpoint's resume state beside the average. With ``resume=True`` the run
continues from the run directory's latest checkpoint with the same weights (raw and average),
optimiser, schedule, data position and RNG states, so on one process a resumed run reproduces
the uninterrupted run exactly.

Several GPUs or machines: start one process per GPU with ``torchrun`` (see
:mod:`snapflow_ros.training.distributed`). The stage's loss is computed in the ``forward`` of a
small module around the policy, wrapped in ``DistributedDataParallel``: DDP averages the
gradients of the trainable parameters (the frozen prefix takes no part). ``batch_size`` is per
process, as in LeRobot: one optimiser step uses ``batch_size * WORLD_SIZE`` samples, each process
a disjoint slice of the step's global batch; the logged loss is the mean over the processes (the
global batch's). Each rank draws its own noise and times (seed ``seed + rank``), and in the
snapflow stage splits its own rows by ``alpha``. Rank 0 alone validates, logs, shows progress and
writes checkpoints (with every rank's RNG state); every rank updates the same EMA from the same
synchronised weights. On resume every rank loads the checkpoint rank 0 found, so for several
machines the run directory must be on a shared filesystem.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from snapflow_ros.config_fields import ConfigError, config_to_dict
from snapflow_ros.evaluation.metrics import per_sample_mse
from snapflow_ros.policies.base import FlowMatchingPolicy
from snapflow_ros.policies.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_train_state,
    load_weights,
    save_checkpoint,
)
from snapflow_ros.snapflow.objective import flow_matching_loss, snapflow_loss
from snapflow_ros.snapflow.sampler import sample_chunk, sample_noise
from snapflow_ros.training.config import TrainConfig
from snapflow_ros.training.distributed import DistributedRun
from snapflow_ros.training.ema import WeightEMA, load_raw_parameters

LOGGER = logging.getLogger(__name__)
METRICS_FILE = "metrics.jsonl"


@dataclasses.dataclass
class TrainResult:
    """Outcome of :func:`run_training`."""

    step: int
    """Optimiser steps completed (including those before a resume)."""
    loss: float
    """Mean training loss over the last logging window (nan if no step ran)."""
    val_metrics: dict[str, float]
    """The last validation metrics (empty without a validation set)."""
    checkpoint: Path | None
    """The last checkpoint written (or resumed from)."""
    stopped_early: bool
    """True when ``should_stop`` ended the run before ``config.steps``."""
    elapsed_s: float
    """Wall time of this call, seconds."""


def collate_samples(samples: list[dict]) -> dict:
    """Stack per-sample dicts into a batch: tensors, arrays and numbers stacked, strings listed."""
    first = samples[0]
    if isinstance(first, dict):
        return {key: collate_samples([sample[key] for sample in samples]) for key in first}
    if isinstance(first, torch.Tensor):
        return torch.stack(samples)
    if isinstance(first, np.ndarray):
        return torch.from_numpy(np.stack(samples))
    if isinstance(first, bool):
        return torch.tensor(samples, dtype=torch.bool)
    if isinstance(first, (int, float)):
        return torch.tensor(samples)
    return list(samples)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: _to_device(value, device) for key, value in batch.items()}
    return batch


class StepBatchSampler(Sampler[list[int]]):
    """Endless index batches that are a pure function of ``(seed, step)``.

    Each epoch is a fresh permutation seeded by ``(seed, epoch)``; step ``k`` always gets the
    same global batch, so a resumed run sees exactly the data it would have seen. With several
    processes each takes its own ``batch_size`` slice of the global batch.
    """

    def __init__(self, dataset_size: int, batch_size: int, *, seed: int, start_step: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if dataset_size < 1:
            raise ConfigError("the training dataset is empty")
        self.dataset_size = dataset_size
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.rank = rank
        self.world_size = world_size
        self.global_batch = batch_size * world_size
        # A dataset smaller than one global batch is cycled; otherwise the epoch's tail is dropped.
        self.batches_per_epoch = max(dataset_size // self.global_batch, 1)

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.dataset_size, generator=generator)
        if self.dataset_size < self.global_batch:
            order = order.repeat(math.ceil(self.global_batch / self.dataset_size))
        return order

    def __iter__(self):
        step, cached_epoch, order = self.start_step, -1, None
        while True:
            epoch, offset = divmod(step, self.batches_per_epoch)
            if epoch != cached_epoch:
                order, cached_epoch = self._epoch_order(epoch), epoch
            start = offset * self.global_batch + self.rank * self.batch_size
            yield order[start:start + self.batch_size].tolist()
            step += 1

    def __len__(self) -> int:
        return sys.maxsize


class _StageObjective(torch.nn.Module):
    """The stage's loss as a module's ``forward``, so that DistributedDataParallel can wrap it.

    DDP syncs gradients of what runs inside its wrapper's ``forward``; the losses call
    ``policy.encode`` / ``velocity``, not ``policy.forward``.
    """

    def __init__(self, policy: FlowMatchingPolicy, config: TrainConfig) -> None:
        super().__init__()
        self.policy = policy
        self.stage = config.stage
        self.time_distribution = config.time_distribution
        self.snap_config = config.snapflow_config()

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss (mean over this process's samples) and float metrics of one batch."""
        if self.stage == "teacher":
            return flow_matching_loss(self.policy, batch,
                                      time_distribution=self.time_distribution)
        return snapflow_loss(self.policy, batch, self.snap_config)


def _lr_factor(step: int, config: TrainConfig) -> float:
    """Learning-rate multiplier after ``step`` completed steps: linear warm-up, then cosine."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    decay_steps = max(config.steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / decay_steps, 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.min_lr_fraction + (1.0 - config.min_lr_fraction) * cosine


def _build_optimizer(parameters: list[torch.nn.Parameter],
                     config: TrainConfig) -> torch.optim.Optimizer:
    # Biases, norms and other vectors are not decayed: shrinking them only hurts.
    decay = [p for p in parameters if p.ndim >= 2]
    no_decay = [p for p in parameters if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr,
                             betas=(0.9, 0.95), eps=1e-8)


def _rng_state(cuda_device: torch.device | None = None) -> dict:
    """The RNG states (``cuda_device``: that GPU's only, as a rank of a distributed run uses)."""
    numpy_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        # Tensors rather than numpy arrays so that train_state.pt loads with weights_only=True.
        "numpy": (numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)),
                  int(numpy_state[2]), int(numpy_state[3]), float(numpy_state[4])),
    }
    if cuda_device is not None:
        state["cuda_device"] = torch.cuda.get_rng_state(cuda_device)
    elif torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, cuda_device: torch.device | None = None) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda_device" in state and cuda_device is not None:
        torch.cuda.set_rng_state(state["cuda_device"], cuda_device)
    elif "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _host(tensor: torch.Tensor | None) -> np.ndarray | None:
    """A tensor as a host numpy array (float tensors as float32), for the numpy metrics."""
    if tensor is None:
        return None
    tensor = tensor.detach()
    return (tensor.float() if tensor.is_floating_point() else tensor).cpu().numpy()


class _MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl`` (rank 0 only)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def write(self, record: dict) -> None:
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


def evaluate(policy: FlowMatchingPolicy, loader: DataLoader, config: TrainConfig,
             device: torch.device) -> dict[str, float]:
    """Validation loss and offline action MSE (robot units, padded steps excluded).

    The MSE is :func:`~snapflow_ros.evaluation.metrics.per_sample_mse`, the offline
    evaluation's: a sample without any valid step is left out of ``val_mse_*``.
    ``val_mse_<k>`` uses the stage's sampler (teacher: Euler; snapflow: chained jumps); in the
    snapflow stage ``val_mse_euler_<k>`` adds local-velocity Euler for comparison. Noise and
    times come from a generator seeded by ``config.seed``, so successive validations compare.
    """
    was_training = policy.training
    policy.eval()
    generator = torch.Generator().manual_seed(config.seed + 7919)
    modes = ["euler"] if config.stage == "teacher" else ["jump", "euler"]
    losses: list[float] = []
    weights: list[int] = []
    errors: dict[str, list[np.ndarray]] = {}
    snap_config = config.snapflow_config()
    try:
        for batch in loader:
            batch = _to_device(batch, device)
            rows = int(batch["state"].shape[0])
            with torch.no_grad():
                context = policy.encode(batch)
                if config.stage == "teacher":
                    loss, _ = flow_matching_loss(policy, batch, context, generator,
                                                 time_distribution=config.time_distribution)
                else:
                    loss, _ = snapflow_loss(policy, batch, snap_config, context, generator)
            losses.append(float(loss))
            weights.append(rows)
            noise = sample_noise((rows, policy.chunk_size, policy.action_dim),
                                 generator=generator, device=device)
            for steps in config.val_num_steps:
                for mode in modes:
                    chunk = sample_chunk(policy, context, num_steps=steps, mode=mode, noise=noise)
                    with torch.no_grad():
                        predicted = policy.to_robot_actions(chunk)
                    name = f"val_mse_{steps}" if mode == modes[0] else f"val_mse_{mode}_{steps}"
                    # The offline evaluation's metric: NaN for a sample without a valid step.
                    errors.setdefault(name, []).append(per_sample_mse(
                        _host(predicted), _host(batch["action"]),
                        _host(batch.get("action_is_pad"))))
    finally:
        policy.train(was_training)
    metrics = {"val_loss": float(np.average(losses, weights=weights)) if losses else math.nan}
    for name, parts in errors.items():
        per_sample = np.concatenate(parts)
        scored = per_sample[np.isfinite(per_sample)]  # fully padded samples have no error
        metrics[name] = float(scored.mean()) if scored.size else math.nan
        metrics[name.replace("val_mse", "val_mse_p95")] = (
            float(np.percentile(scored, 95)) if scored.size else math.nan)
    metrics["val_samples"] = float(sum(weights))
    return metrics


def run_training(
    policy: FlowMatchingPolicy,
    train_dataset: Dataset,
    val_dataset: Dataset | None,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    command: str = "",
    resume: bool = False,
    progress: bool = True,
    on_progress: Callable[[dict], None] | None = None,
    on_checkpoint: Callable[[Path], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train ``policy`` in place for ``config.steps`` steps; checkpoints go to ``out_dir``.

    Unset recipe fields of ``config`` (lr, batch size, ...) take the policy type's
    :func:`~snapflow_ros.training.config.training_defaults`.

    ``resume`` continues from ``out_dir``'s latest checkpoint (a fresh start if it has none).
    ``on_progress(dict)`` gets ``step``, ``steps``, ``loss``, ``lr``, ``samples_per_s`` and
    ``eta_s`` after every step; ``on_checkpoint(path)`` after every checkpoint;
    ``should_stop()`` is polled every step and ends the run after writing a checkpoint.
    On return the policy holds the last checkpoint's weights (the average with an EMA).
    """
    started = time.perf_counter()
    # Recipe fields the caller left unset take the policy's defaults (recorded in checkpoints).
    config = config.for_policy(policy.policy_type)
    out_dir = Path(out_dir)
    dist = DistributedRun.from_environment()
    device = dist.device(config.device)
    dist.start(device)
    # A distributed rank keeps its own GPU's RNG state only (the others are other ranks').
    rng_device = device if dist.enabled and device.type == "cuda" else None
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    metrics_log = _MetricsLog(out_dir / METRICS_FILE if dist.is_main else None)
    policy.to(device)

    if config.stage == "snapflow" and not policy.prefix_parameters() and dist.is_main:
        LOGGER.warning("%s declares no prefix parameters: nothing is frozen in the snapflow "
                       "stage", type(policy).__name__)
    parameters = policy.trainable_parameters(config.stage)
    if not parameters:
        raise ConfigError(f"{type(policy).__name__} has no trainable parameters in stage "
                          f"{config.stage!r}")
    # Everything the optimiser does not update is frozen for the run (restored at the end): no
    # wasted gradients, and the objective sees a frozen prefix and encodes it without autograd.
    trainable_ids = {id(p) for p in parameters}
    frozen_flags = [(p, p.requires_grad) for p in policy.parameters()
                    if id(p) not in trainable_ids]
    for parameter, _ in frozen_flags:
        parameter.requires_grad_(False)
    optimizer = _build_optimizer(parameters, config)
    names = {id(p): name for name, p in policy.named_parameters()}
    named_trainable = [(names[id(p)], p) for p in parameters]
    ema = WeightEMA(named_trainable, config.ema_decay) if config.ema_decay > 0 else None
    if dist.is_main:
        LOGGER.info("weight EMA: %s", f"on, decay {config.ema_decay:g} (warm-up min(decay, "
                    "(1 + step) / (10 + step))); validation and checkpoints use the average"
                    if ema is not None else "off (ema_decay 0)")
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _lr_factor(step, config))

    _seed_everything(config.seed + dist.rank)
    step = 0
    last_checkpoint: Path | None = None
    if resume:
        # Every rank loads the checkpoint rank 0 found (one step count, one set of weights).
        found = dist.from_main(latest_checkpoint(out_dir) if dist.is_main else None)
        if found is None and dist.is_main:
            LOGGER.info("resume: no checkpoint in %s yet, starting from step 0", out_dir)
        elif found is not None:
            state = load_train_state(found)
            if state.get("stage") != config.stage:
                raise CheckpointError(
                    f"{found} was saved in stage {state.get('stage')!r}, this run is stage "
                    f"{config.stage!r}: resume a run with its own stage")
            load_weights(policy, found)  # the average's values when that run had an EMA
            policy.to(device)
            if "raw_parameters" in state:
                load_raw_parameters(named_trainable, state["raw_parameters"])
            if ema is not None and "ema" in state:
                ema.load_state_dict(state["ema"])
            elif ema is not None:
                if dist.is_main:
                    LOGGER.warning("resume: %s has no weight EMA; the average starts from its "
                                   "weights at step %s", found, state["step"])
                ema = WeightEMA(named_trainable, config.ema_decay)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            step = int(state["step"])
            saved_world = int(state.get("world_size", 1))
            rank_states = state.get("rng_ranks") or [state["rng"]]
            if len(rank_states) == dist.world_size:  # each rank continues its own streams
                _set_rng_state(rank_states[dist.rank], rng_device)
            elif dist.is_main:
                _set_rng_state(state["rng"], rng_device)
            else:  # a new rank: a stream of its own, reproducible
                _seed_everything(config.seed + dist.rank + 1_000_003 * step)
            if saved_world != dist.world_size and dist.is_main:
                LOGGER.warning(
                    "resuming a run of %d process(es) on %d: the global batch changes from %d "
                    "to %d samples per step", saved_world, dist.world_size,
                    config.batch_size * saved_world, config.batch_size * dist.world_size)
            last_checkpoint = found
            if dist.is_main:
                LOGGER.info("resumed from %s at step %d", found, step)

    sampler = StepBatchSampler(len(train_dataset), config.batch_size, seed=config.seed,
                               start_step=step, rank=dist.rank, world_size=dist.world_size)
    # Own generators: a DataLoader without one draws its worker seed from the global RNG.
    loader = DataLoader(train_dataset, batch_sampler=sampler, collate_fn=collate_samples,
                        num_workers=config.num_workers, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(config.seed + step),
                        persistent_workers=config.num_workers > 0)
    val_loader = None
    if val_dataset is not None and len(val_dataset) > 0 and dist.is_main:
        subset = Subset(val_dataset, range(min(len(val_dataset), config.eval_num_samples)))
        val_loader = DataLoader(subset, batch_size=config.batch_size, shuffle=False,
                                collate_fn=collate_samples, num_workers=config.num_workers,
                                generator=torch.Generator().manual_seed(config.seed))

    # DDP built after any resume: it starts every rank from rank 0's weights.
    model = dist.wrap(_StageObjective(policy, config), device)
    show_bar = progress and dist.is_main and sys.stderr.isatty()
    bar = None
    if show_bar:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, initial=step, desc=f"{config.stage}", unit="step",
                   dynamic_ncols=True)

    def checkpoint(at_step: int) -> Path | None:
        rng_states = dist.gather(_rng_state(rng_device))  # a collective: every rank calls it
        if not dist.is_main:
            return None
        train_state = {
            "stage": config.stage, "step": at_step, "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": rng_states[0],
            "config": config_to_dict(config), "world_size": dist.world_size}
        if dist.enabled:
            train_state["rng_ranks"] = rng_states
        if ema is not None:
            train_state["raw_parameters"] = ema.raw_state()
            train_state["ema"] = ema.state_dict()
        with ema.swapped_in() if ema is not None else contextlib.nullcontext():
            path = save_checkpoint(policy, out_dir, stage=config.stage, step=at_step,
                                   command=command, keep=config.keep_checkpoints,
                                   train_state=train_state)
        LOGGER.info("checkpoint %s", path)
        if on_checkpoint is not None:
            on_checkpoint(path)
        return path

    def validate(at_step: int) -> dict[str, float]:
        if val_loader is None:
            return {}
        with ema.swapped_in() if ema is not None else contextlib.nullcontext():
            metrics = evaluate(policy, val_loader, config, device)
        metrics_log.write({"kind": "val", "step": at_step, **metrics})
        LOGGER.info("step %d validation: %s", at_step,
                    ", ".join(f"{k}={v:.5g}" for k, v in metrics.items()))
        return metrics

    policy.train()
    window_losses: list[float] = []
    last_loss = math.nan
    val_metrics: dict[str, float] = {}
    steps_per_s = 0.0
    stopped = False
    saved_at = step if last_checkpoint is not None else -1
    validated_at = -1
    iterator = iter(loader)
    try:
        while step < config.steps:
            tick = time.perf_counter()
            batch = _to_device(next(iterator), device)
            loss, metrics = model(batch)
            # The global batch's metrics on every rank (so a non-finite loss stops them all).
            metrics = dist.mean(metrics, device)
            if not math.isfinite(metrics["loss"]):
                raise FloatingPointError(
                    f"non-finite training loss at step {step + 1}: {metrics}; lower lr or check "
                    f"the data (last good checkpoint: {last_checkpoint})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # under DDP, also the gradient mean over the ranks
            grad_norm = (float(torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip))
                         if config.grad_clip > 0 else math.nan)
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update()
            step += 1

            duration = time.perf_counter() - tick
            rate = 1.0 / max(duration, 1e-9)
            steps_per_s = rate if steps_per_s == 0.0 else 0.9 * steps_per_s + 0.1 * rate
            window_losses.append(metrics["loss"])
            samples_per_s = steps_per_s * config.batch_size * dist.world_size
            lr = scheduler.get_last_lr()[0]
            eta_s = (config.steps - step) / steps_per_s
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", samples_s=f"{samples_per_s:.0f}")
            if on_progress is not None and dist.is_main:
                on_progress({"step": step, "steps": config.steps, "loss": metrics["loss"],
                             "lr": lr, "samples_per_s": samples_per_s, "eta_s": eta_s})
            if step % config.log_every == 0 or step == config.steps:
                last_loss = float(np.mean(window_losses))
                window_losses.clear()
                record = {"kind": "train", "step": step, "loss": last_loss, "lr": lr,
                          "grad_norm": grad_norm, "samples_per_s": samples_per_s,
                          **{k: v for k, v in metrics.items() if k != "loss"}}
                metrics_log.write(record)
                if bar is None and dist.is_main:
                    LOGGER.info("step %d/%d loss %.5f lr %.3g %.1f samples/s eta %.0f s", step,
                                config.steps, last_loss, lr, samples_per_s, eta_s)
            if config.val_every and step % config.val_every == 0:
                val_metrics = validate(step) or val_metrics
                validated_at = step
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                last_checkpoint = checkpoint(step) or last_checkpoint
                saved_at = step
            stop_requested = should_stop() if should_stop is not None else False
            if dist.any_true(stop_requested, device) and step < config.steps:
                stopped = True
                if dist.is_main:
                    LOGGER.info("stop requested at step %d", step)
                break
        if window_losses:
            last_loss = float(np.mean(window_losses))
        if not stopped and validated_at != step and step > 0:
            val_metrics = validate(step) or val_metrics
        if saved_at != step:
            last_checkpoint = checkpoint(step) or last_checkpoint
        # Every rank returns once the final checkpoint exists, and names it.
        last_checkpoint = dist.from_main(last_checkpoint)
        if ema is not None:  # the caller's policy ends as its last checkpoint: the average
            ema.copy_to_parameters()
    finally:
        del model  # drops DDP's gradient hooks from the policy's parameters
        if bar is not None:
            bar.close()
        for parameter, flag in frozen_flags:
            parameter.requires_grad_(flag)
    return TrainResult(step=step, loss=last_loss, val_metrics=val_metrics,
                       checkpoint=last_checkpoint, stopped_early=stopped,
                       elapsed_s=time.perf_counter() - started)
