# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Map a component's config dataclass onto ROS 2 parameters, in one place.

Field metadata declared with :func:`snapflow_ros.config_fields.param` becomes the parameter's
descriptor: description, integer / floating point range, read-only unless ``runtime=True``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from snapflow_ros.config_fields import config_from_dict

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


def ros_fields(config_cls: type) -> list[dataclasses.Field]:
    """The fields of ``config_cls`` that are exposed as ROS parameters."""
    hints = typing.get_type_hints(config_cls)
    return [
        f for f in dataclasses.fields(config_cls)
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
    hints = typing.get_type_hints(config_cls)
    for field in ros_fields(config_cls):
        ptype = parameter_type(hints[field.name])
        if defaults is not None:
            value = getattr(defaults, field.name)
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


def config_from_parameters(node: Node, config_cls: type, base: Any = None) -> Any:
    """Build ``config_cls`` from the node's parameters, over ``base``'s non-ROS fields."""
    data = {}
    if base is not None:
        data = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    data.update(parameter_values(node, config_cls))
    return config_from_dict(config_cls, data)
