# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Markdown tables and PNG plots of an offline (or live) evaluation result.

The table follows Table 2 of the SnapFlow paper: one row per checkpoint and step count, the
mean / median / P90 / P95 / std of the per-sample MSE, plus cosine similarity, spread and
latency. A report directory (``report.md`` and the plots) is built in a hidden temporary folder
and renamed into place at the end, so a failure never leaves a partial report. Plots use
matplotlib's Agg canvas directly (no pyplot, no global backend change).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

TABLE_COLUMNS = ("Checkpoint", "Stage", "Steps", "Sampler", "MSE mean", "vs ref", "median",
                 "P90", "P95", "std", "cos sim", "spread", "latency p50 (ms)", "p95 (ms)", "N")
# Shown after "vs ref" when the result has K samples per frame (samples_per_frame >= 2).
DISTRIBUTION_COLUMNS = ("best-of-K MSE", "between modes", "mode coverage", "sample spread")
MAX_TRAJECTORY_JOINTS = 4


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}" if abs(value) >= 1 else f"{value:.{digits + 1}f}"


def reference_row(result: dict) -> tuple[str, str] | None:
    """``(checkpoint, key)`` of the reference row: the first teacher at its most steps."""
    for name, entry in result.get("checkpoints", {}).items():
        if entry.get("stage") == "teacher" and entry.get("results"):
            keys = sorted(entry["results"], key=lambda k: entry["results"][k]["steps"])
            return name, keys[-1]
    return None


def _rows(result: dict) -> list[tuple[str, str, dict]]:
    rows = []
    for name, entry in result.get("checkpoints", {}).items():
        results = entry.get("results", {})
        order = sorted(results, key=lambda k: (results[k]["steps"], results[k].get("mode") !=
                                                entry.get("default_mode")))
        rows.extend((name, key, results[key]) for key in order)
    return rows


def has_distribution_metrics(result: dict) -> bool:
    """Whether any row holds K >= 2 samples per frame (best-of-K, between modes ...)."""
    return any((m.get("samples_per_frame") or 1) >= 2 for _, _, m in _rows(result))


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.1f}%"


def format_table(result: dict) -> str:
    """Markdown table of every (checkpoint, step count, sampler); ``vs ref``: relative MSE.

    The reference is the first teacher checkpoint at its largest step count (the paper's
    10-step teacher); without a teacher the column shows ``-``. With K samples per frame the
    distribution columns (:data:`DISTRIBUTION_COLUMNS`) follow ``vs ref``.
    """
    ref = reference_row(result)
    ref_mse = (result["checkpoints"][ref[0]]["results"][ref[1]]["mse_mean"]
               if ref is not None else None)
    distribution = has_distribution_metrics(result)
    columns = list(TABLE_COLUMNS)
    if distribution:
        columns[6:6] = DISTRIBUTION_COLUMNS
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---" if i < 4 else "---:" for i in range(len(columns))) + "|"]
    for name, key, metrics in _rows(result):
        stage = result["checkpoints"][name].get("stage", "?")
        if ref_mse:
            delta = (metrics["mse_mean"] - ref_mse) / ref_mse * 100.0
            vs_ref = "ref" if (name, key) == ref else f"{delta:+.1f}%"
        else:
            vs_ref = "-"
        entry = result["checkpoints"][name]
        # An export's row names the engine and precision it ran in (int8 costs action error).
        label = (name if entry.get("backend", "torch") == "torch"
                 else f"{name} ({entry['backend']} {entry.get('precision', '')})")
        cells = [label, stage, str(metrics["steps"]), str(metrics.get("mode", "")),
                 _fmt(metrics["mse_mean"]), vs_ref, _fmt(metrics["mse_median"]),
                 _fmt(metrics["mse_p90"]), _fmt(metrics["mse_p95"]), _fmt(metrics["mse_std"]),
                 _fmt(metrics["cos_sim"]), _fmt(metrics.get("spread")),
                 _fmt(metrics.get("latency_ms_p50"), 3), _fmt(metrics.get("latency_ms_p95"), 3),
                 str(metrics["num_samples"])]
        if distribution:
            cells[6:6] = [_fmt(metrics.get("best_of_k_mse_mean")),
                          _share(metrics.get("between_modes_share")),
                          _share(metrics.get("mode_coverage")), _fmt(metrics.get("sample_spread"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -------------------------------------------------------------------------------- plots

def _figure(width: float = 7.0, height: float = 4.5):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    return figure


def _series(result: dict) -> dict[str, list[tuple[int, str, dict]]]:
    """``"<checkpoint> (<mode>)"`` -> [(steps, key, metrics)] sorted by steps."""
    series: dict[str, list[tuple[int, str, dict]]] = {}
    for name, key, metrics in _rows(result):
        label = f"{name} ({metrics.get('mode', '')})"
        series.setdefault(label, []).append((int(metrics["steps"]), key, metrics))
    return {label: sorted(points, key=lambda p: p[0]) for label, points in series.items()}


def _default_entries(result: dict, steps: int) -> list[tuple[str, dict]]:
    """Each checkpoint's default-sampler metrics at ``steps`` (where evaluated)."""
    entries = []
    for name, entry in result.get("checkpoints", {}).items():
        metrics = entry.get("results", {}).get(str(steps))
        if metrics is not None:
            entries.append((name, metrics))
    return entries


def _step_extremes(result: dict) -> list[int]:
    steps = sorted({int(m["steps"]) for _, _, m in _rows(result)})
    return sorted({steps[0], steps[-1]}) if steps else []


def plot_mse_vs_steps(result: dict, path: Path) -> None:
    """Mean per-sample MSE (and P95, dashed) against sampler steps, one line per series."""
    figure = _figure()
    axes = figure.add_subplot(1, 1, 1)
    for index, (label, points) in enumerate(_series(result).items()):
        color = f"C{index % 10}"
        steps = [p[0] for p in points]
        axes.plot(steps, [p[2]["mse_mean"] for p in points], "o-", color=color, label=label)
        axes.plot(steps, [p[2]["mse_p95"] for p in points], "--", color=color, alpha=0.5)
    axes.set_xscale("log")
    all_steps = sorted({p[0] for pts in _series(result).values() for p in pts})
    axes.set_xticks(all_steps)
    axes.set_xticklabels([str(s) for s in all_steps])
    axes.set_xlabel("sampler steps (NFE)")
    axes.set_ylabel("per-sample action MSE (robot units²)")
    axes.set_title("MSE vs steps (solid: mean, dashed: P95)")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


def plot_modes_vs_steps(result: dict, path: Path) -> None:
    """Best-of-K MSE (left) and the share of samples between modes (right) against steps."""
    figure = _figure(11.0, 4.5)
    best_axes = figure.add_subplot(1, 2, 1)
    modes_axes = figure.add_subplot(1, 2, 2)
    series = _series(result)
    all_steps = sorted({p[0] for pts in series.values() for p in pts})
    any_modes = False
    for index, (label, points) in enumerate(series.items()):
        color = f"C{index % 10}"
        steps = [p[0] for p in points]
        best = [_or_nan(p[2].get("best_of_k_mse_mean")) for p in points]
        between = [_or_nan(p[2].get("between_modes_share")) for p in points]
        best_axes.plot(steps, best, "o-", color=color, label=label)
        if np.isfinite(between).any():
            any_modes = True
            modes_axes.plot(steps, between, "o-", color=color, label=label)
    for axes in (best_axes, modes_axes):
        axes.set_xscale("log")
        axes.set_xticks(all_steps)
        axes.set_xticklabels([str(s) for s in all_steps])
        axes.set_xlabel("sampler steps (NFE)")
        axes.grid(True, alpha=0.3)
    best_axes.set_ylabel("best-of-K per-sample MSE (robot units²)")
    best_axes.set_title("best of K samples vs steps")
    best_axes.legend(fontsize=8)
    modes_axes.set_ylabel("share of samples between modes")
    modes_axes.set_ylim(-0.05, 1.05)
    modes_axes.set_title("samples between two recorded truths")
    if any_modes:
        modes_axes.legend(fontsize=8)
    else:
        modes_axes.text(0.5, 0.5, "no frame with several recorded truths", ha="center",
                        va="center", transform=modes_axes.transAxes)
    figure.tight_layout()
    figure.savefig(path)


def _or_nan(value: float | None) -> float:
    return float(value) if value is not None else float("nan")


def plot_mse_distribution(result: dict, path: Path) -> None:
    """Box plots of the per-sample MSE of each checkpoint at the fewest and the most steps."""
    extremes = _step_extremes(result)
    figure = _figure(5.0 * max(len(extremes), 1), 4.5)
    for column, steps in enumerate(extremes):
        axes = figure.add_subplot(1, len(extremes), column + 1)
        entries = [(n, m) for n, m in _default_entries(result, steps) if m.get("per_sample_mse")]
        if entries:
            axes.boxplot([m["per_sample_mse"] for _, m in entries], showfliers=True)
            axes.set_xticks(range(1, len(entries) + 1))
            axes.set_xticklabels([n for n, _ in entries], rotation=20, fontsize=8)
        axes.set_yscale("log")
        axes.set_title(f"{steps} step(s)")
        axes.set_ylabel("per-sample MSE")
        axes.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)


def plot_per_joint_mse(result: dict, path: Path) -> None:
    """Grouped bars: MSE per action dimension for each checkpoint at the fewest / most steps."""
    bars = [(f"{n} @{s}", m) for s in _step_extremes(result) for n, m in
            _default_entries(result, s)]
    names = [j["name"] for j in bars[0][1]["per_joint_mse"]] if bars else []
    figure = _figure(max(7.0, 0.6 * len(names) * max(len(bars), 1) / 2), 4.5)
    axes = figure.add_subplot(1, 1, 1)
    width = 0.8 / max(len(bars), 1)
    x = np.arange(len(names))
    for index, (label, metrics) in enumerate(bars):
        values = [j["mse"] if j["mse"] is not None else np.nan for j in metrics["per_joint_mse"]]
        axes.bar(x + index * width - 0.4 + width / 2, values, width, label=label)
    axes.set_xticks(x)
    axes.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    axes.set_ylabel("MSE")
    axes.set_title("error per joint")
    axes.grid(True, axis="y", alpha=0.3)
    if bars:
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


def plot_error_by_chunk_position(result: dict, path: Path) -> None:
    """MSE at each position in the chunk for each checkpoint at the fewest / most steps."""
    figure = _figure()
    axes = figure.add_subplot(1, 1, 1)
    for steps in _step_extremes(result):
        for name, metrics in _default_entries(result, steps):
            values = [v if v is not None else np.nan for v in metrics["error_by_chunk_position"]]
            axes.plot(np.arange(len(values)), values, label=f"{name} @{steps}")
    axes.set_xlabel("position in the chunk (control steps ahead)")
    axes.set_ylabel("MSE")
    axes.set_title("error by chunk position")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


def plot_trajectory(trajectory: dict, path: Path) -> None:
    """Recorded actions vs the first action of each predicted chunk, for a few joints."""
    recorded = np.asarray(trajectory["recorded"], dtype=np.float64)
    names = trajectory.get("action_names") or [f"action_{i}" for i in range(recorded.shape[1])]
    # The joints that move most say the most about tracking.
    order = np.argsort(-recorded.std(axis=0))[:MAX_TRAJECTORY_JOINTS]
    time_s = np.asarray(trajectory["time_s"], dtype=np.float64)
    figure = _figure(8.0, 2.2 * len(order) + 0.6)
    for row, joint in enumerate(sorted(order)):
        axes = figure.add_subplot(len(order), 1, row + 1)
        axes.plot(time_s, recorded[:, joint], color="black", linewidth=2.0, label="recorded")
        for index, (label, values) in enumerate(trajectory["predicted"].items()):
            predicted = np.asarray(values, dtype=np.float64)
            axes.plot(time_s[:len(predicted)], predicted[:, joint], color=f"C{index % 10}",
                      linewidth=1.0, label=label)
        axes.set_ylabel(names[joint], fontsize=8)
        axes.grid(True, alpha=0.3)
        if row == 0:
            axes.set_title(f"episode {trajectory['name']}: recorded vs first predicted action")
            axes.legend(fontsize=7, ncol=2)
    figure.axes[-1].set_xlabel("time (s)")
    figure.tight_layout()
    figure.savefig(path)


# ------------------------------------------------------------------------------- report

def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def report_markdown(result: dict, plots: list[tuple[str, str]], title: str) -> str:
    """The text of ``report.md`` for ``result`` and its ``(file, caption)`` plots."""
    config = result.get("config", {})
    episodes = result.get("episodes", [])
    split = result.get("split", "validation")
    lines = [f"# {title}", ""]
    split_seed = config.get("split_seed", -1)
    split_seed = split_seed if split_seed is not None and split_seed >= 0 else config.get("seed")
    scored = (f"the validation split of training (val_fraction {config.get('val_fraction')}, "
              f"split seed {split_seed})" if split == "validation"
              else "every episode (recordings never trained on)")
    lines += [f"Scored episodes: {len(episodes)} of {result.get('num_episodes_loaded', '?')} "
              f"loaded, {scored}.", ""]
    if result.get("mode") == "live":
        lines += ["Live replay: the bags were played into the running policy node; each sample "
                  "is one published JointTrajectory, scored against the recorded actions at "
                  "the times its points are due (robot units, points outside an episode "
                  "excluded). Latency: the node's own camera-arrival-to-publish time.", ""]
    else:
        lines += ["Per-sample MSE is the mean squared error of one predicted chunk against the "
                  "recorded one (robot units, padded steps past an episode end excluded). The "
                  "naive 1-step baseline is the teacher at 1 step. ``spread`` is the mean "
                  "per-element std across noise seeds for the same observation (low spread: "
                  "the sampler collapsed to one mode). Latency: one observation, encode + "
                  f"sample + un-normalise, on `{config.get('device', '?')}`.", ""]
    lines += ["``vs ref``: change of the mean MSE against the first teacher at its most steps.",
              ""]
    if has_distribution_metrics(result):
        lines += [_distribution_note(result), ""]
    lines += [format_table(result), ""]
    live_rows = [(n, k, m) for n, k, m in _rows(result) if "delivery_ms_p50" in m]
    if live_rows:
        lines += ["| Checkpoint | Steps | trajectories | camera age at publish p50 / p95 (ms) "
                  "| delivery p50 / p95 (ms) |", "|---|---|---:|---:|---:|"]
        lines += [f"| {n} | {m['steps']} | {m.get('num_trajectories', '-')} | "
                  f"{_fmt(m.get('camera_age_at_publish_ms_p50'), 3)} / "
                  f"{_fmt(m.get('camera_age_at_publish_ms_p95'), 3)} | "
                  f"{_fmt(m.get('delivery_ms_p50'), 3)} / {_fmt(m.get('delivery_ms_p95'), 3)} |"
                  for n, _, m in live_rows]
        lines.append("")
    for file, caption in plots:
        lines += [f"## {caption}", "", f"![{caption}]({file})", ""]
    lines += ["## Episodes", ""]
    lines += [f"- {e['name']} ({e['frames']} frames): `{e['source']}`" for e in episodes]
    return "\n".join(lines) + "\n"


def _distribution_note(result: dict) -> str:
    """How the K-sample columns are defined, and which frames had several truths."""
    config = result.get("config", {})
    note = (f"K = {config.get('samples_per_frame', '?')} noise samples per frame. "
            "``best-of-K MSE``: the mean over frames of the lowest per-sample MSE among the K "
            "samples (MSE rewards the average; this does not). ``sample spread``: mean "
            "per-element std across the K samples. On frames with several recorded truths "
            "(other held-out episodes with the same state and environment state at the same "
            "step, and a chunk that differs): ``between modes`` is the share of samples closer "
            "to the midpoint of their two nearest truths than to either, ``mode coverage`` the "
            "share of those frames whose samples hit at least two truths.")
    multi = result.get("multi_truth")
    if multi:
        counts = sorted({m.get("multi_truth_frames") for _, _, m in _rows(result)
                         if m.get("multi_truth_frames") is not None})
        note += (f" Frames with several truths: {', '.join(map(str, counts)) or 0} "
                 f"({multi['frames_with_matching_observation']} with a matching observation; "
                 f"different truths: MSE above {_fmt(multi['distinct_truth_mse'])}, "
                 f"{multi['distinct_truth_mse_source']}).")
        if not multi.get("environment_state_compared", True):
            note += (" The episodes have no environment state: frames were matched on the joint "
                     "state alone, so scenes that differ only in the images count as the same "
                     "observation.")
    return note


def write_directory_atomically(out_dir: str | Path, fill: Callable[[Path], None]) -> Path:
    """Let ``fill(tmp)`` write a folder, then put it in place of ``out_dir`` as a whole.

    A reader sees the old folder or the new one, never a half-written one; on failure the
    temporary folder is removed and ``out_dir`` is left as it was.
    """
    target = Path(out_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        fill(tmp)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def write_report(result: dict, out_dir: str | Path, *, title: str = "SnapFlow offline evaluation"
                 ) -> Path:
    """Write ``report.md`` and its PNG plots to ``out_dir`` (replaced as a whole), atomically."""
    def fill(tmp: Path) -> None:
        plots: list[tuple[str, str]] = []
        makers: list[tuple[str, str, Callable[[dict, Path], None]]] = [
            ("mse_vs_steps.png", "MSE vs sampler steps", plot_mse_vs_steps),
            ("mse_distribution.png", "Per-sample MSE distribution", plot_mse_distribution),
            ("per_joint_mse.png", "Error per joint", plot_per_joint_mse),
            ("error_by_chunk_position.png", "Error by chunk position",
             plot_error_by_chunk_position),
        ]
        if has_distribution_metrics(result):
            makers.insert(1, ("modes_vs_steps.png", "Best-of-K MSE and samples between modes",
                              plot_modes_vs_steps))
        for file, caption, make in makers:
            make(result, tmp / file)
            plots.append((file, caption))
        for index, trajectory in enumerate(result.get("trajectories", [])):
            file = f"trajectory_{index}_{_safe_name(trajectory['name'])}.png"
            plot_trajectory(trajectory, tmp / file)
            plots.append((file, f"Trajectory: {trajectory['name']}"))
        (tmp / "report.md").write_text(report_markdown(result, plots, title), encoding="utf-8")

    return write_directory_atomically(out_dir, fill)
