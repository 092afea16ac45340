# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the latency tracker: percentiles per stage over a bounded window."""

import threading

import pytest

from snapflow_ros.runtime.latency_tracker import LatencyTracker


def test_summary_gives_percentiles_max_and_count_per_stage():
    tracker = LatencyTracker(window=1000)
    for value in range(1, 101):
        tracker.record_many({"model": float(value), "preprocess": 2.0})
    summary = tracker.summary()
    assert summary["model"]["p50"] == pytest.approx(50.5)
    assert summary["model"]["p95"] == pytest.approx(95.05)
    assert summary["model"]["max"] == 100.0 and summary["model"]["count"] == 100
    assert summary["preprocess"] == {"p50": 2.0, "p95": 2.0, "max": 2.0, "count": 100}


def test_percentiles_follow_the_window_while_max_and_count_cover_everything():
    tracker = LatencyTracker(window=10)
    tracker.record("model", 500.0)
    for _ in range(50):
        tracker.record("model", 5.0)
    summary = tracker.summary()["model"]
    assert summary["p95"] == 5.0 and summary["max"] == 500.0 and summary["count"] == 51
    assert len(tracker._samples["model"]) == 10  # memory stays bounded


def test_invalid_durations_are_ignored_and_reset_clears():
    tracker = LatencyTracker()
    tracker.record("model", float("nan"))
    tracker.record("model", -1.0)
    assert tracker.summary() == {}
    tracker.record("model", 1.0)
    tracker.reset()
    assert tracker.summary() == {}
    with pytest.raises(ValueError):
        LatencyTracker(window=0)


def test_recording_from_threads_loses_nothing():
    tracker = LatencyTracker(window=100)

    def record():
        for _ in range(2000):
            tracker.record("model", 1.0)
            tracker.summary()

    threads = [threading.Thread(target=record) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tracker.summary()["model"]["count"] == 6000
