# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Camera message payloads -> RGB arrays, rejecting every malformed case with a reason.

The functions take the fields of ``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` as
plain values, so they run (and are tested) without ROS.
"""

from __future__ import annotations

import cv2
import numpy as np

# Channels per pixel, and the OpenCV conversion to RGB (None: already RGB).
_RAW_ENCODINGS = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "mono8": (1, cv2.COLOR_GRAY2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
}
RAW_ENCODINGS = tuple(_RAW_ENCODINGS)


class InputRejected(ValueError):
    """An input message was refused; ``reason`` is a short stable code, ``detail`` the why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _as_bytes_view(data: object) -> np.ndarray:
    try:
        view = memoryview(data).cast("B")  # bytes, bytearray, array.array('B'), numpy arrays
    except TypeError as exc:
        raise InputRejected("bad_data", f"image data of type {type(data).__name__}") from exc
    return np.frombuffer(view, dtype=np.uint8)


def decode_image(encoding: str, height: int, width: int, step: int, data: object) -> np.ndarray:
    """Raw ``sensor_msgs/Image`` fields -> ``(height, width, 3)`` uint8 RGB (a new array).

    Accepts rgb8, bgr8, mono8, rgba8 and bgra8; row padding (``step > width * channels``) is
    dropped. Raises :class:`InputRejected` for any other encoding or inconsistent size.
    """
    key = str(encoding).lower()
    if key not in _RAW_ENCODINGS:
        raise InputRejected(
            "unsupported_encoding", f"'{encoding}' (supported: {', '.join(RAW_ENCODINGS)})"
        )
    channels, conversion = _RAW_ENCODINGS[key]
    if height <= 0 or width <= 0:
        raise InputRejected("zero_size", f"{height}x{width} image")
    if step < width * channels:
        raise InputRejected(
            "bad_step", f"step {step} < width {width} x {channels} channels ({encoding})"
        )
    flat = _as_bytes_view(data)
    if flat.size < step * height:
        raise InputRejected(
            "truncated_data", f"{flat.size} bytes for {height} rows of {step} bytes"
        )
    if flat.size > step * height:
        raise InputRejected(
            "data_size_mismatch", f"{flat.size} bytes for {height} rows of {step} bytes"
        )
    rows = flat.reshape(height, step)[:, : width * channels]
    pixels = rows.reshape(height, width, channels)
    if conversion is None:
        return np.array(pixels, dtype=np.uint8, order="C", copy=True)
    return cv2.cvtColor(np.ascontiguousarray(pixels), conversion)


def decode_compressed(format: str, data: object) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (jpeg or png) -> ``(H, W, 3)`` uint8 RGB.

    ``format`` may be a bare ``jpeg`` / ``png`` or image_transport's ``"rgb8; jpeg compressed
    bgr8"``. Raises :class:`InputRejected` for other formats or data that does not decode.
    """
    fmt = format.lower()
    if "compresseddepth" in fmt.replace(" ", "") or not any(
        name in fmt for name in ("jpeg", "jpg", "png")
    ):
        raise InputRejected("unsupported_format", f"'{format}' (supported: jpeg, png)")
    flat = _as_bytes_view(data)
    if flat.size == 0:
        raise InputRejected("zero_size", "empty compressed image")
    bgr = cv2.imdecode(flat, cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise InputRejected("decode_failed", f"{flat.size} bytes of '{format}' did not decode")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def resize_for_model(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``(H, W, 3)`` uint8 to ``(height, width, 3)``; the same array if already that size.

    Area averaging when both sides shrink, bilinear otherwise; the aspect ratio is not kept. This
    is the rule :func:`snapflow_ros.data.bag_reader.resize_image` applies to the training data, so
    the model sees the same pixels on the robot as in training.
    """
    if image.shape[0] == height and image.shape[1] == width:
        return image
    shrinking = height <= image.shape[0] and width <= image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)
