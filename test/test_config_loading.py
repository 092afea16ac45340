# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The one YAML reader and ``--set`` syntax: plain sections and ROS parameter files alike."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from snapflow_ros.config_fields import ConfigError, check_config, param
from snapflow_ros.config_loading import (
    apply_overrides,
    load_config_yaml,
    node_parameters,
    parse_value,
    read_yaml_mapping,
    split_override,
    yaml_section,
)


@dataclasses.dataclass(frozen=True)
class _Settings:
    rate_hz: float = param(10.0, "Rate.", low=0.1)
    names: tuple[str, ...] = param(("a",), "Names.")
    extra: dict = param({}, "Nested settings.")

    def __post_init__(self) -> None:
        check_config(self)


def _write(tmp_path, data, name="config.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data)
    return path


def test_values_are_yaml_and_exponents_are_numbers():
    assert parse_value("[4, 8]") == [4, 8]
    assert parse_value("true") is True
    assert parse_value("1e-3") == pytest.approx(0.001)  # YAML 1.1 alone reads a string
    assert parse_value("cuda") == "cuda"
    assert split_override(" policy.hidden_dim = 64") == ("policy.hidden_dim", 64)
    for bad in ("no_equals", "=5"):
        with pytest.raises(ConfigError, match="expected key=value"):
            split_override(bad)
    with pytest.raises(ConfigError, match="cannot parse value"):
        parse_value("[unclosed")


def test_overrides_nest_dotted_keys_and_leave_the_input_alone():
    base = {"demos": 40, "policy": {"chunk_size": 50, "hidden_dim": 128}}
    merged = apply_overrides(base, ["demos=3", "policy.hidden_dim=64", "policy.x.y=1"])
    assert merged == {"demos": 3, "policy": {"chunk_size": 50, "hidden_dim": 64, "x": {"y": 1}}}
    assert base["policy"]["hidden_dim"] == 128


def test_one_file_serves_the_command_line_and_the_node(tmp_path):
    ros = _write(tmp_path, {"trainer": {"ros__parameters": {"rate_hz": 5.0}},
                            "other": {"ros__parameters": {"rate_hz": 1.0}}})
    data = read_yaml_mapping(ros)
    assert node_parameters(data, "trainer", path=ros) == {"rate_hz": 5.0}
    assert yaml_section(data, "other", path=ros) == {"rate_hz": 1.0}
    with pytest.raises(ConfigError, match=r"node\(s\) \['trainer', 'other'\], not 'player'"):
        node_parameters(data, "player", path=ros)
    wildcard = {"/**": {"ros__parameters": {"rate_hz": 2.0}}}
    assert node_parameters(wildcard, "player") == {"rate_hz": 2.0}
    plain = {"data": {"rate_hz": 3.0}}
    assert node_parameters(plain, "trainer") == plain  # not a parameter file: as it is


def test_load_config_yaml_reads_a_section_then_applies_overrides(tmp_path):
    path = _write(tmp_path, {"node": {"ros__parameters": {"rate_hz": 5.0, "other_key": 1}}})
    config = load_config_yaml(_Settings, path, section="node", overrides=["names=[x, y]"])
    assert config == _Settings(rate_hz=5.0, names=("x", "y"))
    with pytest.raises(ConfigError, match="unknown"):
        load_config_yaml(_Settings, path, section="node", overrides=["nope=1"])
    with pytest.raises(ConfigError, match=f"{path}.*rate_hz"):
        load_config_yaml(_Settings, path, section="node", overrides=["rate_hz=0"])
    with pytest.raises(ConfigError, match="no section 'missing'"):
        load_config_yaml(_Settings, path, section="missing")


@pytest.mark.parametrize(("content", "message"), [
    (None, "config file not found"),
    ("a: [1, 2", "not valid YAML"),
    ("- 1\n- 2\n", "expected a mapping at the top level"),
])
def test_unreadable_files_are_named(tmp_path, content, message):
    path = tmp_path / "config.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        read_yaml_mapping(path)
    assert str(path) in str(info.value)
