# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""On-disk cache of decoded, aligned episodes, so a bag is decoded once across runs.

Each entry is a folder ``<cache_dir>/<bag name>-<key>/`` holding ``meta.json`` and one ``.npy``
per array (images are memory-mapped when loaded). The key hashes the bag's content fingerprint
(file names, sizes and three 1 MiB samples of each file: start, middle, end), the whole
:class:`~snapflow_ros.data.config.BagTopicsConfig` and a format version. Entries are written to
a hidden temporary folder and renamed into place, so an interrupted write leaves no entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from snapflow_ros.config_fields import config_to_dict
from snapflow_ros.data.config import BagTopicsConfig
from snapflow_ros.data.episodes import BagReport, Episode

LOGGER = logging.getLogger("snapflow_ros.data")
CACHE_FORMAT = 2  # 2: environment state (older entries are decoded again)
_SAMPLE_BYTES = 1 << 20


def bag_fingerprint(bag: str | Path) -> str:
    """Hex digest of a bag's files: names, sizes and sampled content (not times)."""
    bag = Path(bag)
    files = sorted(p for p in bag.iterdir() if p.is_file()) if bag.is_dir() else [bag]
    digest = hashlib.blake2b(digest_size=16)
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.name}\0{size}\0".encode())
        with file.open("rb") as handle:
            for offset in sorted({0, max(0, size // 2 - _SAMPLE_BYTES // 2),
                                  max(0, size - _SAMPLE_BYTES)}):
                handle.seek(offset)
                digest.update(handle.read(_SAMPLE_BYTES))
    return digest.hexdigest()


class EpisodeCache:
    """Episodes of each bag under ``root``, for one config."""

    def __init__(self, root: str | Path, config: BagTopicsConfig) -> None:
        self.root = Path(root)
        self._config_json = json.dumps(config_to_dict(config), sort_keys=True)

    def entry(self, bag: str | Path) -> Path:
        """The cache folder of ``bag`` under the current config."""
        bag = Path(bag)
        key = hashlib.blake2b(
            f"{CACHE_FORMAT}\0{self._config_json}\0{bag_fingerprint(bag)}".encode(),
            digest_size=10).hexdigest()
        return self.root / f"{bag.name}-{key}"

    def load(self, bag: str | Path) -> tuple[list[Episode], BagReport] | None:
        """Cached episodes and report of ``bag``, or None on a miss (a broken entry is removed)."""
        bag = Path(bag)
        folder = self.entry(bag)
        if not folder.is_dir():
            return None
        try:
            meta = json.loads((folder / "meta.json").read_text())
            if meta.get("format") != CACHE_FORMAT:
                raise ValueError(f"cache format {meta.get('format')}")
            episodes = []
            for i, info in enumerate(meta["episodes"]):
                images = {key: np.load(folder / f"e{i}.cam{j}.npy", mmap_mode="r")
                          for j, key in enumerate(info["camera_keys"])}
                episodes.append(Episode(
                    images=images,
                    state=np.load(folder / f"e{i}.state.npy"),
                    action=np.load(folder / f"e{i}.action.npy"),
                    timestamps_ns=np.load(folder / f"e{i}.t.npy"),
                    task=info["task"],
                    source=bag,
                    state_names=tuple(info["state_names"]),
                    action_names=tuple(info["action_names"]),
                    rate_hz=float(info["rate_hz"]),
                    segment=int(info["segment"]),
                    environment_state=np.load(folder / f"e{i}.env.npy"),
                    environment_state_names=tuple(info["environment_state_names"]),
                ))
            report = BagReport(path=bag, from_cache=True, **meta["report"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            LOGGER.warning("ignoring broken cache entry %s (%s)", folder, exc)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        return episodes, report

    def store(self, bag: str | Path, episodes: list[Episode], report: BagReport) -> Path | None:
        """Write an entry atomically; a failure (e.g. disk full) is logged, never raised."""
        folder = self.entry(bag)
        report_fields = {f.name: getattr(report, f.name) for f in dataclasses.fields(report)
                         if f.name not in ("path", "from_cache")}
        meta = {
            "format": CACHE_FORMAT,
            "bag": str(bag),
            "report": report_fields,
            "episodes": [{
                "camera_keys": list(e.images), "task": e.task,
                "state_names": list(e.state_names), "action_names": list(e.action_names),
                "environment_state_names": list(e.environment_state_names),
                "rate_hz": e.rate_hz, "segment": e.segment, "length": len(e),
            } for e in episodes],
        }
        tmp = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=self.root))
            for i, episode in enumerate(episodes):
                for j, key in enumerate(episode.images):
                    np.save(tmp / f"e{i}.cam{j}.npy", np.asarray(episode.images[key]))
                np.save(tmp / f"e{i}.state.npy", episode.state)
                np.save(tmp / f"e{i}.action.npy", episode.action)
                np.save(tmp / f"e{i}.t.npy", episode.timestamps_ns)
                np.save(tmp / f"e{i}.env.npy", episode.environment_state)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            os.rename(tmp, folder)
            tmp = None
        except OSError as exc:
            if folder.is_dir():  # another process stored the same entry first
                return folder
            LOGGER.warning("could not write cache entry %s (%s)", folder, exc)
            return None
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        return folder
