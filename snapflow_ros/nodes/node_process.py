# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Start and stop nodes as real processes, as ``ros2 run`` / ``ros2 launch`` would.

Used by the tests, by ``snapflow bringup`` and by the benchmarks on machines without the ``ros2``
CLI. This module does not import rclpy: waiting for a node to appear in the graph is done by the
caller's own rclpy node (see :func:`wait_for_node`).

A node goes down with the process that started it, however that one ends (even ``kill -9``):
on Linux the kernel sends the child SIGTERM when its parent dies (``PR_SET_PDEATHSIG``, set
between fork and exec); elsewhere, or for a node started from a thread other than the main one
(the signal follows the starting *thread*), :func:`stop_with_parent` in the node's ``main()``
watches the parent instead. A node takes SIGTERM as it takes SIGINT (rclpy shuts it down).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SHM_DIR = Path("/dev/shm")
# Shared-memory transport only: no sockets, no multicast, lowest latency, large images delivered.
SHM_TRANSPORT = "SHM?max_msg_size=4MB&sockets_size=16MB"
PARENT_PID_ENV = "SNAPFLOW_PARENT_PID"
"""Set by :class:`NodeProcess` in the child's environment: the pid that
:func:`stop_with_parent` watches."""
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_PR_GET_PDEATHSIG = 2
_PARENT_POLL_S = 0.5


def _load_prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


# Resolved once here: the child between fork and exec should do as little as possible.
_PRCTL = _load_prctl()


def parent_death_signal_options() -> dict[str, object]:
    """``subprocess.Popen`` options making the child get SIGTERM when this process dies.

    Linux only, and only from the main thread (the kernel signals when the starting *thread*
    exits); otherwise empty, and :func:`stop_with_parent` in the child covers it.
    """
    if _PRCTL is None or threading.current_thread() is not threading.main_thread():
        return {}
    parent = os.getpid()

    def set_parent_death_signal() -> None:  # runs in the child, between fork and exec
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(128 + int(signal.SIGTERM))

    return {"preexec_fn": set_parent_death_signal}


def _parent_death_signal_armed() -> bool:
    if _PRCTL is None:
        return False
    armed = ctypes.c_int(0)
    return _PRCTL(_PR_GET_PDEATHSIG, ctypes.byref(armed), 0, 0, 0) == 0 and armed.value != 0


def stop_with_parent() -> bool:
    """In a node's ``main()``: SIGTERM this process when the one that started it is gone.

    Does nothing unless :class:`NodeProcess` started this process, or when the kernel's
    parent-death signal is already armed; else watches the parent from a daemon thread (every
    0.5 s). Returns True when a watcher was started.
    """
    expected = os.environ.get(PARENT_PID_ENV, "")
    if not expected.isdigit() or _parent_death_signal_armed():
        return False

    def watch() -> None:
        while os.getppid() == int(expected):
            time.sleep(_PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stop_with_parent", daemon=True).start()
    return True


def isolated_ros_environment(base: Mapping[str, str] | None = None, *,
                             domain_id: int | None = None,
                             log_dir: str | None = None) -> dict[str, str]:
    """Environment for an isolated ROS 2 graph: random domain, SHM transport, own log dir."""
    env = dict(os.environ if base is None else base)
    env["ROS_DOMAIN_ID"] = str(domain_id if domain_id is not None else random.randint(1, 100))
    env["FASTDDS_BUILTIN_TRANSPORTS"] = SHM_TRANSPORT
    env.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)  # silently overrides the transport setting
    env["ROS_LOG_DIR"] = log_dir or tempfile.mkdtemp(prefix="snapflow_ros_log_")
    env.setdefault("HOME", tempfile.gettempdir())
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    if isinstance(value, str):
        return value if value and not any(c in value for c in " ,[]:'\"") else repr(value)
    return str(value)


def ros_args(*, params: Mapping[str, Any] | None = None,
             params_file: str | os.PathLike | None = None,
             remaps: Mapping[str, str] | None = None,
             node_name: str | None = None) -> list[str]:
    """``--ros-args`` list for parameters, a parameter file, remappings and a node name.

    Every item sits after ``--ros-args`` in its long form (``--param``, ``--remap``): a bare
    ``FROM:=TO`` outside it is the syntax rcl warns is deprecated.
    """
    args = ["--ros-args"]
    if params_file is not None:
        args += ["--params-file", str(params_file)]
    for key, value in (params or {}).items():
        args += ["--param", f"{key}:={_format_value(value)}"]
    for src, dst in (remaps or {}).items():
        args += ["--remap", f"{src}:={dst}"]
    if node_name:
        args += ["--remap", f"__node:={node_name}"]
    return args


def _fastdds_shm_files() -> set[Path]:
    if not SHM_DIR.is_dir():
        return set()
    return {p for p in SHM_DIR.iterdir() if "fastdds" in p.name}


def _files_mapped_by_live_processes() -> set[str]:
    mapped: set[str] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for line in (proc / "maps").read_text().splitlines():
                if "/dev/shm/" in line:
                    mapped.add(line.split(None, 5)[-1].strip())
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("/dev/shm/"):
                    mapped.add(target)
        except OSError:
            continue
    return mapped


class NodeProcess:
    """One node running in its own process, stopped with SIGINT, then SIGKILL.

    It has its own session (a Ctrl-C at the terminal reaches only the starting process, which
    stops it in :meth:`stop`) and gets SIGTERM when the starting process dies.
    """

    def __init__(self, module: str, *, args: Iterable[str] = (),
                 env: Mapping[str, str] | None = None, python: str | None = None,
                 log_path: str | os.PathLike | None = None,
                 name: str | None = None) -> None:
        self.module = module
        self.name = name or module.rsplit(".", 1)[-1]
        self.command = [python or sys.executable, "-m", module, *args]
        self.env = dict(env or os.environ)
        self.log_path = Path(log_path) if log_path else Path(
            tempfile.mkstemp(prefix=f"{self.name}_", suffix=".log")[1])
        self.process: subprocess.Popen | None = None
        self._shm_before: set[Path] = set()

    def start(self) -> NodeProcess:
        """Launch the process; its stdout and stderr go to :attr:`log_path`."""
        self._shm_before = _fastdds_shm_files()
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.env[PARENT_PID_ENV] = str(os.getpid())
        self.process = subprocess.Popen(self.command, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True,
                                        **parent_death_signal_options())
        return self

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        """Everything the process printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, needle: str, timeout: float = 30.0) -> bool:
        """Wait until ``needle`` appears in the log; False on timeout or exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_text():
                return True
            if not self.running:
                return needle in self.log_text()
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT, wait ``timeout`` s, then SIGKILL; remove shared memory it left behind."""
        if self.process is None:
            return None
        killed = False
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
                killed = True
        if not self._log.closed:
            self._log.close()
        if killed:
            self.clean_shared_memory()
        return self.process.returncode

    def clean_shared_memory(self) -> list[Path]:
        """Remove Fast DDS segments created since start that no live process maps."""
        in_use = _files_mapped_by_live_processes()
        removed = []
        for path in _fastdds_shm_files() - self._shm_before:
            if str(path) not in in_use:
                try:
                    path.unlink()
                    removed.append(path)
                except OSError:
                    pass
        return removed

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_node(graph_node: Any, name: str, timeout: float = 30.0,
                  process: NodeProcess | None = None) -> bool:
    """Wait until a node called ``name`` is in the graph seen by rclpy node ``graph_node``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if name in {n for n, _ in graph_node.get_node_names_and_namespaces()}:
            return True
        if process is not None and not process.running:
            return False
        time.sleep(0.05)
    return False


def spin_until_shutdown(executor: Any) -> None:
    """Spin ``executor`` until SIGINT / SIGTERM shut rclpy down; a shutdown is a clean stop.

    A signal that shuts the context down while the executor waits makes rcl's wait set raise
    ``RCLError: context is not valid`` instead of ``ExternalShutdownException`` (a race in
    rclpy): that error, once the context is down, is the same clean stop. Any other error, or
    one while the context is still up, propagates.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException

    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        if rclpy.ok():
            raise
