# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""config_fields.changed_settings: which recorded settings differ from the current ones."""

from snapflow_ros.config_fields import changed_settings


def test_a_setting_the_record_predates_counts_at_its_default():
    current = {"episodes": 3, "blend_steps": 5, "profile": "quick"}
    older = {"episodes": 3, "profile": "quick"}
    assert changed_settings(older, current, {"episodes": 10, "blend_steps": 5}) == []
    assert changed_settings(older, {**current, "blend_steps": 7},
                            {"episodes": 10, "blend_steps": 5}) == ["blend_steps"]
    # Without a default, a missing setting differs; so does one only the record has.
    assert changed_settings(older, current) == ["blend_steps"]
    assert changed_settings({**current, "gone": 1}, current) == ["gone"]


def test_every_differing_setting_is_named_in_order():
    assert changed_settings({"b": 1, "a": 1, "c": 1}, {"b": 2, "a": 2, "c": 1}) == ["a", "b"]
