# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training samples from episodes: action chunks in the batch layout of the policies.

Each sample is the observation at frame ``i`` of an episode and the action chunk
``i .. i + H - 1``; steps past the episode end repeat its last action and are flagged in
``action_is_pad``. Episodes are split into training and validation sets whole, never by frame,
and normalisation statistics come from the training episodes only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.data.episodes import Episode
from snapflow_ros.policies.base import RobotInterface


def check_episodes_match(episodes: Sequence[Episode]) -> None:
    """Raise :class:`ValueError` naming the first episode whose names or shapes differ."""
    if not episodes:
        raise ValueError("no episodes")
    ref = episodes[0]
    for episode in episodes[1:]:
        problems = []
        for label in ("state_names", "action_names", "camera_keys", "environment_state_names"):
            if tuple(getattr(episode, label)) != tuple(getattr(ref, label)):
                problems.append(f"{label} {list(getattr(episode, label))} != "
                                f"{list(getattr(ref, label))}")
        for key in ref.images:
            if key in episode.images and episode.images[key].shape[1:] != \
                    ref.images[key].shape[1:]:
                problems.append(f"image '{key}' is {episode.images[key].shape[1:]}, not "
                                f"{ref.images[key].shape[1:]}")
        if problems:
            raise ValueError(f"episode {episode.name} does not match {ref.name}: "
                             + "; ".join(problems))


def robot_interface(episodes: Sequence[Episode]) -> RobotInterface:
    """Joints, actions, cameras, image size and environment state of the episodes."""
    check_episodes_match(episodes)
    ref = episodes[0]
    height, width = next(iter(ref.images.values())).shape[1:3] if ref.images else (128, 128)
    return RobotInterface(joint_names=tuple(ref.state_names),
                          action_names=tuple(ref.action_names),
                          camera_keys=tuple(ref.camera_keys), image_height=int(height),
                          image_width=int(width),
                          environment_state_names=tuple(ref.environment_state_names))


class ChunkDataset(Dataset):
    """One sample per episode frame: observation at frame i, action chunk i..i+H-1.

    A sample is a dict: ``images`` {key: uint8 (3, h, w)}, ``state`` float32 (S,), ``action``
    float32 (H, A), ``action_is_pad`` bool (H,), ``task`` str, ``episode_index`` and
    ``frame_index`` int, and ``environment_state`` float32 (E,) when the episodes have one
    (E > 0; the key is absent otherwise). The default collate function stacks them into the
    policy batch layout.
    """

    def __init__(self, episodes: Sequence[Episode], chunk_size: int) -> None:
        if chunk_size < 1:
            raise ConfigError(f"chunk_size={chunk_size}: must be >= 1")
        episodes = list(episodes)
        check_episodes_match(episodes)
        empty = [e.name for e in episodes if len(e) == 0]
        if empty:
            raise ValueError(f"episodes without samples: {empty}")
        self.episodes = episodes
        self.chunk_size = int(chunk_size)
        self._ends = np.cumsum([len(e) for e in episodes])

    @property
    def robot(self) -> RobotInterface:
        """The :class:`RobotInterface` the samples follow."""
        return robot_interface(self.episodes)

    def __len__(self) -> int:
        return int(self._ends[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """``(episode_index, frame_index)`` of sample ``index`` (negative counts from the end)."""
        length = len(self)
        if index < 0:
            index += length
        if not 0 <= index < length:
            raise IndexError(f"sample {index} out of range for {length} samples")
        episode = int(np.searchsorted(self._ends, index, side="right"))
        start = int(self._ends[episode - 1]) if episode else 0
        return episode, index - start

    def __getitem__(self, index: int) -> dict:
        episode_index, frame = self.locate(int(index))
        episode = self.episodes[episode_index]
        steps = np.arange(frame, frame + self.chunk_size)
        is_pad = steps >= len(episode)
        steps = np.minimum(steps, len(episode) - 1)
        images = {
            key: torch.from_numpy(np.ascontiguousarray(
                np.asarray(frames[frame]).transpose(2, 0, 1)))
            for key, frames in episode.images.items()
        }
        sample = {
            "images": images,
            "state": torch.from_numpy(np.array(episode.state[frame], dtype=np.float32)),
            "action": torch.from_numpy(np.array(episode.action[steps], dtype=np.float32)),
            "action_is_pad": torch.from_numpy(is_pad),
            "task": episode.task,
            "episode_index": episode_index,
            "frame_index": frame,
        }
        if episode.environment_state_names:
            sample["environment_state"] = torch.from_numpy(
                np.array(episode.environment_state[frame], dtype=np.float32))
        return sample


def split_episodes(episodes: Sequence[Episode], val_fraction: float | None = None,
                   val_count: int | None = None, seed: int = 0
                   ) -> tuple[list[Episode], list[Episode]]:
    """Split whole episodes into ``(train, val)``, drawn with ``seed``, each in input order.

    Give exactly one of ``val_fraction`` (rounded, at least one episode when > 0) or
    ``val_count``. At least one training episode must remain.
    """
    if (val_fraction is None) == (val_count is None):
        raise ConfigError("give exactly one of val_fraction or val_count")
    count = len(episodes)
    if val_fraction is not None:
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction={val_fraction}: must be in [0, 1)")
        n_val = int(round(val_fraction * count))
        if val_fraction > 0 and n_val == 0:
            n_val = 1
    else:
        n_val = int(val_count)
        if n_val < 0:
            raise ConfigError(f"val_count={val_count}: must be >= 0")
    if n_val >= count:
        raise ConfigError(f"{n_val} validation episode(s) out of {count} leaves none to train on")
    order = np.random.default_rng(seed).permutation(count)
    val_ids = set(order[:n_val].tolist())
    train = [e for i, e in enumerate(episodes) if i not in val_ids]
    val = [e for i, e in enumerate(episodes) if i in val_ids]
    return train, val


def compute_normalization_stats(train_episodes: Sequence[Episode]):
    """Normalisation statistics of every frame's state, action and environment state.

    The environment state's only when the episodes have one (E > 0).

    Mean / std, min / max and q01 / q99 (PI05 normalises with the quantiles).

    Returns :class:`~snapflow_ros.policies.normalization.NormalizationStats`; pass the training
    split only, so validation data never shapes the normalisation.
    """
    from snapflow_ros.policies.normalization import NormalizationStats

    if not train_episodes:
        raise ValueError("no training episodes to compute normalisation statistics from")
    check_episodes_match(train_episodes)
    states = np.concatenate([e.state for e in train_episodes], axis=0)
    actions = np.concatenate([e.action for e in train_episodes], axis=0)
    environment_states = None
    if train_episodes[0].environment_state_names:
        environment_states = np.concatenate([e.environment_state for e in train_episodes], axis=0)
    return NormalizationStats.from_arrays(states, actions, environment_states=environment_states)
