# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of camera payload decoding: every encoding to RGB, every malformed case refused."""

import array

import cv2
import numpy as np
import pytest

from snapflow_ros.runtime.image_decoding import (
    InputRejected,
    decode_compressed,
    decode_image,
    resize_for_model,
)


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def encode(rgb, encoding):
    converted = {
        "rgb8": rgb,
        "bgr8": rgb[..., ::-1],
        "rgba8": np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 9, np.uint8)], axis=2),
        "bgra8": np.concatenate([rgb[..., ::-1], np.full(rgb.shape[:2] + (1,), 9, np.uint8)],
                                axis=2),
    }[encoding]
    return np.ascontiguousarray(converted)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "BGR8"])
def test_colour_encodings_decode_to_the_same_rgb(rgb, encoding):
    pixels = encode(rgb, encoding.lower())
    height, width, channels = pixels.shape
    out = decode_image(encoding, height, width, width * channels, pixels.tobytes())
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, rgb)


def test_mono8_is_replicated_to_three_channels():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = decode_image("mono8", 3, 4, 4, gray.tobytes())
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))


def test_row_padding_is_dropped_and_any_buffer_type_is_accepted(rgb):
    padded = np.zeros((5, 7 * 3 + 3), np.uint8)
    padded[:, :21] = rgb.reshape(5, 21)
    for data in (padded.tobytes(), bytearray(padded.tobytes()),
                 array.array("B", padded.tobytes()), memoryview(padded.tobytes())):
        np.testing.assert_array_equal(decode_image("rgb8", 5, 7, 24, data), rgb)


def test_decoded_image_does_not_alias_a_mutable_message_buffer(rgb):
    data = bytearray(rgb.tobytes())
    out = decode_image("rgb8", 5, 7, 21, data)
    data[:] = bytes(len(data))
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("encoding, height, width, step, size, reason", [
    ("rgb8", 0, 7, 21, 0, "zero_size"),
    ("rgb8", 5, 0, 0, 0, "zero_size"),
    ("rgb8", 5, 7, 20, 100, "bad_step"),
    ("rgba8", 5, 7, 21, 105, "bad_step"),
    ("rgb8", 5, 7, 21, 104, "truncated_data"),
    ("rgb8", 5, 7, 21, 0, "truncated_data"),
    ("rgb8", 5, 7, 21, 106, "data_size_mismatch"),
    ("16UC1", 5, 7, 14, 70, "unsupported_encoding"),
    ("yuv422", 5, 7, 14, 70, "unsupported_encoding"),
])
def test_malformed_raw_images_are_rejected_with_a_reason(encoding, height, width, step, size,
                                                         reason):
    with pytest.raises(InputRejected) as info:
        decode_image(encoding, height, width, step, bytes(size))
    assert info.value.reason == reason
    assert reason in str(info.value)


@pytest.mark.parametrize("fmt, ext", [("jpeg", ".jpg"), ("png", ".png"),
                                      ("rgb8; jpeg compressed bgr8", ".jpg"),
                                      ("PNG", ".png")])
def test_compressed_images_decode_to_rgb(fmt, ext):
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:, :12] = (255, 0, 0)  # red left half: catches a BGR/RGB swap
    ok, encoded = cv2.imencode(ext, rgb[..., ::-1])
    assert ok
    out = decode_compressed(fmt, encoded.tobytes())
    assert out.shape == (16, 24, 3)
    assert out[8, 4, 0] > 200 and out[8, 4, 2] < 50
    if ext == ".png":
        np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("fmt, data, reason", [
    ("jpeg", b"", "zero_size"),
    ("jpeg", b"\xff\xd8not a jpeg at all", "decode_failed"),
    ("png", bytes(64), "decode_failed"),
    ("16UC1; compressedDepth png", b"\x89PNG", "unsupported_format"),
    ("theora", b"abc", "unsupported_format"),
])
def test_bad_compressed_images_are_rejected(fmt, data, reason):
    with pytest.raises(InputRejected) as info:
        decode_compressed(fmt, data)
    assert info.value.reason == reason


def test_jpeg_cut_inside_its_header_is_rejected():
    rgb = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    encoded = cv2.imencode(".jpg", rgb)[1].tobytes()
    with pytest.raises(InputRejected):
        decode_compressed("jpeg", encoded[:20])


def test_resize_for_model_changes_size_only_when_needed(rgb):
    assert resize_for_model(rgb, 5, 7) is rgb
    assert resize_for_model(rgb, 3, 4).shape == (3, 4, 3)
    up = resize_for_model(np.full((4, 4, 3), 77, np.uint8), 9, 11)
    assert up.shape == (9, 11, 3) and np.all(up == 77)
