# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A small client of other nodes' lifecycle and parameter services.

It calls exactly the services that ``ros2 lifecycle get/set`` and ``ros2 param get/set`` call
(``lifecycle_msgs/srv/GetState``, ``ChangeState``, ``rcl_interfaces/srv/GetParameters``,
``SetParameters``), so it works on machines without the ``ros2`` CLI;
:meth:`GraphClient.call_service` calls any other service (:meth:`GraphClient.trigger` a
``std_srvs/srv/Trigger``). The harnesses and the tests use it too, with its node for
subscriptions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import rclpy
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_srvs.srv import Trigger

TRANSITIONS = {
    "configure": Transition.TRANSITION_CONFIGURE,
    "cleanup": Transition.TRANSITION_CLEANUP,
    "activate": Transition.TRANSITION_ACTIVATE,
    "deactivate": Transition.TRANSITION_DEACTIVATE,
    # ``shutdown`` picks the transition that leaves the current primary state.
    "shutdown": None,
}
_SHUTDOWN_FROM = {
    State.PRIMARY_STATE_UNCONFIGURED: Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
    State.PRIMARY_STATE_INACTIVE: Transition.TRANSITION_INACTIVE_SHUTDOWN,
    State.PRIMARY_STATE_ACTIVE: Transition.TRANSITION_ACTIVE_SHUTDOWN,
}


class GraphClientError(RuntimeError):
    """A service did not answer in time or the target node is not there."""


def _service(node: str, name: str) -> str:
    """The absolute name of ``node``'s service ``name``."""
    return f"/{node.lstrip('/')}/{name}"


def _to_python(value_msg: Any) -> Any:
    """Plain Python value of an ``rcl_interfaces/ParameterValue``."""
    kind = value_msg.type
    fields = {
        ParameterType.PARAMETER_BOOL: "bool_value",
        ParameterType.PARAMETER_INTEGER: "integer_value",
        ParameterType.PARAMETER_DOUBLE: "double_value",
        ParameterType.PARAMETER_STRING: "string_value",
        ParameterType.PARAMETER_BYTE_ARRAY: "byte_array_value",
        ParameterType.PARAMETER_BOOL_ARRAY: "bool_array_value",
        ParameterType.PARAMETER_INTEGER_ARRAY: "integer_array_value",
        ParameterType.PARAMETER_DOUBLE_ARRAY: "double_array_value",
        ParameterType.PARAMETER_STRING_ARRAY: "string_array_value",
    }
    if kind not in fields:
        return None
    value = getattr(value_msg, fields[kind])
    return list(value) if kind >= ParameterType.PARAMETER_BYTE_ARRAY else value


class GraphClient:
    """Owns one rclpy node and executor; calls lifecycle/parameter services of other nodes."""

    def __init__(self, name: str = "snapflow_graph_client", *, init: bool = True) -> None:
        self._owns_context = init and not rclpy.ok()
        if self._owns_context:
            rclpy.init()
        self.node: Node = rclpy.create_node(name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._clients: dict[tuple[type, str], Any] = {}

    def close(self) -> None:
        """Destroy the node, and the rclpy context if this client created it."""
        self.executor.shutdown()
        self.node.destroy_node()
        if self._owns_context:
            rclpy.try_shutdown()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- spinning -----------------------------------------------------------------------------
    def spin_for(self, seconds: float) -> None:
        """Process callbacks (subscriptions of :attr:`node`) for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=min(0.05, max(0.0, deadline - time.monotonic())))

    def spin_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Process callbacks until ``predicate()`` holds; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()

    def node_names(self) -> set[str]:
        """Names of the nodes currently in the graph."""
        return {name for name, _ in self.node.get_node_names_and_namespaces()}

    def wait_for_node(self, name: str, timeout: float = 30.0) -> bool:
        """Wait until ``name`` appears in the graph."""
        return self.spin_until(lambda: name in self.node_names(), timeout)

    def call_service(self, srv_type: type, service: str, request: Any,
                     timeout: float = 10.0) -> Any:
        """Call ``service`` (type ``srv_type``) with ``request``; its response.

        Waits up to ``timeout`` seconds for the service and again for the answer, raising
        :class:`GraphClientError` when either does not come. Clients are created once per
        service and reused.
        """
        key = (srv_type, service)
        if key not in self._clients:
            self._clients[key] = self.node.create_client(srv_type, service)
        client = self._clients[key]
        if not client.wait_for_service(timeout_sec=timeout):
            raise GraphClientError(f"service {service} is not available")
        future = client.call_async(request)
        if not self.spin_until(future.done, timeout):
            raise GraphClientError(f"service {service} did not answer within {timeout} s")
        return future.result()

    def trigger(self, service: str, timeout: float = 10.0) -> tuple[bool, str]:
        """Call a ``std_srvs/srv/Trigger`` service: ``(success, message)``."""
        reply = self.call_service(Trigger, service, Trigger.Request(), timeout)
        return bool(reply.success), str(reply.message)

    # -- lifecycle ----------------------------------------------------------------------------
    def lifecycle_state(self, node: str, timeout: float = 10.0) -> str:
        """Label of ``node``'s current lifecycle state (``unconfigured``, ``active``, ...)."""
        return self.call_service(GetState, _service(node, "get_state"), GetState.Request(),
                                 timeout).current_state.label

    def change_lifecycle_state(self, node: str, transition: str, timeout: float = 60.0) -> bool:
        """Request ``transition`` (configure, activate, ...); True if the node accepted it."""
        if transition not in TRANSITIONS:
            raise ValueError(f"unknown transition '{transition}'; one of {', '.join(TRANSITIONS)}")
        transition_id = TRANSITIONS[transition]
        if transition_id is None:
            state = self.call_service(GetState, _service(node, "get_state"),
                                      GetState.Request(), timeout).current_state.id
            if state not in _SHUTDOWN_FROM:
                return False
            transition_id = _SHUTDOWN_FROM[state]
        request = ChangeState.Request()
        request.transition.id = transition_id
        return bool(self.call_service(ChangeState, _service(node, "change_state"), request,
                                      timeout).success)

    # -- parameters ---------------------------------------------------------------------------
    def get_parameters(self, node: str, names: list[str], timeout: float = 10.0) -> dict:
        """Values of parameters ``names`` of ``node`` (None for undeclared ones)."""
        request = GetParameters.Request(names=list(names))
        response = self.call_service(GetParameters, _service(node, "get_parameters"), request,
                                     timeout)
        return {n: _to_python(v) for n, v in zip(names, response.values)}

    def set_parameters(self, node: str, values: dict[str, Any],
                       timeout: float = 10.0) -> dict[str, tuple[bool, str]]:
        """Set parameters; per name, (successful, reason) as the node's callback answered."""
        request = SetParameters.Request()
        for name, value in values.items():
            msg = ParameterMsg(name=name, value=Parameter(name, value=value).get_parameter_value())
            request.parameters.append(msg)
        response = self.call_service(SetParameters, _service(node, "set_parameters"), request,
                                     timeout)
        return {n: (r.successful, r.reason) for n, r in zip(values, response.results)}
