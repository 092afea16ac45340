# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Environment state: low-dimensional scene state (object poses ...) beside the joint state.

LeRobot calls it ``observation.environment_state``: what a perception or motion-capture system
publishes about the objects, as ``geometry_msgs/PoseStamped``, ``geometry_msgs/PoseArray`` or
``std_msgs/Float64MultiArray``. This module turns one such message into a flat float vector and
names every entry, the same way for messages read from a bag (``rosbags``) and for messages a
node receives (``rclpy``): it only reads the fields both share, and imports neither library.

Names are ``<source>/<field>``: the source is the topic's key (its last segment, like a camera
key), the field ``x y z qx qy qz qw`` of a pose (``<i>/x`` ... for pose ``i`` of a PoseArray)
or the entry index of a Float64MultiArray. With layout ``position`` a pose gives ``x y z`` only.
A quaternion is stored with ``qw >= 0`` (q and -q are the same rotation; one sign keeps the
values continuous for the network).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
POSE_ARRAY = "geometry_msgs/msg/PoseArray"
FLOAT64_MULTI_ARRAY = "std_msgs/msg/Float64MultiArray"

ENVIRONMENT_STATE_TYPES = {
    "pose_stamped": POSE_STAMPED,
    "pose_array": POSE_ARRAY,
    "float64_multi_array": FLOAT64_MULTI_ARRAY,
}
"""Message types an environment-state topic may carry, by their short name."""

ENVIRONMENT_STATE_LAYOUTS = ("pose", "position")
"""Entries per pose: position and orientation (7), or position only (3)."""

_POSE_FIELDS = {"pose": ("x", "y", "z", "qx", "qy", "qz", "qw"), "position": ("x", "y", "z")}


class EnvironmentStateError(ValueError):
    """A message cannot be turned into the expected environment-state vector."""


def source_key(topic: str) -> str:
    """The source name of a topic: its last segment (``/mocap/cube`` -> ``cube``)."""
    segments = [s for s in topic.strip("/").split("/") if s]
    return segments[-1] if segments else topic


def short_type(msgtype: str) -> str:
    """``geometry_msgs/msg/PoseArray`` -> ``pose_array``; raises for other message types."""
    for short, full in ENVIRONMENT_STATE_TYPES.items():
        if msgtype in (short, full, full.replace("/msg/", "/")):
            return short
    raise EnvironmentStateError(
        f"message type {msgtype!r} is not an environment-state message (expected one of "
        f"{', '.join(ENVIRONMENT_STATE_TYPES.values())})")


def _pose_values(pose: object, layout: str) -> list[float]:
    p = pose.position
    values = [float(p.x), float(p.y), float(p.z)]
    if layout == "pose":
        q = pose.orientation
        quat = [float(q.x), float(q.y), float(q.z), float(q.w)]
        if quat[3] < 0:
            quat = [-v for v in quat]
        values += quat
    return values


def environment_state_values(msgtype: str, message: object, layout: str = "pose") -> np.ndarray:
    """The flat ``(n,)`` float64 vector of one message (m, unit quaternion, or as sent)."""
    if layout not in ENVIRONMENT_STATE_LAYOUTS:
        raise EnvironmentStateError(f"layout {layout!r}: must be one of "
                                    f"{ENVIRONMENT_STATE_LAYOUTS}")
    kind = short_type(msgtype)
    try:
        if kind == "pose_stamped":
            values = _pose_values(message.pose, layout)
        elif kind == "pose_array":
            values = [v for pose in message.poses for v in _pose_values(pose, layout)]
        else:
            values = [float(v) for v in message.data]
    except (AttributeError, TypeError, ValueError) as exc:
        raise EnvironmentStateError(f"malformed {ENVIRONMENT_STATE_TYPES[kind]}: {exc}") from exc
    return np.asarray(values, dtype=np.float64)


def environment_state_names(source: str, msgtype: str, size: int,
                            layout: str = "pose") -> tuple[str, ...]:
    """Names of the ``size`` entries one message of ``source`` gives (see the module doc)."""
    kind = short_type(msgtype)
    if kind == "float64_multi_array":
        return tuple(f"{source}/{i}" for i in range(size))
    fields = _POSE_FIELDS[layout]
    if size % len(fields):
        raise EnvironmentStateError(
            f"{source}: {size} values are not whole poses of {len(fields)} ({layout})")
    if kind == "pose_stamped":
        if size != len(fields):
            raise EnvironmentStateError(f"{source}: a PoseStamped gives {len(fields)} values")
        return tuple(f"{source}/{f}" for f in fields)
    return tuple(f"{source}/{i}/{f}" for i in range(size // len(fields)) for f in fields)


def sizes_by_source(names: Sequence[str]) -> dict[str, int]:
    """Entries per source in model order for names ``<source>/<field>`` (contiguous per source)."""
    sizes: dict[str, int] = {}
    last = None
    for name in names:
        source = name.split("/", 1)[0]
        if source != last and source in sizes:
            raise EnvironmentStateError(
                f"environment-state names of source {source!r} are not contiguous: "
                f"{list(names)}")
        sizes[source] = sizes.get(source, 0) + 1
        last = source
    return sizes


def check_values(source: str, values: np.ndarray, expected_size: int) -> None:
    """Raise :class:`EnvironmentStateError` for a wrong size or a NaN / inf entry."""
    if values.shape != (expected_size,):
        raise EnvironmentStateError(
            f"{source}: {values.size} values, the policy expects {expected_size}")
    if not all(math.isfinite(v) for v in values):
        raise EnvironmentStateError(f"{source}: non-finite values {values.tolist()}")


def environment_state_rows(source: str, msgtype: str, messages: Sequence[object],
                           layout: str = "pose") -> tuple[tuple[str, ...], np.ndarray]:
    """Names and ``(N, n)`` float64 values of all messages of one topic (a recording).

    Every message must give the same number of values; raises :class:`EnvironmentStateError`
    naming the first message that does not. NaN / inf values are returned as they are (the bag
    reader leaves such messages out and counts them). No message: no names, shape ``(0, 0)``.
    """
    rows = [environment_state_values(msgtype, message, layout) for message in messages]
    if not rows:
        return (), np.zeros((0, 0), dtype=np.float64)
    size = rows[0].size
    if size == 0:
        raise EnvironmentStateError("the first message carries no values (no pose / no data)")
    for index, row in enumerate(rows):
        if row.size != size:
            raise EnvironmentStateError(
                f"message {index} gives {row.size} values where the first gave {size} (the "
                "number of objects must stay the same through a recording)")
    return environment_state_names(source, msgtype, size, layout), np.stack(rows)
