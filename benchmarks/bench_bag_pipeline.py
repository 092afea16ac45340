# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Benchmark the rosbag2 -> training-sample pipeline: bag read throughput and build time.

Writes (or reuses) ``--episodes`` demonstration bags of ``--steps`` control steps (50 Hz
actions, 100 Hz joint states, one 30 Hz camera at ``--image-size``), then measures:

- bag read throughput: decoding the configured topics only (camera frames per second);
- the one-time dataset build: find + read + align + episodes, the normalisation statistics and
  the ``ChunkDataset`` (no cache; optionally with ``--workers`` decoding processes), then the
  same with the episode cache cold and warm;
- sample throughput of the built ``ChunkDataset`` (random access, chunk 50).

Usage: ``python benchmarks/bench_bag_pipeline.py [--episodes 50 --steps 400] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# The synthetic-demonstration writer is shared with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))

from bag_fixtures import write_demo_bag  # noqa: E402

from snapflow_ros.data.bag_reader import find_bags, read_bag  # noqa: E402
from snapflow_ros.data.episodes import load_episodes  # noqa: E402


def write_bags(folder: Path, episodes: int, steps: int, image_size: int, storage: str,
               encoding: str):
    """Write the benchmark bags; returns the DemoBag of the first one (for its config)."""
    first = None
    for i in range(episodes):
        bag = write_demo_bag(folder / f"episode_{i:03d}", storage=storage, n_steps=steps,
                             image_size=(image_size, image_size), encoding=encoding,
                             joint_names=[f"joint_{j}" for j in range(14)])
        first = first or bag
    return first


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3")
    parser.add_argument("--encoding", choices=("rgb8", "bgr8", "jpeg", "png"), default="rgb8")
    parser.add_argument("--bags-dir", type=Path, default=None,
                        help="where the bags are (reused if present; default: a temp dir)")
    parser.add_argument("--samples", type=int, default=2000,
                        help="random ChunkDataset samples to time")
    parser.add_argument("--workers", type=int, default=1,
                        help="also time the build with this many decoding processes")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)

    import torch

    from snapflow_ros.data.dataset import ChunkDataset, compute_normalization_stats

    scratch = Path(tempfile.mkdtemp(prefix="bench_bag_pipeline_"))
    bags_dir = args.bags_dir or scratch / "bags"
    results: dict = {"episodes": args.episodes, "steps": args.steps,
                     "image_size": args.image_size, "storage": args.storage,
                     "encoding": args.encoding, "python": platform.python_version(),
                     "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                     "load_avg_1min_at_start": round(os.getloadavg()[0], 2)}
    try:
        started = time.perf_counter()
        if bags_dir.exists() and any(bags_dir.iterdir()):
            results["bags_written"] = False
            probe_dir = scratch / "probe"
            demo = write_demo_bag(probe_dir, n_steps=2, image_size=(args.image_size,) * 2,
                                  joint_names=[f"joint_{j}" for j in range(14)])
        else:
            demo = write_bags(bags_dir, args.episodes, args.steps, args.image_size,
                              args.storage, args.encoding)
            results["bags_written"] = True
            results["write_s"] = round(time.perf_counter() - started, 3)
        config = demo.config(min_episode_steps=10)
        bags = find_bags(bags_dir)
        results["bag_bytes"] = sum(f.stat().st_size for b in bags for f in
                                   (b.iterdir() if b.is_dir() else [b]))

        # 1. Reading only: decode the configured topics of every bag.
        started = time.perf_counter()
        frames = messages = 0
        for bag in bags:
            streams = read_bag(bag, config)
            frames += sum(len(s) for s in streams.cameras.values())
            messages += sum(len(s) for s in streams.all_streams())
        read_s = time.perf_counter() - started
        results.update(read_s=round(read_s, 3), camera_frames=frames, messages=messages,
                       read_frames_per_s=round(frames / read_s, 1),
                       read_messages_per_s=round(messages / read_s, 1))

        # 2. One-time build without cache: episodes, statistics, dataset.
        started = time.perf_counter()
        episodes, summary = load_episodes(bags_dir, config, progress=False)
        stats = compute_normalization_stats(episodes)
        dataset = ChunkDataset(episodes, chunk_size=50)
        build_s = time.perf_counter() - started
        results.update(build_s=round(build_s, 3), samples=summary.samples,
                       build_samples_per_s=round(summary.samples / build_s, 1),
                       dropped=summary.dropped, state_dim=stats.state_dim)

        if args.workers > 1:
            started = time.perf_counter()
            load_episodes(bags_dir, config, progress=False, workers=args.workers)
            results[f"build_{args.workers}_workers_s"] = round(time.perf_counter() - started, 3)

        # 3. The same through the episode cache: cold (decode + write) then warm (read).
        cache = scratch / "cache"
        started = time.perf_counter()
        load_episodes(bags_dir, config, progress=False, cache_dir=cache)
        results["build_cold_cache_s"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        cached, summary = load_episodes(bags_dir, config, progress=False, cache_dir=cache)
        ChunkDataset(cached, chunk_size=50)
        results["build_warm_cache_s"] = round(time.perf_counter() - started, 3)
        results["cache_hits"] = summary.cache_hits

        # 4. Sample access: what a DataLoader worker pays per sample.
        rng = np.random.default_rng(0)
        picks = rng.integers(0, len(dataset), size=args.samples)
        started = time.perf_counter()
        for index in picks:
            dataset[int(index)]
        sample_s = time.perf_counter() - started
        results["samples_per_s"] = round(args.samples / sample_s, 1)
        results["samples_per_s_cached"] = round(args.samples / _time_samples(
            ChunkDataset(cached, chunk_size=50), picks), 1)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    for key, value in results.items():
        print(f"{key:>24}: {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return results


def _time_samples(dataset, picks) -> float:
    started = time.perf_counter()
    for index in picks:
        dataset[int(index)]
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
