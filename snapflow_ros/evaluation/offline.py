# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Offline evaluation of checkpoints on held-out recorded episodes, per sampler step count.

Which episodes are scored:

- by default the validation episodes of training: the loaded episodes are split with
  :func:`~snapflow_ros.data.dataset.split_episodes` using the same ``val_fraction`` and seed as
  ``snapflow train`` (pass the same bags, so the episode order and therefore the split are the
  same). The training episodes are never scored;
- with ``all_episodes=True`` every loaded episode: use this only for recordings that were never
  trained on.

From the scored episodes ``samples`` frames are drawn without replacement with ``seed`` (the
same frames for every checkpoint). Each checkpoint predicts a chunk for each frame at every step
count, from the same starting noise; a SnapFlow checkpoint does so with both k-step samplers
(``jump``, keyed ``"<steps>"``, and ``euler``, keyed ``"<steps>_euler"``), a teacher with Euler
only (its ``phi_s`` is zero, so both samplers are identical). The naive 1-step baseline is the
teacher at ``"1"``. Latency is timed separately on single-observation calls (encode + sample +
un-normalise), as a robot runs them.

With ``samples_per_frame`` K >= 2 every frame is also sampled K times (the first draw is the
scored prediction above, the others come from their own seeded noise, each observation encoded
once) for the distribution metrics of :mod:`~snapflow_ros.evaluation.metrics`. Several valid
truths for one frame: the chunks recorded at the same step index of other scored episodes whose
state and environment state agree with the frame's within ``truth_match_tolerance`` of each
dimension's range over the scored episodes (images are not compared: the same seed renders the
same scene), kept when they differ from the frame's own chunk and from each other by an MSE above
``distinct_truth_mse`` (0: ten times the lowest median best-of-K MSE of a teacher result, the
model's own precision: on a strongly multimodal set a teacher that picks the other mode half
the time inflates even its median MSE, while the best of its K samples lands on the recorded
mode; without a teacher, of any result). Without an environment state the frames match on the
joint state alone, so scenes that differ only in the images count as one observation (the
result says so: ``multi_truth.environment_state_compared``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snapflow_ros.config_fields import ConfigError, check_config, config_to_dict, param
from snapflow_ros.data.episodes import Episode
from snapflow_ros.evaluation.exported_policy import ExportedGraphPolicy
from snapflow_ros.evaluation.metrics import (
    distinct_truths,
    mode_summary,
    per_sample_mse,
    summarize,
    summarize_samples,
)
from snapflow_ros.snapflow.sampler import (
    SAMPLER_MODES,
    predict_action_chunk,
    sample_chunk,
    sample_noise,
)

DEFAULT_MODE = "jump"


@dataclasses.dataclass(frozen=True)
class OfflineEvalConfig:
    """What an offline evaluation scores, with which samplers, and how much of it."""

    step_counts: tuple[int, ...] = param((1, 2, 4, 10), "Sampler step counts to evaluate.",
                                         low=1, high=1000)
    modes: tuple[str, ...] = param(
        SAMPLER_MODES, "k-step samplers for SnapFlow checkpoints: jump (chained average-velocity "
                       "jumps) and/or euler (local velocity); a teacher always uses euler.",
        choices=SAMPLER_MODES)
    samples: int = param(500, "Held-out frames scored per checkpoint and step count (fewer if "
                              "the episodes have fewer).", low=1)
    seed: int = param(0, "Seed of the frame subsample and of the sampling noise.", low=0)
    split_seed: int = param(-1, "Seed of the train/validation split (-1: the same as seed); "
                                "must equal the training run's seed.", low=-1)
    val_fraction: float = param(0.1, "Fraction of episodes held out, as in training.",
                                low=0.0, high=0.9)
    all_episodes: bool = param(False, "Score every episode (recordings never trained on) "
                                      "instead of the validation split.")
    spread_seeds: int = param(4, "Noise seeds per observation for the spread metric (< 2: no "
                                 "spread).", low=0, high=1000)
    spread_samples: int = param(64, "Frames (the first of the subsample) used for spread.",
                                low=1)
    samples_per_frame: int = param(8, "Noise samples per frame and step count for the "
                                      "distribution metrics (best-of-K MSE, between modes, "
                                      "mode coverage); 1 disables them.", low=1, high=1000)
    distinct_truth_mse: float = param(0.0, "MSE above which two recorded chunks for the same "
                                           "observation are different truths (0: ten times the "
                                           "lowest teacher median best-of-K MSE).", low=0.0)
    truth_match_tolerance: float = param(1e-6, "Observations of two episodes are the same when "
                                               "every state and environment-state dimension "
                                               "agrees within this fraction of its range.",
                                         low=0.0)
    batch_size: int = param(32, "Observations per forward pass when scoring.", low=1)
    latency_calls: int = param(20, "Timed single-observation calls per step count (after "
                                   "warm-up); 0 skips timing.", low=0)
    trajectory_episodes: int = param(2, "Scored episodes whose whole predicted trajectory is "
                                        "kept for the report plots.", low=0)
    trajectory_max_steps: int = param(300, "At most this many frames per trajectory.", low=1)
    device: str = param("cpu", "Torch device: cpu, cuda, cuda:N.")

    def __post_init__(self) -> None:
        check_config(self)
        if not self.step_counts:
            raise ConfigError("step_counts must list at least one step count")
        if len(set(self.step_counts)) != len(self.step_counts):
            raise ConfigError(f"step_counts has duplicates: {list(self.step_counts)}")
        if not self.modes:
            raise ConfigError("modes must list at least one sampler")
        if not self.all_episodes and self.val_fraction <= 0:
            raise ConfigError("val_fraction=0 holds out nothing: give val_fraction > 0, or "
                              "all_episodes for recordings that were never trained on")

    @property
    def effective_split_seed(self) -> int:
        """The seed the train/validation split uses."""
        return self.seed if self.split_seed < 0 else self.split_seed


def result_key(steps: int, mode: str, default_mode: str) -> str:
    """``"<steps>"`` for the default sampler, ``"<steps>_<mode>"`` for another."""
    return f"{steps}" if mode == default_mode else f"{steps}_{mode}"


def select_episodes(episodes: Sequence[Episode], config: OfflineEvalConfig
                    ) -> tuple[list[int], str]:
    """Indices (into ``episodes``) of the episodes to score, and ``"validation"`` or ``"all"``."""
    from snapflow_ros.data.dataset import split_episodes

    if config.all_episodes:
        return list(range(len(episodes))), "all"
    if len(episodes) < 2:
        raise ConfigError("only one episode was loaded, so training held none out: score "
                          "recordings that were never trained on with all_episodes "
                          "(--all-episodes)")
    _, val = split_episodes(episodes, val_fraction=config.val_fraction,
                            seed=config.effective_split_seed)
    chosen = {id(e) for e in val}
    return [i for i, e in enumerate(episodes) if id(e) in chosen], "validation"


def subsample_frames(lengths: Sequence[int], count: int, seed: int) -> list[tuple[int, int]]:
    """``count`` distinct ``(episode, frame)`` pairs drawn with ``seed``, in episode order."""
    total = int(sum(lengths))
    if total == 0:
        raise ValueError("the scored episodes have no frames")
    ends = np.cumsum(lengths)
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=min(count, total),
                                                        replace=False))
    episode = np.searchsorted(ends, chosen, side="right")
    start = np.concatenate([[0], ends[:-1]])[episode]
    return [(int(e), int(f)) for e, f in zip(episode, chosen - start)]


def _batch(episodes: Sequence[Episode], frames: Sequence[tuple[int, int]], chunk_size: int,
           device: torch.device) -> dict:
    """Policy batch for ``(episode, frame)`` pairs (chunks padded past episode ends)."""
    images: dict[str, list[np.ndarray]] = {key: [] for key in episodes[0].images}
    states, actions, pads, tasks, environment = [], [], [], [], []
    for episode_index, frame in frames:
        episode = episodes[episode_index]
        steps = np.arange(frame, frame + chunk_size)
        pads.append(steps >= len(episode))
        steps = np.minimum(steps, len(episode) - 1)
        for key in images:
            images[key].append(episode.images[key][frame].transpose(2, 0, 1))
        states.append(episode.state[frame])
        actions.append(episode.action[steps])
        tasks.append(episode.task)
        environment.append(episode.environment_state[frame])
    batch = {
        "images": {k: torch.from_numpy(np.stack(v)).to(device) for k, v in images.items()},
        "state": torch.from_numpy(np.stack(states).astype(np.float32)).to(device),
        "action": torch.from_numpy(np.stack(actions).astype(np.float32)),
        "action_is_pad": torch.from_numpy(np.stack(pads)),
        "task": tasks,
    }
    if episodes[0].environment_state_names:
        batch["environment_state"] = torch.from_numpy(
            np.stack(environment).astype(np.float32)).to(device)
    return batch


def _predict(policy, episodes, frames, config: OfflineEvalConfig, *, steps: int, mode: str,
             noise: torch.Tensor, device: torch.device) -> np.ndarray:
    """Predicted chunks ``(N, H, A)`` (robot units) for ``frames`` from ``noise`` ``(N, H, D)``."""
    parts = []
    for start in range(0, len(frames), config.batch_size):
        rows = frames[start:start + config.batch_size]
        batch = _batch(episodes, rows, policy.chunk_size, device)
        if isinstance(policy, ExportedGraphPolicy):
            parts.append(policy.predict(batch, steps=steps, mode=mode,
                                        noise=noise[start:start + len(rows)]))
            continue
        chunk = predict_action_chunk(policy, batch, num_steps=steps, mode=mode,
                                     noise=noise[start:start + len(rows)].to(device))
        parts.append(chunk.float().cpu().numpy())
    return np.concatenate(parts, axis=0)


def _recorded(episodes, frames, chunk_size) -> tuple[np.ndarray, np.ndarray]:
    batch = _batch(episodes, frames, chunk_size, torch.device("cpu"))
    return batch["action"].numpy().astype(np.float64), batch["action_is_pad"].numpy()


def _time_calls(policy, episodes, frames, config: OfflineEvalConfig, *, steps: int, mode: str,
                device: torch.device) -> list[float]:
    """Wall time (ms) of single-observation calls: encode + sample + un-normalise."""
    if config.latency_calls <= 0:
        return []
    generator = torch.Generator().manual_seed(config.seed + 17)
    timings = []
    warmup = 2
    for call in range(config.latency_calls + warmup):
        frame = frames[call % len(frames)]
        batch = _batch(episodes, [frame], policy.chunk_size, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        if isinstance(policy, ExportedGraphPolicy):
            policy.predict(batch, steps=steps, mode=mode, noise=sample_noise(
                (1, policy.chunk_size, policy.action_dim), generator=generator))
        else:
            predict_action_chunk(policy, batch, num_steps=steps, mode=mode, generator=generator)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if call >= warmup:
            timings.append((time.perf_counter() - started) * 1e3)
    return timings


def _noise(rows: int, policy, seed: int, draws: int | None = None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (rows, policy.chunk_size, policy.action_dim)
    return sample_noise(shape if draws is None else (rows, draws, *shape[1:]),
                        generator=generator)


def _predict_samples(policy, episodes, frames, config: OfflineEvalConfig, *, steps: int,
                     mode: str, noise: torch.Tensor, device: torch.device) -> np.ndarray:
    """``(N, K, H, A)`` chunks (robot units) from ``noise`` ``(N, K, H, D)``, encoding once."""
    draws = noise.shape[1]
    per_pass = max(1, config.batch_size // draws)
    parts = []
    for start in range(0, len(frames), per_pass):
        rows = frames[start:start + per_pass]
        batch = _batch(episodes, rows, policy.chunk_size, device)
        if isinstance(policy, ExportedGraphPolicy):
            parts.append(policy.predict_samples(batch, steps=steps, mode=mode,
                                                noise=noise[start:start + len(rows)]))
            continue
        with torch.inference_mode():
            context = policy.encode(batch)
            repeat = torch.arange(len(rows), device=policy.device).repeat_interleave(draws)
            x = sample_chunk(policy, policy.select_context(context, repeat), num_steps=steps,
                             mode=mode, noise=noise[start:start + len(rows)].flatten(0, 1))
            chunk = policy.to_robot_actions(x)
        parts.append(chunk.float().cpu().numpy().reshape(len(rows), draws, *chunk.shape[1:]))
    return np.concatenate(parts, axis=0)


def _action_chunk(episode: Episode, frame: int, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Recorded chunk ``(H, A)`` from ``frame`` (last action repeated) and its pad ``(H,)``."""
    steps = np.arange(frame, frame + chunk_size)
    return (episode.action[np.minimum(steps, len(episode) - 1)].astype(np.float64),
            steps >= len(episode))


def matching_episodes(episodes: Sequence[Episode], scored: Sequence[int],
                      frames: Sequence[tuple[int, int]], tolerance: float) -> list[list[int]]:
    """For each ``(episode, frame)``, the other scored episodes with the same observation there.

    Same observation: at the same step index, every state and environment-state dimension
    within ``tolerance`` times its range over the scored episodes (images are not compared).
    """
    def observation(index: int) -> np.ndarray:
        episode = episodes[index]
        return np.concatenate([episode.state, episode.environment_state], axis=1).astype(
            np.float64)

    observations = {i: observation(i) for i in scored}
    stacked = np.concatenate(list(observations.values()), axis=0)
    limit = tolerance * (stacked.max(axis=0) - stacked.min(axis=0))
    matches = []
    for own, frame in frames:
        here = observations[own][frame]
        matches.append([i for i in scored if i != own and frame < len(observations[i])
                        and bool(np.all(np.abs(observations[i][frame] - here) <= limit))])
    return matches


def shared_observation_frames(episodes: Sequence[Episode], scored: Sequence[int],
                              tolerance: float) -> list[tuple[int, int]]:
    """Every ``(episode, frame)`` whose observation another scored episode has at that step."""
    every = [(i, f) for i in scored for f in range(len(episodes[i]))]
    return [frame for frame, others in zip(every, matching_episodes(episodes, scored, every,
                                                                     tolerance)) if others]


def distinct_truth_threshold(results: Mapping[str, dict], config: OfflineEvalConfig
                             ) -> tuple[float, str]:
    """The MSE above which two recorded chunks are different truths, and where it came from.

    ``results``: ``{name: checkpoint entry}`` as :func:`evaluate_checkpoints` returns them.
    """
    if config.distinct_truth_mse > 0:
        return float(config.distinct_truth_mse), "distinct_truth_mse"
    for teacher_only, what in ((True, "teacher"), (False, "evaluated")):
        medians = [m["best_of_k_mse_median"] for e in results.values()
                   if not teacher_only or e["stage"] == "teacher" for m in e["results"].values()
                   if m.get("best_of_k_mse_median") is not None]
        if medians:
            return 10.0 * float(min(medians)), f"10 x the lowest {what} median best-of-K MSE"
    raise ValueError("no best-of-K result to derive the distinct-truth threshold from")


def _truth_sets(episodes, frames, matches, chunk_size: int, threshold: float
                ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{frame position: (distinct truths (M>=2, H, A), steps valid in all (H,))}``."""
    sets = {}
    for position, ((own, frame), others) in enumerate(zip(frames, matches)):
        if not others:
            continue
        chunks = [_action_chunk(episodes[i], frame, chunk_size) for i in [own, *others]]
        truths = np.stack([c for c, _ in chunks])
        pads = np.stack([p for _, p in chunks])
        kept = distinct_truths(truths, pads, threshold)
        if len(kept) >= 2:
            sets[position] = (truths[kept], ~pads[kept].any(axis=0))
    return sets


def checkpoint_modes(stage: str, config: OfflineEvalConfig) -> tuple[list[str], str]:
    """Samplers to run for a checkpoint of ``stage`` and the one keyed by the bare step count."""
    if stage == "snapflow":
        modes = list(config.modes)
        return modes, DEFAULT_MODE if DEFAULT_MODE in modes else modes[0]
    return ["euler"], "euler"


def _trajectory_frames(episodes, scored, config) -> list[tuple[int, list[tuple[int, int]]]]:
    chosen = scored[:config.trajectory_episodes]
    return [(i, [(i, f) for f in range(min(len(episodes[i]), config.trajectory_max_steps))])
            for i in chosen]


def evaluate_checkpoints(checkpoints: Mapping[str, str | Path] | Sequence[str | Path],
                         episodes: Sequence[Episode], config: OfflineEvalConfig | None = None, *,
                         progress: bool = True, **overrides: Any) -> dict:
    """Score each checkpoint on the held-out episodes at every step count (and k-step sampler).

    ``checkpoints``: ``{name: dir}`` or a list of dirs (named by folder); a value may also be an
    :class:`~snapflow_ros.evaluation.exported_policy.ExportedGraphPolicy` (an ONNX export on
    ONNX Runtime or OpenVINO), scored on the same frames from the same noise. ``overrides`` replace
    fields of ``config`` (e.g. ``step_counts=(1, 10)``). Returns the JSON-ready result::

        {"checkpoints": {name: {"path", "stage", "policy_type", "step", "modes",
                                "results": {"<steps>[_euler]": metrics}}},
         "episodes": [{"index", "name", "source", "frames"}], "split": "validation" | "all",
         "config": {...}, "trajectories": [...], "multi_truth": {...} | None}

    where ``metrics`` holds :data:`~snapflow_ros.evaluation.metrics.SUMMARY_KEYS`,
    :data:`~snapflow_ros.evaluation.metrics.DISTRIBUTION_KEYS` (None with
    ``samples_per_frame=1``), ``steps``, ``mode`` and ``per_sample_mse``; ``"multi_truth"``
    says how the frames with several truths were found (None with ``samples_per_frame=1``).
    Raises ConfigError (e.g. :class:`~snapflow_ros.policies.base.CheckpointMismatchError`)
    before any scoring.
    """
    from snapflow_ros.config_fields import replace_config
    from snapflow_ros.data.dataset import robot_interface
    from snapflow_ros.policies.checkpoint import load_policy, read_checkpoint_info

    config = config or OfflineEvalConfig()
    if overrides:
        config = replace_config(config, **overrides)
    if isinstance(checkpoints, Mapping):
        named = {str(k): v if isinstance(v, ExportedGraphPolicy) else Path(v)
                 for k, v in checkpoints.items()}
    else:
        named = {}
        for path in checkpoints:
            name = Path(path).name
            if name in named:
                raise ConfigError(f"two checkpoints are named {name!r}: give them names")
            named[name] = Path(path)
    if not named:
        raise ConfigError("no checkpoint to evaluate")
    if not episodes:
        raise ConfigError("no episodes to evaluate on")
    robot = robot_interface(episodes)
    device = torch.device(config.device)
    scored, split = select_episodes(episodes, config)
    frames_local = subsample_frames([len(episodes[i]) for i in scored], config.samples,
                                    config.seed)
    frames = [(scored[e], f) for e, f in frames_local]
    if config.samples_per_frame > 1:
        # Frames with several recorded truths are few (two strategies split within a few
        # steps): score them too (up to as many again), not only those the draw picks.
        chosen = set(frames)
        shared = [f for f in shared_observation_frames(episodes, scored,
                                                       config.truth_match_tolerance)
                  if f not in chosen]
        frames += shared[:config.samples]

    # Read every checkpoint's description and check it fits before spending time on any.
    infos = {name: path.checkpoint_info() if isinstance(path, ExportedGraphPolicy)
             else read_checkpoint_info(path) for name, path in named.items()}
    for name, path in named.items():
        if isinstance(path, ExportedGraphPolicy):
            path.robot.check_matches(robot, what=f"export {name} ({path.runner.export_dir})")
    policies = {name: path if isinstance(path, ExportedGraphPolicy)
                else load_policy(path, device=device, expected_robot=robot)
                for name, path in named.items()}

    plan = []
    for name, info in infos.items():
        stage = str(info["info"].get("stage", "teacher"))
        modes, default_mode = checkpoint_modes(stage, config)
        for steps in config.step_counts:
            for mode in modes:
                plan.append((name, steps, mode, default_mode))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan), desc="evaluating", unit="run")

    out: dict[str, Any] = {"checkpoints": {}}
    traj_frames = _trajectory_frames(episodes, scored, config)
    trajectories = [{
        "index": i,
        "name": episodes[i].name,
        "time_s": [float(t) for t in episodes[i].timestamps_s[:len(rows)]],
        "action_names": list(robot.action_names),
        "recorded": episodes[i].action[:len(rows)].astype(float).tolist(),
        "predicted": {},
    } for i, rows in traj_frames]
    draws = config.samples_per_frame
    matches = (matching_episodes(episodes, scored, frames, config.truth_match_tolerance)
               if draws >= 2 else [])
    candidates = [i for i, others in enumerate(matches) if others]
    # (summary, chunk size, samples of the candidate frames): scored on modes once the
    # distinct-truth threshold is known, which may take every teacher's results.
    pending: list[tuple[dict, int, np.ndarray]] = []
    try:
        for name, policy in policies.items():
            info = infos[name]
            stage = str(info["info"].get("stage", "teacher"))
            modes, default_mode = checkpoint_modes(stage, config)
            recorded, is_pad = _recorded(episodes, frames, policy.chunk_size)
            noise = _noise(len(frames), policy, config.seed)
            spread_rows = frames[:min(config.spread_samples, len(frames))]
            spread_noises = [_noise(len(spread_rows), policy, config.seed + 1000 + k)
                             for k in range(config.spread_seeds if config.spread_seeds >= 2
                                            else 0)]
            extra_noise = (_noise(len(frames), policy, config.seed + 4000, draws=draws - 1)
                           if draws >= 2 else None)
            results = {}
            for steps in config.step_counts:
                for mode in modes:
                    if bar is not None:
                        bar.set_postfix_str(f"{name} {steps} step(s) {mode}")
                    kwargs = dict(steps=steps, mode=mode, device=device)
                    predicted = _predict(policy, episodes, frames, config, noise=noise, **kwargs)
                    spread = None
                    if spread_noises:
                        spread = np.stack([_predict(policy, episodes, spread_rows, config,
                                                    noise=n, **kwargs) for n in spread_noises])
                    latencies = _time_calls(policy, episodes, frames, config, **kwargs)
                    summary = summarize(predicted, recorded, is_pad,
                                        action_names=robot.action_names, spread_samples=spread,
                                        latencies_ms=latencies)
                    summary.update(steps=steps, mode=mode, per_sample_mse=[
                        float(v) for v in per_sample_mse(predicted, recorded, is_pad)])
                    samples = predicted[:, None]
                    if extra_noise is not None:
                        # The scored prediction is the first of the K draws.
                        samples = np.concatenate([samples, _predict_samples(
                            policy, episodes, frames, config, noise=extra_noise, **kwargs)],
                            axis=1)
                        pending.append((summary, policy.chunk_size,
                                        samples[candidates].astype(np.float32)))
                    summary.update(summarize_samples(samples, recorded, is_pad))
                    results[result_key(steps, mode, default_mode)] = summary
                    if bar is not None:
                        bar.update(1)
            for trajectory, (_, rows) in zip(trajectories, traj_frames):
                for steps in sorted({min(config.step_counts), max(config.step_counts)}):
                    first = _predict(policy, episodes, rows, config, steps=steps,
                                     mode=default_mode, device=device,
                                     noise=_noise(len(rows), policy, config.seed + 2))[:, 0]
                    label = f"{name}/{result_key(steps, default_mode, default_mode)}"
                    trajectory["predicted"][label] = first.astype(float).tolist()
            out["checkpoints"][name] = {
                "path": str(info["checkpoint_dir"]),
                "stage": stage,
                "policy_type": info["config"].get("policy_type"),
                "step": info["info"].get("step"),
                "modes": modes,
                "default_mode": default_mode,
                **(policy.describe() if isinstance(policy, ExportedGraphPolicy)
                   else {"backend": "torch", "precision": "float32"}),
                "results": results,
            }
    finally:
        if bar is not None:
            bar.close()
    out["multi_truth"] = (_score_modes(out["checkpoints"], pending, episodes, frames, matches,
                                       candidates, config) if draws >= 2 else None)
    out["episodes"] = [{"index": i, "name": episodes[i].name, "source": str(episodes[i].source),
                        "segment": int(episodes[i].segment), "frames": len(episodes[i])}
                       for i in scored]
    out["split"] = split
    out["num_episodes_loaded"] = len(episodes)
    out["config"] = config_to_dict(config)
    out["trajectories"] = trajectories
    return out


def _score_modes(checkpoints: dict, pending, episodes, frames, matches, candidates,
                 config: OfflineEvalConfig) -> dict:
    """Fill the mode metrics of every pending summary; returns the ``multi_truth`` record."""
    threshold, source = distinct_truth_threshold(checkpoints, config)
    sets_by_chunk: dict[int, dict] = {}
    for summary, chunk_size, samples in pending:
        if chunk_size not in sets_by_chunk:
            sets_by_chunk[chunk_size] = _truth_sets(episodes, frames, matches, chunk_size,
                                                    threshold)
        sets = sets_by_chunk[chunk_size]
        rows = [(samples[row], *sets[position]) for row, position in enumerate(candidates)
                if position in sets]
        summary.update(mode_summary([r[0] for r in rows], [r[1] for r in rows],
                                    [r[2] for r in rows]))
    return {
        "frames_with_matching_observation": len(candidates),
        "distinct_truth_mse": threshold,
        "distinct_truth_mse_source": source,
        "truth_match_tolerance": config.truth_match_tolerance,
        "environment_state_compared": bool(episodes[0].environment_state_names),
    }
