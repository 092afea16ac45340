# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Per-stage latency percentiles over a sliding window of inferences, in bounded memory."""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Mapping

import numpy as np


class LatencyTracker:
    """Record stage durations (ms) and summarise the last ``window`` of each stage."""

    def __init__(self, window: int = 500) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = int(window)
        self._lock = threading.Lock()
        self._samples: dict[str, collections.deque] = {}
        self._counts: collections.Counter = collections.Counter()
        self._max: dict[str, float] = {}

    def record(self, stage: str, duration_ms: float) -> None:
        """Add one duration (ms) of ``stage``; non-finite or negative values are ignored."""
        duration_ms = float(duration_ms)
        if not math.isfinite(duration_ms) or duration_ms < 0:
            return
        with self._lock:
            samples = self._samples.get(stage)
            if samples is None:
                samples = self._samples[stage] = collections.deque(maxlen=self.window)
            samples.append(duration_ms)
            self._counts[stage] += 1
            self._max[stage] = max(self._max.get(stage, 0.0), duration_ms)

    def record_many(self, durations_ms: Mapping[str, float]) -> None:
        """Add the stage durations (ms) of one inference, e.g. ``InferenceResult.timings_ms``."""
        for stage, duration in durations_ms.items():
            self.record(stage, duration)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per stage ``{p50, p95, max, count}``, in ms.

        Percentiles cover the last ``window`` samples; ``max`` and ``count`` everything since
        construction or :meth:`reset`.
        """
        with self._lock:
            report = {}
            for stage, samples in self._samples.items():
                values = np.fromiter(samples, dtype=np.float64, count=len(samples))
                p50, p95 = np.percentile(values, [50.0, 95.0])
                report[stage] = {"p50": float(p50), "p95": float(p95),
                                 "max": self._max[stage], "count": int(self._counts[stage])}
            return report

    def reset(self) -> None:
        """Forget every sample."""
        with self._lock:
            self._samples.clear()
            self._counts.clear()
            self._max.clear()
