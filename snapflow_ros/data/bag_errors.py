# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The errors of reading rosbag2 recordings: each names the file and, where known, the topic.

:mod:`snapflow_ros.data.bag_reader` raises them (and re-exports them); they live apart so that
the decoders beside the reader can raise them without importing it.
"""

from __future__ import annotations

from pathlib import Path


class BagError(ValueError):
    """A recording cannot be used; the message names the file and, where known, the topic."""

    def __init__(self, problem: str, *, path: str | Path | None = None,
                 topic: str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.topic = topic
        self.problem = problem
        where = str(path) if path is not None else "<unknown bag>"
        if topic:
            where += f": topic '{topic}'"
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):
        # Keeps path and topic when the error crosses a process boundary (worker processes).
        return _rebuild_bag_error, (type(self), self.problem, self.path, self.topic)


def _rebuild_bag_error(cls: type, problem: str, path: Path | None,
                       topic: str | None) -> BagError:
    return cls(problem, path=path, topic=topic)


class NotABagError(BagError):
    """The path is not a rosbag2 directory, an .mcap / .db3 file, or a folder holding them."""


class CorruptBagError(BagError):
    """The bag file is truncated or damaged (or a message in it cannot be decoded)."""


class MissingTopicError(BagError):
    """A configured topic is not in the bag."""


class MessageTypeError(BagError):
    """A topic carries another message type than its configured role needs."""


class ImageEncodingError(BagError):
    """An image topic uses an encoding this reader does not decode."""


class MissingJointError(BagError):
    """Joints named in the config are absent from the messages."""


class MalformedMessageError(BagError):
    """A message is well-formed CDR but its content is inconsistent (e.g. sizes disagree)."""


class ClockMismatchError(BagError):
    """Header stamps and bag receive times come from different clocks but are combined."""
