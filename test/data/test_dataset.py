# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ChunkDataset samples, episode-level train/val split and train-only normalisation stats."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.data.dataset import (
    ChunkDataset,
    compute_normalization_stats,
    split_episodes,
)
from snapflow_ros.data.episodes import Episode


def make_episode(length: int, offset: float = 0.0, name: str = "bag", task: str = "pick",
                 size=(8, 10)) -> Episode:
    """An episode whose action at frame t is offset + t (all joints), images carry t in red."""
    images = np.zeros((length, *size, 3), np.uint8)
    images[..., 0] = np.arange(length, dtype=np.uint8)[:, None, None]
    steps = np.arange(length, dtype=np.float32)[:, None]
    return Episode(
        images={"top": images},
        state=np.repeat(offset + steps - 0.5, 2, axis=1),
        action=np.repeat(offset + steps, 3, axis=1),
        timestamps_ns=np.arange(length, dtype=np.int64) * 20_000_000,
        task=task, source=Path(name), state_names=("a", "b"), action_names=("a", "b", "c"),
        rate_hz=50.0)


def test_samples_follow_the_policy_batch_layout():
    dataset = ChunkDataset([make_episode(10), make_episode(5, offset=100.0, task="place")],
                           chunk_size=4)
    assert len(dataset) == 15
    sample = dataset[12]  # episode 1, frame 2
    assert (sample["episode_index"], sample["frame_index"]) == (1, 2)
    assert sample["images"]["top"].shape == (3, 8, 10)
    assert sample["images"]["top"].dtype == torch.uint8
    assert int(sample["images"]["top"][0, 0, 0]) == 2
    assert sample["state"].dtype == torch.float32 and sample["state"].tolist() == [101.5] * 2
    assert sample["action"].shape == (4, 3) and sample["action"].dtype == torch.float32
    assert sample["task"] == "place"
    batch = next(iter(DataLoader(dataset, batch_size=3)))
    assert batch["images"]["top"].shape == (3, 3, 8, 10)
    assert batch["state"].shape == (3, 2) and batch["action"].shape == (3, 4, 3)
    assert batch["action_is_pad"].shape == (3, 4) and batch["action_is_pad"].dtype == torch.bool
    assert batch["task"] == ["pick"] * 3
    assert dataset.robot.joint_names == ("a", "b") and dataset.robot.image_width == 10


def test_chunks_are_padded_past_the_episode_end_with_the_last_action():
    dataset = ChunkDataset([make_episode(10), make_episode(5, offset=100.0)], chunk_size=4)
    inside = dataset[3]
    assert inside["action"][:, 0].tolist() == [3, 4, 5, 6]
    assert not inside["action_is_pad"].any()
    end = dataset[8]  # frames 8, 9, then two padded steps repeating frame 9
    assert end["action"][:, 0].tolist() == [8, 9, 9, 9]
    assert end["action_is_pad"].tolist() == [False, False, True, True]
    last = dataset[-1]  # last frame of episode 1: never borrows from another episode
    assert last["action"][:, 0].tolist() == [104, 104, 104, 104]
    assert last["action_is_pad"].tolist() == [False, True, True, True]
    with pytest.raises(IndexError):
        dataset[15]


def test_mismatched_episodes_or_bad_chunk_size_are_refused():
    odd = make_episode(5)
    odd.state_names = ("a", "x")
    with pytest.raises(ValueError, match="state_names"):
        ChunkDataset([make_episode(5), odd], chunk_size=2)
    with pytest.raises(ConfigError, match="chunk_size"):
        ChunkDataset([make_episode(5)], chunk_size=0)


def test_split_is_by_whole_episode_deterministic_and_without_leakage():
    episodes = [make_episode(4 + i, name=f"bag{i}") for i in range(10)]
    train, val = split_episodes(episodes, val_fraction=0.2, seed=3)
    assert len(val) == 2 and len(train) == 8
    assert {id(e) for e in train}.isdisjoint({id(e) for e in val})
    assert {id(e) for e in train} | {id(e) for e in val} == {id(e) for e in episodes}
    again_train, again_val = split_episodes(episodes, val_fraction=0.2, seed=3)
    assert [e.source for e in again_val] == [e.source for e in val]
    other = [split_episodes(episodes, val_fraction=0.2, seed=s)[1] for s in range(8)]
    assert len({tuple(e.source for e in v) for v in other}) > 1  # the seed matters
    train_frames = {(e.source, f) for e in train for f in range(len(e))}
    val_frames = {(e.source, f) for e in val for f in range(len(e))}
    assert not train_frames & val_frames
    assert len(split_episodes(episodes, val_count=3)[1]) == 3
    assert len(split_episodes(episodes[:3], val_fraction=0.1)[1]) == 1  # never rounds to none


@pytest.mark.parametrize("kwargs", [{}, {"val_fraction": 0.2, "val_count": 1},
                                    {"val_count": 3}, {"val_fraction": 1.0}])
def test_split_refuses_ambiguous_or_empty_training_sets(kwargs):
    with pytest.raises(ConfigError):
        split_episodes([make_episode(3) for _ in range(3)], **kwargs)


def test_normalisation_stats_come_from_the_training_episodes_only():
    episodes = [make_episode(10, offset=0.0), make_episode(10, offset=1000.0)]
    train, val = [episodes[0]], [episodes[1]]
    stats = compute_normalization_stats(train)
    np.testing.assert_allclose(stats.action_mean, episodes[0].action.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats.state_std, episodes[0].state.std(axis=0), rtol=1e-6)
    everything = compute_normalization_stats(train + val)
    assert everything.action_mean[0] > 400 > stats.action_mean[0]
    with pytest.raises(ValueError):
        compute_normalization_stats([])
