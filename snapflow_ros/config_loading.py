# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The one YAML reader and ``--set key=value`` syntax of the command line and the nodes.

A config file is either plain sections (``data:``, ``train:``, ``snapflow_demo:``) or a ROS 2
parameter file (``<node>: {ros__parameters: {...}}``), so the same file configures a command
and a node. Every ``--set`` value, and every ``policy_overrides`` item of the trainer node, is
parsed here: YAML (``[4, 8]``, ``true``, ``null``), with ``1e-3`` read as the number YAML 1.1
leaves as a string; a dotted key (``policy.hidden_dim``) sets a nested mapping.

Used by ``snapflow train`` and the ``snapflow_trainer`` node (through
:mod:`snapflow_ros.training.train_job`), ``snapflow demo``, ``snapflow eval`` and the tests of
the config classes. Errors are :class:`~snapflow_ros.config_fields.ConfigError` naming the file
or the item. Imports neither torch nor rclpy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from snapflow_ros.config_fields import ConfigError, config_from_dict, flat_fields

ROS_PARAMETERS = "ros__parameters"


def read_yaml_mapping(path: str | Path) -> dict:
    """The top-level mapping of the YAML file at ``path`` (empty file: ``{}``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _unwrap(value: Any, where: str) -> dict:
    if isinstance(value, dict) and ROS_PARAMETERS in value:
        value = value[ROS_PARAMETERS] or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    return value


def yaml_section(data: dict, section: str, *, path: str | Path = "") -> dict:
    """``data[section]``, its ``ros__parameters`` if it is a node's parameters."""
    if section not in data:
        raise ConfigError(f"{path}: no section '{section}' (found: "
                          f"{', '.join(map(str, data)) or 'none'})")
    return _unwrap(data[section] or {}, f"{path}: section '{section}'")


def node_parameters(data: dict, node_name: str, *, path: str | Path = "") -> dict:
    """The parameters of ``node_name`` in a ROS parameter file, or ``data`` if it is not one.

    The node's entry may be spelled ``name``, ``/name`` or ``/**`` (as rcl accepts); a file whose
    parameters are all for other nodes is refused.
    """
    for key in (node_name, f"/{node_name}", "/**"):
        if isinstance(data.get(key), dict) and ROS_PARAMETERS in data[key]:
            return _unwrap(data[key], f"{path}: {key}")
    nodes = [k for k, v in data.items() if isinstance(v, dict) and ROS_PARAMETERS in v]
    if nodes:
        raise ConfigError(f"{path}: parameters are for node(s) {nodes}, not '{node_name}'")
    return _unwrap(data, str(path))


def parse_value(text: str) -> Any:
    """A ``--set`` value: YAML (``[4, 8]``, ``true``), and ``1e-3`` a number (YAML 1.1: str)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse value {text!r}: {exc}") from exc
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def split_override(item: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, parsed value)``; raises :class:`ConfigError` without ``=``."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected key=value")
    return key, parse_value(value.strip())


def set_nested(mapping: dict, dotted_key: str, value: Any) -> None:
    """``mapping["a"]["b"] = value`` for ``dotted_key`` ``"a.b"``, creating inner mappings."""
    *parents, last = dotted_key.split(".")
    target = mapping
    for name in parents:
        inner = target.get(name)
        if not isinstance(inner, dict):
            inner = {}
            target[name] = inner
        target = inner
    target[last] = value


def apply_overrides(mapping: dict, overrides: Iterable[str]) -> dict:
    """A copy of ``mapping`` with each ``key=value`` of ``overrides`` set (dotted keys nested)."""
    merged = _deep_copy(mapping)
    for item in overrides:
        key, value = split_override(item)
        set_nested(merged, key, value)
    return merged


def _deep_copy(mapping: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in mapping.items()}


def load_config_yaml(cls: type, path: str | Path, section: str | None = None,
                     overrides: Iterable[str] = ()) -> Any:
    """Load the config dataclass ``cls`` from a YAML file, then apply ``key=value`` overrides.

    ``section`` picks a top-level key; a ROS parameter file is read as it is. A composed config
    takes the flat names (``n_act``), as its ROS parameters do. Keys of the file that ``cls``
    does not have are skipped (a node's file holds other classes' parameters too); an override
    of an unknown key is an error.
    """
    data = read_yaml_mapping(path)
    values = yaml_section(data, section, path=path) if section is not None else \
        _unwrap(data, str(path))
    names = {f.name for f in dataclasses.fields(cls)} | set(flat_fields(cls))
    values = apply_overrides({k: v for k, v in values.items() if k in names}, overrides)
    try:
        return config_from_dict(cls, values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
