# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Map a config dataclass onto ROS 2 parameters and back, in one place.

Field metadata declared with :func:`snapflow_ros.config_fields.param` becomes the parameter's
descriptor: description, integer / floating point range, read-only unless ``runtime=True``. A
composed config (component configs declared with :func:`~snapflow_ros.config_fields.component`)
maps onto flat parameter names. :func:`apply_parameter_changes` is every node's
set-parameters check.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from snapflow_ros.config_fields import (
    ConfigError,
    config_from_dict,
    flat_fields,
    flat_values,
    replace_config,
)

_LIST_TYPES = {
    str: Parameter.Type.STRING_ARRAY,
    float: Parameter.Type.DOUBLE_ARRAY,
    int: Parameter.Type.INTEGER_ARRAY,
    bool: Parameter.Type.BOOL_ARRAY,
}
_SCALAR_TYPES = {
    str: Parameter.Type.STRING,
    float: Parameter.Type.DOUBLE,
    int: Parameter.Type.INTEGER,
    bool: Parameter.Type.BOOL,
}


def _base_type(annotation: Any) -> Any:
    """Strip ``Optional[...]`` from an annotation."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def parameter_type(annotation: Any) -> Parameter.Type | None:
    """ROS parameter type of a config field annotation, or None if it has no ROS form."""
    annotation = _base_type(annotation)
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        args = typing.get_args(annotation)
        return _LIST_TYPES.get(args[0] if args else str)
    return _SCALAR_TYPES.get(annotation)


def _leaf_types(config_cls: type) -> dict[str, Any]:
    """Annotation of every flat field of ``config_cls``, components' fields included."""
    hints: dict[str, Any] = {}
    for cls in _component_classes(config_cls):
        hints.update(typing.get_type_hints(cls))
    return hints


def _component_classes(config_cls: type) -> list[type]:
    classes, hints = [config_cls], typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        if field.metadata.get("component"):
            classes += _component_classes(hints[field.name])
    return classes


def ros_fields(config_cls: type) -> list[dataclasses.Field]:
    """The (flat) fields of ``config_cls`` that are exposed as ROS parameters."""
    hints = _leaf_types(config_cls)
    return [
        f for f in flat_fields(config_cls).values()
        if f.metadata.get("ros", True) and parameter_type(hints[f.name]) is not None
    ]


def parameter_descriptor(field: dataclasses.Field, ptype: Parameter.Type, *,
                         enforce_read_only: bool = True) -> ParameterDescriptor:
    """Descriptor (description, range, read-only) of one config field.

    With ``enforce_read_only=False`` fields that are not ``runtime`` stay writable for ROS, and
    the node's own parameter callback decides (e.g. writable until configured).
    """
    meta = field.metadata
    descriptor = ParameterDescriptor(
        name=field.name,
        type=ptype.value,
        description=meta.get("description", ""),
        read_only=enforce_read_only and not meta.get("runtime", False),
    )
    low, high = meta.get("low"), meta.get("high")
    if low is not None or high is not None:
        if ptype == Parameter.Type.INTEGER:
            descriptor.integer_range = [IntegerRange(
                from_value=int(low if low is not None else -(2 ** 31)),
                to_value=int(high if high is not None else 2 ** 31 - 1), step=0)]
        elif ptype == Parameter.Type.DOUBLE:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(low if low is not None else -1e300),
                to_value=float(high if high is not None else 1e300), step=0.0)]
    if meta.get("choices"):
        descriptor.additional_constraints = "one of: " + ", ".join(map(str, meta["choices"]))
    return descriptor


def declare_config_parameters(node: Node, config_cls: type, defaults: Any = None, *,
                              enforce_read_only: bool = True) -> None:
    """Declare one ROS parameter per exposed field of ``config_cls``, defaults from ``defaults``."""
    hints = _leaf_types(config_cls)
    default_values = flat_values(defaults) if defaults is not None else {}
    for field in ros_fields(config_cls):
        ptype = parameter_type(hints[field.name])
        if defaults is not None:
            value = default_values[field.name]
        elif field.default is not dataclasses.MISSING:
            value = field.default
        elif field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            value = field.default_factory()  # type: ignore[misc]
        else:
            value = None
        if isinstance(value, tuple):
            value = list(value)
        descriptor = parameter_descriptor(field, ptype, enforce_read_only=enforce_read_only)
        if value is None or (isinstance(value, list) and not value):
            # An empty list has no inferable type in rclpy: declare by type (value unset).
            node.declare_parameter(field.name, ptype, descriptor)
        else:
            if ptype == Parameter.Type.DOUBLE_ARRAY:
                value = [float(v) for v in value]
            elif ptype == Parameter.Type.DOUBLE:
                value = float(value)
            node.declare_parameter(field.name, value, descriptor)


def parameter_values(node: Node, config_cls: type) -> dict[str, Any]:
    """Current values of the declared parameters of ``config_cls`` (unset ones left out)."""
    values = {}
    for field in ros_fields(config_cls):
        try:
            value = node.get_parameter(field.name).value
        except ParameterUninitializedException:
            continue
        if value is None:
            continue
        is_array = isinstance(value, (list, tuple)) or hasattr(value, "tolist")
        values[field.name] = list(value) if is_array else value
    return values


def config_from_parameters(node: Node, config_cls: type, base: Any = None, *,
                           overrides: dict[str, Any] | None = None) -> Any:
    """Build ``config_cls`` from the node's parameters, over ``base``'s non-ROS fields.

    ``overrides`` (flat name -> value, e.g. parameters about to be set) replace the current
    values; names that are no field of ``config_cls`` are ignored.
    """
    data = flat_values(base) if base is not None else {}
    data.update(parameter_values(node, config_cls))
    names = flat_fields(config_cls)
    data.update({k: _plain(v) for k, v in (overrides or {}).items() if k in names})
    return config_from_dict(config_cls, data)


def _plain(value: Any) -> Any:
    """A parameter value as config loading takes it (arrays become lists)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return list(value) if isinstance(value, tuple) else value


def apply_parameter_changes(config: Any, parameters: list[Parameter], *,
                            configured: bool = True) -> tuple[SetParametersResult, Any]:
    """Check proposed parameter changes against ``config``: ``(result, new config)``.

    Parameters that are no field of ``config`` (``use_sim_time``, another config's) are left to
    their owner. Once ``configured``, fields not marked ``runtime`` are refused as read-only;
    every change is validated as loading validates (types, ranges, cross-field checks such as
    ``n_act`` against the chunk size). On refusal the config is returned unchanged.
    """
    fields = flat_fields(type(config))
    changes = {}
    for parameter in parameters:
        field = fields.get(parameter.name)
        if field is None:
            continue
        if configured and not field.metadata.get("runtime", False):
            return SetParametersResult(
                successful=False,
                reason=f"'{parameter.name}' is read-only once configured; "
                       "clean up the node first"), config
        changes[parameter.name] = _plain(parameter.value)
    if not changes:
        return SetParametersResult(successful=True), config
    try:
        new_config = replace_config(config, **changes)
    except ConfigError as exc:
        return SetParametersResult(successful=False, reason=str(exc)), config
    return SetParametersResult(successful=True), new_config
