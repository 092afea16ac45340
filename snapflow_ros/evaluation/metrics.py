# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Offline metrics of predicted action chunks against recorded ones (pure numpy).

Arrays follow the batch layout of :mod:`snapflow_ros.policies.base`: chunks are ``(N, H, A)``
in robot units (radians, metres, normalised gripper), ``is_pad`` is a bool ``(N, H)`` that is
True on chunk steps past an episode end. Padded steps count in no metric.

Definitions (the SnapFlow paper reports the first five for 500 held-out samples):

- per-sample MSE: the mean squared error over the valid ``(step, dimension)`` elements of one
  chunk; ``mse_mean`` / ``mse_median`` / ``mse_p90`` / ``mse_p95`` / ``mse_std`` summarise it
  over the samples (``mse_std`` is the population std). A fully padded sample has nothing to
  score: its MSE is NaN (not 0, which would pull the means down), every summary leaves it out
  and ``num_samples`` counts the samples scored. :func:`per_sample_mse` is the one definition:
  the offline and live evaluations and the trainer's validation (``val_mse_*``) all use it;
- ``cos_sim``: the mean over samples of the cosine similarity of the flattened valid part of the
  predicted and the recorded chunk;
- ``per_joint_mse``: squared error per action dimension, averaged over every valid step of
  every sample;
- ``error_by_chunk_position``: MSE at each of the ``H`` chunk positions, averaged over the
  samples where that position is valid (None where none is);
- ``spread``: how different the predictions for one observation are across noise seeds. For
  each sample, the per-element standard deviation across the ``K`` seeds (population std) is
  averaged over the valid elements; ``spread`` is the mean of that over samples (robot units).
  A one-step student that collapses to the mean scores near 0 here while its MSE looks good,
  which is why it is reported next to MSE.

Distribution metrics (``K`` samples per frame, :data:`DISTRIBUTION_KEYS`; MSE alone rewards the
average of the demonstrations, which is no demonstration at all where they are multimodal):

- ``best_of_k_mse_mean`` / ``_median``: per frame, the lowest per-sample MSE of its K samples
  against the recorded chunk; summarised over frames. Never above the MSE of any one sample;
- ``sample_spread``: :func:`prediction_spread` of the K samples, averaged over frames;
- on frames with several distinct valid truths (see :func:`distinct_truths`): a sample is
  *between modes* when it is closer (MSE) to the midpoint of its two nearest truths than to
  either of them; ``between_modes_share`` is the share of such samples. ``mode_coverage`` is
  the share of those frames whose samples hit at least two different truths, a sample hitting
  its nearest truth unless it is between modes (a collapsed sampler near the midpoint hits
  none). Both are None without such frames; ``multi_truth_frames`` counts them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SUMMARY_KEYS = (
    "mse_mean", "mse_median", "mse_p90", "mse_p95", "mse_std", "cos_sim", "per_joint_mse",
    "spread", "latency_ms_p50", "latency_ms_p95", "error_by_chunk_position", "num_samples",
)
DISTRIBUTION_KEYS = (
    "samples_per_frame", "best_of_k_mse_mean", "best_of_k_mse_median", "sample_spread",
    "between_modes_share", "mode_coverage", "multi_truth_frames",
)


def _as_chunks(predicted: np.ndarray, recorded: np.ndarray,
               is_pad: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check shapes; return float64 chunks and the valid-step mask ``(N, H)``."""
    predicted = np.asarray(predicted, dtype=np.float64)
    recorded = np.asarray(recorded, dtype=np.float64)
    if predicted.ndim != 3 or predicted.shape != recorded.shape:
        raise ValueError(f"predicted {predicted.shape} and recorded {recorded.shape} chunks must "
                         "both have shape (N, H, A)")
    if is_pad is None:
        valid = np.ones(predicted.shape[:2], dtype=bool)
    else:
        is_pad = np.asarray(is_pad, dtype=bool)
        if is_pad.shape != predicted.shape[:2]:
            raise ValueError(f"is_pad {is_pad.shape} must have shape (N, H) = "
                             f"{predicted.shape[:2]}")
        valid = ~is_pad
    return predicted, recorded, valid


def per_sample_mse(predicted: np.ndarray, recorded: np.ndarray,
                   is_pad: np.ndarray | None = None) -> np.ndarray:
    """MSE of each chunk over its valid steps and all action dims: ``(N,)`` float64.

    ``predicted`` / ``recorded`` ``(N, H, A)``, ``is_pad`` ``(N, H)`` (torch callers pass host
    numpy copies). A sample with no valid step at all gets NaN: it has nothing to score, and
    callers leave it out of means and percentiles (see the module documentation).
    """
    predicted, recorded, valid = _as_chunks(predicted, recorded, is_pad)
    squared = (predicted - recorded) ** 2 * valid[..., None]
    count = valid.sum(axis=1) * predicted.shape[2]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, squared.sum(axis=(1, 2)) / np.maximum(count, 1), np.nan)


def per_sample_cosine_similarity(predicted: np.ndarray, recorded: np.ndarray,
                                 is_pad: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity of each flattened chunk (valid steps only) with its recording: ``(N,)``.

    Two all-zero chunks are identical (1); a zero chunk against a non-zero one scores 0.
    """
    predicted, recorded, valid = _as_chunks(predicted, recorded, is_pad)
    p = (predicted * valid[..., None]).reshape(len(predicted), -1)
    r = (recorded * valid[..., None]).reshape(len(recorded), -1)
    dot = (p * r).sum(axis=1)
    norms = np.linalg.norm(p, axis=1) * np.linalg.norm(r, axis=1)
    both_zero = (np.linalg.norm(p, axis=1) == 0) & (np.linalg.norm(r, axis=1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, dot / np.where(norms > 0, norms, 1.0), 0.0)
    return np.where(both_zero, 1.0, np.clip(cos, -1.0, 1.0))


def per_joint_mse(predicted: np.ndarray, recorded: np.ndarray,
                  is_pad: np.ndarray | None = None) -> np.ndarray:
    """MSE of each action dimension over every valid step of every sample: ``(A,)``."""
    predicted, recorded, valid = _as_chunks(predicted, recorded, is_pad)
    squared = (predicted - recorded) ** 2 * valid[..., None]
    count = int(valid.sum())
    if count == 0:
        return np.full(predicted.shape[2], np.nan)
    return squared.sum(axis=(0, 1)) / count


def error_by_chunk_position(predicted: np.ndarray, recorded: np.ndarray,
                            is_pad: np.ndarray | None = None) -> np.ndarray:
    """MSE at each chunk position, over the samples where it is valid: ``(H,)``, NaN if none."""
    predicted, recorded, valid = _as_chunks(predicted, recorded, is_pad)
    squared = ((predicted - recorded) ** 2).mean(axis=2) * valid
    count = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, squared.sum(axis=0) / np.maximum(count, 1), np.nan)


def prediction_spread(samples: np.ndarray, is_pad: np.ndarray | None = None) -> np.ndarray:
    """Per-sample spread of ``K`` predictions ``(K, N, H, A)`` of the same observations: ``(N,)``.

    The population std across the K seeds of every element, averaged over the valid elements of
    each sample (robot units). Needs K >= 2.
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 4 or samples.shape[0] < 2:
        raise ValueError(f"samples must have shape (K>=2, N, H, A), got {samples.shape}")
    valid = (np.ones(samples.shape[1:3], dtype=bool) if is_pad is None
             else ~np.asarray(is_pad, dtype=bool))
    if valid.shape != samples.shape[1:3]:
        raise ValueError(f"is_pad {valid.shape} must have shape (N, H) = {samples.shape[1:3]}")
    std = samples.std(axis=0) * valid[..., None]
    count = valid.sum(axis=1) * samples.shape[3]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, std.sum(axis=(1, 2)) / np.maximum(count, 1), np.nan)


def latency_percentiles_ms(latencies_ms: Sequence[float] | np.ndarray) -> tuple[float | None,
                                                                                float | None]:
    """Median and 95th percentile of latencies (ms); (None, None) without any."""
    values = np.asarray(latencies_ms, dtype=np.float64)
    if values.size == 0:
        return None, None
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def summarize(predicted: np.ndarray, recorded: np.ndarray, is_pad: np.ndarray | None = None, *,
              action_names: Sequence[str] | None = None,
              spread_samples: np.ndarray | None = None,
              latencies_ms: Sequence[float] | np.ndarray | None = None) -> dict:
    """All metrics of one (checkpoint, step count) as a JSON-ready dict (keys: SUMMARY_KEYS).

    ``predicted`` / ``recorded`` ``(N, H, A)``; ``spread_samples`` ``(K, N', H, A)`` are K
    seeded predictions of the first ``N'`` observations (``spread`` is None without them);
    ``latencies_ms`` one per timed call. Samples with no valid step are left out.
    """
    predicted, recorded, valid = _as_chunks(predicted, recorded, is_pad)
    mse = per_sample_mse(predicted, recorded, ~valid)
    scored = np.isfinite(mse)
    if not scored.any():
        raise ValueError("no sample has a valid (unpadded) chunk step to score")
    mse_scored = mse[scored]
    cos = per_sample_cosine_similarity(predicted, recorded, ~valid)[scored]
    joints = per_joint_mse(predicted, recorded, ~valid)
    names = list(action_names) if action_names is not None else [
        f"action_{i}" for i in range(predicted.shape[2])]
    if len(names) != predicted.shape[2]:
        raise ValueError(f"{len(names)} action names for {predicted.shape[2]} action dims")
    spread = None
    if spread_samples is not None:
        rows = np.asarray(spread_samples).shape[1]
        per_sample = prediction_spread(spread_samples, ~valid[:rows])
        spread = _finite_or_none(np.nanmean(per_sample)) if np.isfinite(per_sample).any() \
            else None
    p50, p95 = latency_percentiles_ms(latencies_ms if latencies_ms is not None else [])
    return {
        "mse_mean": float(mse_scored.mean()),
        "mse_median": float(np.median(mse_scored)),
        "mse_p90": float(np.percentile(mse_scored, 90)),
        "mse_p95": float(np.percentile(mse_scored, 95)),
        "mse_std": float(mse_scored.std()),
        "cos_sim": float(cos.mean()),
        "per_joint_mse": [{"name": n, "mse": _finite_or_none(v)} for n, v in zip(names, joints)],
        "spread": spread,
        "latency_ms_p50": p50,
        "latency_ms_p95": p95,
        "error_by_chunk_position": [_finite_or_none(v) for v in
                                    error_by_chunk_position(predicted, recorded, ~valid)],
        "num_samples": int(scored.sum()),
    }


# ---------------------------------------------------------------- K samples per frame

def _as_samples(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.ndim != 4:
        raise ValueError(f"samples must have shape (N, K, H, A), got {samples.shape}")
    return samples


def best_of_k_mse(samples: np.ndarray, recorded: np.ndarray,
                  is_pad: np.ndarray | None = None) -> np.ndarray:
    """Lowest per-sample MSE of each frame's K samples ``(N, K, H, A)`` vs ``recorded``: ``(N,)``.

    NaN where the frame has no valid step (as :func:`per_sample_mse`).
    """
    samples = _as_samples(samples)
    per_draw = np.stack([per_sample_mse(samples[:, k], recorded, is_pad)
                         for k in range(samples.shape[1])], axis=1)
    with np.errstate(invalid="ignore"):
        return np.min(per_draw, axis=1)


def distinct_truths(truths: np.ndarray, is_pad: np.ndarray, threshold: float) -> list[int]:
    """Indices of the truths ``(M, H, A)`` that differ from every earlier kept one.

    Two truths differ when their MSE over the steps valid in both (``is_pad`` ``(M, H)``)
    exceeds ``threshold`` (robot units squared). The first truth is always kept.
    """
    truths = np.asarray(truths, dtype=np.float64)
    valid = ~np.asarray(is_pad, dtype=bool)
    kept = [0]
    for index in range(1, len(truths)):
        for other in kept:
            both = valid[index] & valid[other]
            if not both.any():
                break
            squared = (truths[index][both] - truths[other][both]) ** 2
            if squared.mean() <= threshold:
                break
        else:
            kept.append(index)
    return kept


def mode_assignment(samples: np.ndarray, truths: np.ndarray,
                    valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For K samples ``(K, H, A)`` of one frame with M >= 2 truths ``(M, H, A)``.

    Returns ``(between (K,) bool, nearest (K,) int)``: whether each sample is closer to the
    midpoint of its two nearest truths than to either, and its nearest truth. MSE over the
    ``valid`` ``(H,)`` steps (default all).
    """
    samples = np.asarray(samples, dtype=np.float64)
    truths = np.asarray(truths, dtype=np.float64)
    if truths.ndim != 3 or len(truths) < 2 or samples.shape[1:] != truths.shape[1:]:
        raise ValueError(f"need truths (M>=2, H, A) matching samples (K, H, A), got "
                         f"{truths.shape} and {samples.shape}")
    steps = np.ones(samples.shape[1], bool) if valid is None else np.asarray(valid, bool)
    samples, truths = samples[:, steps], truths[:, steps]
    distance = ((samples[:, None] - truths[None]) ** 2).mean(axis=(2, 3))  # (K, M)
    order = np.argsort(distance, axis=1, kind="stable")
    nearest, second = order[:, 0], order[:, 1]
    midpoint = (truths[nearest] + truths[second]) / 2.0
    to_midpoint = ((samples - midpoint) ** 2).mean(axis=(1, 2))
    return to_midpoint < distance[np.arange(len(samples)), nearest], nearest


def mode_summary(samples: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                 valid: Sequence[np.ndarray | None]) -> dict:
    """``between_modes_share``, ``mode_coverage``, ``multi_truth_frames`` over frames.

    One entry per frame with several distinct truths: its samples ``(K, H, A)``, its truths
    ``(M>=2, H, A)`` and the steps valid in all of them ``(H,)``.
    """
    between_counts, covered, draws = 0, 0, 0
    for frame_samples, frame_truths, frame_valid in zip(samples, truths, valid):
        between, nearest = mode_assignment(frame_samples, frame_truths, frame_valid)
        between_counts += int(between.sum())
        draws += len(between)
        covered += int(len(set(nearest[~between].tolist())) >= 2)
    frames = len(samples)
    return {
        "between_modes_share": between_counts / draws if draws else None,
        "mode_coverage": covered / frames if frames else None,
        "multi_truth_frames": frames,
    }


def summarize_samples(samples: np.ndarray, recorded: np.ndarray,
                      is_pad: np.ndarray | None = None) -> dict:
    """Best-of-K MSE and spread of K samples per frame ``(N, K, H, A)``, JSON-ready.

    Holds every :data:`DISTRIBUTION_KEYS` key; the mode keys are None here (filled where the
    frames' truths are known). With K = 1 only ``samples_per_frame`` is set.
    """
    samples = _as_samples(samples)
    out: dict = dict.fromkeys(DISTRIBUTION_KEYS)
    out["samples_per_frame"] = int(samples.shape[1])
    if samples.shape[1] < 2:
        return out
    best = best_of_k_mse(samples, recorded, is_pad)
    spread = prediction_spread(np.swapaxes(samples, 0, 1), is_pad)
    if np.isfinite(best).any():
        out["best_of_k_mse_mean"] = float(np.nanmean(best))
        out["best_of_k_mse_median"] = float(np.nanmedian(best))
    if np.isfinite(spread).any():
        out["sample_spread"] = float(np.nanmean(spread))
    return out
