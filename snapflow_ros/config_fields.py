# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Declarative config fields shared by every component's config dataclass.

Each component has one frozen dataclass whose fields are declared with :func:`param`. The
metadata (description, range, choices, whether it may change at runtime) is the single source
from which validation, YAML loading and the ROS parameter declarations are derived.

A config composed of component configs declares each with :func:`component`. Its leaf fields
keep flat names (``n_act``, not ``controller.scheduler.n_act``): :func:`flat_fields` lists them,
and :func:`config_from_dict`, :func:`replace_config`, :func:`render_ros_params_yaml` (and
:func:`snapflow_ros.config_loading.load_config_yaml`) accept and write the flat names, so a ROS
parameter file stays a flat list of parameters.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


def param(
    default: Any = dataclasses.MISSING,
    description: str = "",
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple | None = None,
    runtime: bool = False,
    ros: bool = True,
) -> Any:
    """Declare a config field with its documentation and bounds.

    ``low``/``high`` are inclusive bounds for numbers (and for every element of a list of
    numbers); ``choices`` restricts strings; ``runtime`` marks a field that may change while a
    node is active (``ros2 param set``); ``ros=False`` keeps a field out of ROS parameters.
    """
    meta = {
        "description": description,
        "low": low,
        "high": high,
        "choices": choices,
        "runtime": runtime,
        "ros": ros,
    }
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def component(cls: type, description: str = "") -> Any:
    """Declare a field holding component config ``cls`` (default: ``cls()``), flat-named."""
    meta = {"description": description, "component": True, "runtime": False, "ros": True}
    return dataclasses.field(default_factory=cls, metadata=meta)


def _is_component(field: dataclasses.Field) -> bool:
    return bool(field.metadata.get("component"))


def _has_components(cls: type) -> bool:
    return any(_is_component(f) for f in dataclasses.fields(cls))


@functools.cache
def _flat_paths(cls: type) -> dict[str, tuple[tuple[str, ...], dataclasses.Field]]:
    hints = typing.get_type_hints(cls)
    paths: dict[str, tuple[tuple[str, ...], dataclasses.Field]] = {}
    for field in dataclasses.fields(cls):
        if _is_component(field):
            leaves = {name: ((field.name, *path), leaf)
                      for name, (path, leaf) in _flat_paths(hints[field.name]).items()}
        else:
            leaves = {field.name: ((field.name,), field)}
        clash = sorted(set(leaves) & set(paths))
        if clash:
            raise TypeError(f"{cls.__name__}: field name(s) {clash} used by two components")
        paths.update(leaves)
    return paths


def flat_fields(cls: type) -> dict[str, dataclasses.Field]:
    """The leaf fields of config ``cls`` by flat name, components' fields included, in order."""
    return {name: field for name, (_, field) in _flat_paths(cls).items()}


def flat_values(config: Any) -> dict[str, Any]:
    """``{flat name: value}`` of every leaf field of ``config``."""
    values = {}
    for name, (path, _) in _flat_paths(type(config)).items():
        value = config
        for part in path:
            value = getattr(value, part)
        values[name] = value
    return values


def _route(cls: type, data: dict, where: str) -> dict:
    """Group flat keys of ``data`` under the component that owns them (one level)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    paths = _flat_paths(cls)
    routed: dict[str, Any] = {}
    for key, value in data.items():
        if key in fields and _is_component(fields[key]) and isinstance(value, dict):
            routed.setdefault(key, {}).update(value)  # the nested form of config_to_dict
        elif key in paths:
            path = paths[key][0]
            if len(path) == 1:
                routed[key] = value
            else:
                routed.setdefault(path[0], {})[key] = value
        else:
            raise ConfigError(
                f"unknown {cls.__name__} option(s) {where + key}; valid options: "
                f"{', '.join(sorted(paths))}")
    return routed


def _check_value(name: str, value: Any, meta: dict) -> None:
    low, high, choices = meta.get("low"), meta.get("high"), meta.get("choices")
    values = value if isinstance(value, (list, tuple)) else [value]
    for item in values:
        if isinstance(item, bool):
            continue
        if isinstance(item, (int, float)):
            if isinstance(item, float) and not math.isfinite(item):
                raise ConfigError(f"{name}={value!r}: must be a finite number")
            if low is not None and item < low:
                raise ConfigError(f"{name}={value!r}: must be >= {low}")
            if high is not None and item > high:
                raise ConfigError(f"{name}={value!r}: must be <= {high}")
        if choices is not None and item not in choices:
            raise ConfigError(f"{name}={value!r}: must be one of {', '.join(map(str, choices))}")


def check_config(config: Any) -> None:
    """Check every field of a config dataclass against its declared bounds and choices."""
    for field in dataclasses.fields(config):
        _check_value(field.name, getattr(config, field.name), field.metadata)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Convert YAML / ROS values to the annotated type, or raise ConfigError."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _coerce(name, value, non_none[0])
        return value
    if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        return config_from_dict(annotation, value, where=f"{name}.")
    if origin in (tuple, list):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}={value!r}: expected a list")
        item_type = args[0] if args else Any
        items = [_coerce(f"{name}[{i}]", v, item_type) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}={value!r}: expected a mapping")
        return dict(value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}={value!r}: expected true or false")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{name}={value!r}: expected an integer")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}={value!r}: expected a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}={value!r}: expected a string")
        return value
    return value


def config_from_dict(cls: type, data: dict | None, *, where: str = "") -> Any:
    """Build config ``cls`` from a plain mapping, rejecting unknown keys by name."""
    data = dict(data or {})
    if _has_components(cls):
        data = _route(cls, data, where)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown {cls.__name__} option(s) {', '.join(where + u for u in unknown)}; "
            f"valid options: {', '.join(sorted(names))}"
        )
    hints = _field_types(cls)
    kwargs = {k: _coerce(where + k, v, hints[k]) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{cls.__name__}: {exc}") from exc


def config_to_dict(config: Any) -> dict:
    """Plain, YAML/JSON-serialisable mapping of a config dataclass (tuples become lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(config)


def changed_settings(recorded: dict, current: dict, defaults: dict | None = None) -> list[str]:
    """Names of the settings whose recorded value differs from the current one, sorted.

    A setting the record lacks (it predates the setting) counts at its value in ``defaults``,
    so that a run continued with the new setting at its default is still the same run.
    """
    recorded = {**(defaults or {}), **recorded}
    return sorted(key for key in set(recorded) | set(current)
                  if recorded.get(key) != current.get(key))


def replace_config(config: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` with the same coercion and validation as loading.

    For a composed config, ``changes`` use flat names; each changed component is rebuilt (and
    validated), then the config itself.
    """
    if _has_components(type(config)):
        changes = _route(type(config), changes, "")
        components = {f.name for f in dataclasses.fields(config) if _is_component(f)}
        for name in components & set(changes):
            changes[name] = replace_config(getattr(config, name), **changes[name])
        direct = {k: v for k, v in changes.items() if k not in components}
        hints = _field_types(type(config))
        direct = {k: _coerce(k, v, hints[k]) for k, v in direct.items()}
        return dataclasses.replace(config, **{**changes, **direct})
    hints = _field_types(type(config))
    names = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ConfigError(f"unknown {type(config).__name__} option(s) {', '.join(unknown)}")
    coerced = {k: _coerce(k, v, hints[k]) for k, v in changes.items()}
    return dataclasses.replace(config, **coerced)


def _declared_defaults(cls: type) -> dict[str, Any]:
    """``{flat name: declared default}`` of every leaf field of config class ``cls``."""
    values = {}
    for name, (_, field) in _flat_paths(cls).items():
        if field.default_factory is not dataclasses.MISSING:
            values[name] = field.default_factory()
        else:
            values[name] = field.default
    return values


def render_ros_params_yaml(node_name: str, config: Any, *, header: str = "") -> str:
    """A ROS 2 parameter file for ``config``, each parameter preceded by its documentation.

    Used to write the files in ``config/`` so that they document every parameter exactly as the
    code declares it (description, range, choices, whether it can change at runtime).
    """
    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()] if header else []
    lines += [f"{node_name}:", "  ros__parameters:"]
    # A class renders its declared defaults (fields derived in __post_init__ stay empty).
    cls = config if isinstance(config, type) else type(config)
    values = (_declared_defaults(cls) if isinstance(config, type) else flat_values(config))
    section = None
    for name, (path, field) in _flat_paths(cls).items():
        meta = field.metadata
        if not meta.get("ros", True):
            continue
        owner = _component_description(cls, path[:-1])
        if owner != section and owner:
            lines.append(f"    # --- {owner}")
        section = owner
        notes = []
        if meta.get("low") is not None or meta.get("high") is not None:
            low = meta["low"] if meta.get("low") is not None else "-inf"
            high = meta["high"] if meta.get("high") is not None else "inf"
            notes.append(f"range [{low}, {high}]")
        if meta.get("choices"):
            notes.append("one of: " + ", ".join(map(str, meta["choices"])))
        notes.append("settable at runtime" if meta.get("runtime") else "read-only once configured")
        lines.append(f"    # {meta.get('description', '')} ({'; '.join(notes)})")
        value = values[name]
        if isinstance(value, tuple):
            value = list(value)
        rendered = yaml.safe_dump({name: value}, default_flow_style=True, width=1000)
        # rcl's parameter-file parser rejects empty lists (no element type) and has no null
        # (a field whose None means "the default applies"): leave them unset.
        prefix = "    # " if value == [] or value is None else "    "
        lines.append(prefix + rendered.strip()[1:-1])
    return "\n".join(lines) + "\n"


def _component_description(cls: type, path: tuple[str, ...]) -> str:
    """Description of the component at ``path`` inside ``cls`` ("" for ``cls`` itself)."""
    description = ""
    for part in path:
        field = next(f for f in dataclasses.fields(cls) if f.name == part)
        description = field.metadata.get("description", "")
        cls = typing.get_type_hints(cls)[part]
    return description
