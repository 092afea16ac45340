# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Thread-safe store of the latest camera images and joint state, validated on arrival.

Subscription callbacks add inputs (with their monotonic receive time and header stamp); the
inference thread takes a :class:`Observation` snapshot. Every refused input raises
:class:`InputRejected` and is counted by input and reason. Times passed as ``receive_time`` and
``now`` are one monotonic clock (s); header stamps and ``clock_now`` are the ROS clock (s).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
from collections.abc import Iterable, Sequence

import numpy as np

from snapflow_ros.config_fields import ConfigError, check_config, param
from snapflow_ros.data.environment_state import (
    EnvironmentStateError,
    environment_state_values,
    sizes_by_source,
)
from snapflow_ros.runtime.image_decoding import InputRejected, decode_compressed, decode_image

JOINT_STATE = "joint_state"


def camera_input(key: str) -> str:
    """Name of camera ``key``'s input in ages, rates and rejection counts."""
    return f"camera/{key}"


def environment_input(source: str) -> str:
    """Name of environment-state source ``source``'s input in ages, rates and rejections."""
    return f"environment/{source}"


@dataclasses.dataclass(frozen=True)
class ObservationConfig:
    """What an observation is made of and which inputs are accepted (topics aside)."""

    joint_names: tuple[str, ...] = param(
        (), "State joints picked from JointState, in model order (empty = the checkpoint's)."
    )
    camera_keys: tuple[str, ...] = param(
        ("top",), "Checkpoint camera key fed by the camera topic at the same index."
    )
    expected_image_height: int = param(
        0, "Reject camera images of another height (pixels, 0 = any).", low=0, high=16384
    )
    expected_image_width: int = param(
        0, "Reject camera images of another width (pixels, 0 = any).", low=0, high=16384
    )
    max_stamp_lead_s: float = param(
        0.1, "Reject inputs whose header stamp is this far ahead of the node clock (s).",
        low=0.0, high=60.0,
    )
    environment_state_names: tuple[str, ...] = param(
        (), "Environment-state entries in model order, '<source>/<field>' (empty = the "
            "checkpoint's)."
    )
    task: str = param("", "Task instruction given to language-conditioned policies.",
                      runtime=True)

    def __post_init__(self) -> None:
        check_config(self)
        if not self.camera_keys:
            raise ConfigError("camera_keys: at least one camera is required")
        for label in ("camera_keys", "joint_names", "environment_state_names"):
            names = getattr(self, label)
            if len(set(names)) != len(names):
                raise ConfigError(f"{label} has duplicates: {list(names)}")
        if (self.expected_image_height == 0) != (self.expected_image_width == 0):
            raise ConfigError("expected_image_height and expected_image_width: set both or none")

    @property
    def expected_image_size(self) -> tuple[int, int] | None:
        """``(height, width)`` every camera image must have, or None (any size)."""
        if not self.expected_image_height:
            return None
        return self.expected_image_height, self.expected_image_width


@dataclasses.dataclass(frozen=True)
class Observation:
    """One synchronised observation, ready for :class:`~.policy_runner.PolicyRunner`.

    ``images``: camera key -> ``(H, W, 3)`` uint8 RGB; ``state``: ``(S,)`` float64 positions of
    the state joints; ``measured_position``: ``(A,)`` float64 positions of the commanded joints;
    ``time``: monotonic receive time of the joint state (s), the time action 0 is meant for;
    ``environment_state``: ``(E,)`` float64 object poses ... in model order (empty: none).
    """

    images: dict[str, np.ndarray]
    state: np.ndarray
    measured_position: np.ndarray
    task: str
    time: float
    stamps: dict[str, float | None]
    ages: dict[str, float]
    environment_state: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))


@dataclasses.dataclass
class _Latest:
    value: object = None
    receive_time: float | None = None
    stamp: float | None = None
    receive_times: collections.deque = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=200)
    )


class ObservationBuffer:
    """Latest image per camera and latest joint state, with ages, rates and rejection counts."""

    def __init__(self, joint_names: Sequence[str], camera_keys: Sequence[str], *,
                 command_joint_names: Sequence[str] | None = None,
                 environment_state_names: Sequence[str] = (),
                 max_input_age_s: float = 0.5, max_stamp_lead_s: float = 0.1,
                 expected_image_size: tuple[int, int] | None = None,
                 rate_window_s: float = 2.0, task: str = "") -> None:
        """Pick ``joint_names`` (state) and ``command_joint_names`` (default: the same) by name.

        ``expected_image_size`` ``(height, width)`` rejects other sizes; None accepts any.
        ``environment_state_names`` (``<source>/<field>``) make one more input per source.
        """
        if not joint_names:
            raise ValueError("ObservationBuffer needs at least one state joint")
        self.joint_names = tuple(joint_names)
        self.command_joint_names = tuple(command_joint_names or joint_names)
        self.camera_keys = tuple(camera_keys)
        self.max_input_age_s = float(max_input_age_s)
        self.max_stamp_lead_s = float(max_stamp_lead_s)
        self.expected_image_size = expected_image_size
        self.rate_window_s = float(rate_window_s)
        # Both name lists index into one vector of required joints.
        self._required = tuple(dict.fromkeys(self.joint_names + self.command_joint_names))
        index = {name: i for i, name in enumerate(self._required)}
        self._state_index = np.array([index[n] for n in self.joint_names], dtype=np.intp)
        self._command_index = np.array([index[n] for n in self.command_joint_names],
                                       dtype=np.intp)
        # Re-entrant: a rejection is counted while the lock is held for the stamp check.
        self._lock = threading.RLock()
        self._inputs = {JOINT_STATE: _Latest()}
        self._inputs.update({camera_input(k): _Latest() for k in self.camera_keys})
        self.environment_state_names = tuple(environment_state_names)
        try:
            self._environment_sizes = sizes_by_source(self.environment_state_names)
        except EnvironmentStateError as exc:
            raise ValueError(str(exc)) from None
        # A source's layout is what its names say: pose names end in qw, positions in z.
        self._environment_layouts = {
            source: ("pose" if any(n.startswith(f"{source}/") and n.endswith("/qw")
                                   for n in self.environment_state_names) else "position")
            for source in self._environment_sizes}
        self._inputs.update({environment_input(s): _Latest() for s in self._environment_sizes})
        self._task = task
        self._accepted: collections.Counter = collections.Counter()
        self._rejected: dict[str, collections.Counter] = collections.defaultdict(
            collections.Counter
        )

    @classmethod
    def from_config(cls, config: ObservationConfig, *, max_input_age_s: float,
                    command_joint_names: Sequence[str] | None = None) -> ObservationBuffer:
        """A buffer for ``config`` (its ``joint_names`` resolved to the checkpoint's).

        ``max_input_age_s`` (s) is the safety guard's: an older input makes no observation.
        """
        return cls(config.joint_names, config.camera_keys,
                   command_joint_names=command_joint_names,
                   environment_state_names=config.environment_state_names,
                   max_input_age_s=max_input_age_s,
                   max_stamp_lead_s=config.max_stamp_lead_s,
                   expected_image_size=config.expected_image_size, task=config.task)

    def set_max_input_age(self, max_input_age_s: float) -> None:
        """Change the age (s) beyond which an input makes no observation (a runtime setting)."""
        with self._lock:
            self.max_input_age_s = float(max_input_age_s)

    # ------------------------------------------------------------------------------ inputs

    def _reject(self, name: str, reason: str, detail: str) -> InputRejected:
        with self._lock:
            self._rejected[name][reason] += 1
        return InputRejected(reason, detail)

    def _camera(self, camera_key: str) -> str:
        name = camera_input(camera_key)
        if name not in self._inputs:
            raise self._reject(name, "unknown_camera",
                               f"'{camera_key}' (configured: {list(self.camera_keys)})")
        return name

    def _check_stamp(self, name: str, stamp: float | None, clock_now: float | None) -> None:
        # A zero stamp is an unset header: it cannot be ordered, so only receive times count.
        if not stamp:
            return
        if not math.isfinite(stamp):
            raise self._reject(name, "bad_stamp", f"stamp {stamp}")
        if clock_now is not None and stamp > clock_now + self.max_stamp_lead_s:
            raise self._reject(
                name, "stamp_in_future",
                f"stamp {stamp:.6f} is {stamp - clock_now:.3f} s ahead of the clock",
            )
        previous = self._inputs[name].stamp
        if previous and stamp < previous:
            raise self._reject(
                name, "stamp_out_of_order",
                f"stamp {stamp:.6f} is older than the previous {previous:.6f}",
            )

    def _store(self, name: str, value: object, receive_time: float, stamp: float | None,
               clock_now: float | None) -> None:
        with self._lock:
            self._check_stamp(name, stamp, clock_now)
            latest = self._inputs[name]
            latest.value = value
            latest.receive_time = receive_time
            if stamp:
                latest.stamp = stamp
            latest.receive_times.append(receive_time)
            self._accepted[name] += 1

    def add_joint_state(self, names: Sequence[str], positions: Iterable[float], *,
                        receive_time: float, stamp: float | None = None,
                        clock_now: float | None = None) -> None:
        """Store the configured joints of a JointState (any order, extra joints ignored).

        Raises :class:`InputRejected` (and counts it) for mismatched name / position lengths,
        duplicate or missing names, non-finite positions of used joints, and bad stamps.
        """
        names = list(names)
        try:
            values = np.asarray(list(positions), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise self._reject(JOINT_STATE, "bad_position", str(exc)) from exc
        if values.ndim != 1 or len(values) != len(names):
            raise self._reject(JOINT_STATE, "length_mismatch",
                               f"{len(names)} names, {values.size} positions")
        if len(set(names)) != len(names):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            raise self._reject(JOINT_STATE, "duplicate_name", f"{duplicates}")
        index = {name: i for i, name in enumerate(names)}
        missing = [n for n in self._required if n not in index]
        if missing:
            raise self._reject(JOINT_STATE, "missing_joint", f"{missing}")
        picked = values[[index[n] for n in self._required]]
        if not np.all(np.isfinite(picked)):
            bad = [n for n, v in zip(self._required, picked) if not math.isfinite(v)]
            raise self._reject(JOINT_STATE, "non_finite_position", f"{bad}")
        self._store(JOINT_STATE, picked, receive_time, stamp, clock_now)

    def add_image(self, camera_key: str, image: np.ndarray, *, receive_time: float,
                  stamp: float | None = None, clock_now: float | None = None) -> None:
        """Store a decoded ``(H, W, 3)`` uint8 RGB image of camera ``camera_key``.

        The buffer keeps a reference to ``image``: do not modify it afterwards.
        """
        name = self._camera(camera_key)
        if (not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3
                or image.shape[2] != 3):
            raise self._reject(name, "bad_image", "expected an (H, W, 3) uint8 array")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise self._reject(name, "zero_size", f"{image.shape[0]}x{image.shape[1]} image")
        if self.expected_image_size and tuple(image.shape[:2]) != tuple(self.expected_image_size):
            height, width = self.expected_image_size
            raise self._reject(name, "wrong_size",
                               f"{image.shape[0]}x{image.shape[1]}, expected {height}x{width}")
        self._store(name, image, receive_time, stamp, clock_now)

    def add_raw_image(self, camera_key: str, encoding: str, height: int, width: int, step: int,
                      data: object, *, receive_time: float, stamp: float | None = None,
                      clock_now: float | None = None) -> None:
        """Decode the fields of a ``sensor_msgs/Image`` and store it (see :meth:`add_image`)."""
        name = self._camera(camera_key)
        try:
            image = decode_image(encoding, height, width, step, data)
        except InputRejected as exc:
            raise self._reject(name, exc.reason, exc.detail) from None
        self.add_image(camera_key, image, receive_time=receive_time, stamp=stamp,
                       clock_now=clock_now)

    def add_compressed_image(self, camera_key: str, format: str, data: object, *,
                             receive_time: float, stamp: float | None = None,
                             clock_now: float | None = None) -> None:
        """Decode a ``sensor_msgs/CompressedImage`` (jpeg / png) and store it."""
        name = self._camera(camera_key)
        try:
            image = decode_compressed(format, data)
        except InputRejected as exc:
            raise self._reject(name, exc.reason, exc.detail) from None
        self.add_image(camera_key, image, receive_time=receive_time, stamp=stamp,
                       clock_now=clock_now)

    def add_environment_state(self, source: str, msgtype: str, message: object, *,
                              receive_time: float, stamp: float | None = None,
                              clock_now: float | None = None) -> None:
        """Decode and store one PoseStamped, PoseArray or Float64MultiArray of ``source``.

        Raises :class:`InputRejected` (and counts it) for an unknown source, a malformed
        message, a wrong number of values, NaN / inf, and bad stamps.
        """
        name = environment_input(source)
        if name not in self._inputs:
            raise self._reject(name, "unknown_source",
                               f"'{source}' (the policy reads {list(self._environment_sizes)})")
        try:
            values = environment_state_values(msgtype, message, self._environment_layouts[source])
        except EnvironmentStateError as exc:
            raise self._reject(name, "malformed", str(exc)) from None
        if values.shape != (self._environment_sizes[source],):
            raise self._reject(name, "size_mismatch",
                               f"{values.size} values, the policy reads "
                               f"{self._environment_sizes[source]}")
        if not np.all(np.isfinite(values)):
            raise self._reject(name, "non_finite", f"{values.tolist()}")
        self._store(name, values, receive_time, stamp, clock_now)

    def set_task(self, task: str) -> None:
        """Replace the task instruction given with every observation."""
        with self._lock:
            self._task = str(task)

    def clear(self) -> None:
        """Forget every stored input (counters are kept)."""
        with self._lock:
            for name in self._inputs:
                self._inputs[name] = _Latest()

    # ----------------------------------------------------------------------------- outputs

    def snapshot_with_reason(self, now: float) -> tuple[Observation | None, str]:
        """The latest observation, or ``(None, reason)`` if an input is missing or stale."""
        with self._lock:
            ages = {}
            for name, latest in self._inputs.items():
                if latest.receive_time is None:
                    return None, f"no {name} received yet"
                ages[name] = now - latest.receive_time
                if ages[name] > self.max_input_age_s:
                    return None, (f"{name} is stale: {ages[name]:.3f} s old "
                                  f"(max_input_age_s={self.max_input_age_s})")
            joints = self._inputs[JOINT_STATE]
            positions = joints.value
            observation = Observation(
                images={k: self._inputs[camera_input(k)].value for k in self.camera_keys},
                state=positions[self._state_index].copy(),
                measured_position=positions[self._command_index].copy(),
                task=self._task,
                time=joints.receive_time,
                stamps={name: latest.stamp for name, latest in self._inputs.items()},
                ages=ages,
                environment_state=np.concatenate(
                    [np.zeros(0)] + [self._inputs[environment_input(source)].value
                                     for source in self._environment_sizes]),
            )
        return observation, ""

    def measured_position(self) -> np.ndarray | None:
        """Latest ``(A,)`` positions of the commanded joints, or None before the first."""
        with self._lock:
            positions = self._inputs[JOINT_STATE].value
            return None if positions is None else positions[self._command_index].copy()

    def input_ages(self, now: float) -> dict[str, float | None]:
        """Seconds since each input was last accepted (None: never)."""
        with self._lock:
            return {name: (None if latest.receive_time is None else now - latest.receive_time)
                    for name, latest in self._inputs.items()}

    def input_rates(self, now: float) -> dict[str, float]:
        """Accepted messages per second of each input over the last ``rate_window_s``."""
        rates = {}
        with self._lock:
            for name, latest in self._inputs.items():
                recent = [t for t in latest.receive_times if now - t <= self.rate_window_s]
                span = recent[-1] - recent[0] if len(recent) >= 2 else 0.0
                rates[name] = (len(recent) - 1) / span if span > 0 else 0.0
        return rates

    def accepted_counts(self) -> dict[str, int]:
        """Accepted messages per input since construction."""
        with self._lock:
            return {name: self._accepted[name] for name in self._inputs}

    def rejection_counts(self) -> dict[str, dict[str, int]]:
        """Rejected messages per input and reason since construction."""
        with self._lock:
            return {name: dict(counts) for name, counts in self._rejected.items()}
