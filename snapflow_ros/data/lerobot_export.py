# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Export episodes as a LeRobotDataset (v3, images stored in parquet, no video), offline.

Features: ``observation.images.<camera key>`` (image, h x w x 3), ``observation.state`` and
``action`` (float32, named by joint), ``observation.environment_state`` (float32, named
``<source>/<field>``, only when the episodes have one), and the task text of each frame. LeRobot
computes every feature's statistics (``meta/stats.json``) as it writes the episodes. The
dataset is written into a hidden folder next to ``out_dir`` and renamed into place only when
complete, so a failed export leaves nothing at ``out_dir``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from snapflow_ros.data.dataset import check_episodes_match
from snapflow_ros.data.episodes import Episode

STATE_KEY = "observation.state"
ACTION_KEY = "action"
ENVIRONMENT_STATE_KEY = "observation.environment_state"
IMAGE_KEY_PREFIX = "observation.images."


def lerobot_features(episode: Episode) -> dict[str, dict]:
    """LeRobot feature specification for episodes shaped like ``episode``."""
    features: dict[str, dict] = {}
    for key, frames in episode.images.items():
        height, width = frames.shape[1:3]
        features[IMAGE_KEY_PREFIX + key] = {
            "dtype": "image", "shape": (int(height), int(width), 3),
            "names": ["height", "width", "channels"]}
    features[STATE_KEY] = {"dtype": "float32", "shape": (len(episode.state_names),),
                           "names": list(episode.state_names)}
    features[ACTION_KEY] = {"dtype": "float32", "shape": (len(episode.action_names),),
                            "names": list(episode.action_names)}
    if episode.environment_state_names:
        features[ENVIRONMENT_STATE_KEY] = {
            "dtype": "float32", "shape": (len(episode.environment_state_names),),
            "names": list(episode.environment_state_names)}
    return features


def export_lerobot_dataset(episodes: Sequence[Episode], out_dir: str | Path, repo_id: str,
                           fps: int | None = None, robot_type: str | None = None, *,
                           default_task: str = "", overwrite: bool = False,
                           image_writer_threads: int = 0) -> Path:
    """Write ``episodes`` as a LeRobotDataset at ``out_dir`` and return that path.

    ``fps`` defaults to the episodes' rate and must be a whole number of Hz. Frames whose
    episode has no task get ``default_task``.
    An existing ``out_dir`` raises :class:`FileExistsError` unless ``overwrite``.
    """
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    episodes = list(episodes)
    check_episodes_match(episodes)
    rate = fps if fps is not None else episodes[0].rate_hz
    if abs(rate - round(rate)) > 1e-6 or round(rate) < 1:
        raise ValueError(f"fps={rate}: LeRobot datasets need a whole, positive number of Hz")
    fps = int(round(rate))
    if any(abs(e.rate_hz - fps) > 1e-6 for e in episodes):
        raise ValueError(f"episodes were resampled at {sorted({e.rate_hz for e in episodes})} "
                         f"Hz, not at fps={fps}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists (pass overwrite=True to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)

    features = lerobot_features(episodes[0])
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    root = staging / "dataset"
    try:
        dataset = LeRobotDataset.create(repo_id=repo_id, fps=fps, features=features,
                                        root=root, robot_type=robot_type, use_videos=False,
                                        image_writer_threads=image_writer_threads,
                                        video_backend="pyav")
        try:
            for episode in episodes:
                task = episode.task or default_task
                for t in range(len(episode)):
                    frame = {IMAGE_KEY_PREFIX + key: np.asarray(frames[t])
                             for key, frames in episode.images.items()}
                    frame[STATE_KEY] = np.asarray(episode.state[t], dtype=np.float32)
                    frame[ACTION_KEY] = np.asarray(episode.action[t], dtype=np.float32)
                    if ENVIRONMENT_STATE_KEY in features:
                        frame[ENVIRONMENT_STATE_KEY] = np.asarray(episode.environment_state[t],
                                                                  dtype=np.float32)
                    frame["task"] = task
                    dataset.add_frame(frame)
                dataset.save_episode()
        finally:
            dataset.finalize()
        if out_dir.exists():
            shutil.rmtree(out_dir)
        root.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir
