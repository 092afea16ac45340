# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Node processes: their ``--ros-args``, and that a node goes down with the process that started it.

The starting process is a real one here (a small script), signalled or killed with SIGKILL; the
node is the light heartbeat node.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from process_fixtures import alive, wait_gone

from snapflow_ros.nodes.node_process import (
    PARENT_PID_ENV,
    parent_death_signal_options,
    ros_args,
    stop_with_parent,
)

# Starts a heartbeat node (from the main thread, or from a thread that then ends), prints its
# pid, then waits; SIGINT / SIGTERM / SIGHUP take the Ctrl-C path, which stops the node.
PARENT = textwrap.dedent("""
    import sys, threading, time
    from snapflow_ros.cli.signals import install_stop_handlers
    from snapflow_ros.nodes.node_process import NodeProcess, ros_args

    install_stop_handlers()
    name, log, from_thread = sys.argv[1], sys.argv[2], sys.argv[3] == "thread"
    node = NodeProcess("snapflow_ros.nodes.heartbeat_node", log_path=log,
                       args=ros_args(node_name=name))
    if from_thread:
        starter = threading.Thread(target=node.start)
        starter.start()
        starter.join()
    else:
        node.start()
    print(node.process.pid, flush=True)
    try:
        while True:
            time.sleep(0.1)
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        node.stop(timeout=10)
""")


def test_ros_args_use_the_long_forms_after_ros_args():
    args = ros_args(params={"rate_hz": 5.0, "names": ["a b", "c"], "dry_run": True},
                    params_file="config/policy.yaml", remaps={"joint_states": "/robot/joints"},
                    node_name="policy_2")
    assert args == ["--ros-args", "--params-file", "config/policy.yaml",
                    "--param", "rate_hz:=5.0", "--param", "names:=['a b', c]",
                    "--param", "dry_run:=true",
                    "--remap", "joint_states:=/robot/joints", "--remap", "__node:=policy_2"]


def test_stop_with_parent_does_nothing_outside_a_node_process(monkeypatch):
    monkeypatch.delenv(PARENT_PID_ENV, raising=False)
    assert stop_with_parent() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_children_started_from_the_main_thread_have_the_parent_death_signal_armed():
    query = ("import ctypes; v = ctypes.c_int(); "
             "ctypes.CDLL(None).prctl(2, ctypes.byref(v), 0, 0, 0); print(v.value)")
    armed = subprocess.run([sys.executable, "-c", query], capture_output=True, text=True,
                           check=True, **parent_death_signal_options())
    assert int(armed.stdout) == signal.SIGTERM
    plain = subprocess.run([sys.executable, "-c", query], capture_output=True, text=True,
                           check=True)
    assert int(plain.stdout) == 0


@pytest.fixture
def parent(ros_env, tmp_path):
    """Start the PARENT script; yields ``start(name, how) -> (parent Popen, node pid)``."""
    started = []

    def start(name: str, how: str = "main") -> tuple[subprocess.Popen, int]:
        proc = subprocess.Popen([sys.executable, "-c", PARENT, name, str(tmp_path / f"{name}.log"),
                                 how], env=ros_env, stdout=subprocess.PIPE, text=True)
        started.append(proc)
        line = proc.stdout.readline()
        assert line.strip().isdigit(), line
        return proc, int(line)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.mark.ros
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_to_the_parent_stops_its_node(parent, graph_client, signum):
    name = f"hb_{signal.Signals(signum).name.lower()}_{os.getpid()}"
    proc, node_pid = parent(name)
    assert graph_client.wait_for_node(name, timeout=60)
    proc.send_signal(signum)
    assert proc.wait(timeout=30) == 0
    assert "stopping" in proc.stdout.read()
    assert wait_gone(node_pid, 5), f"{name} outlived its parent's {signal.Signals(signum).name}"


@pytest.mark.ros
@pytest.mark.parametrize("how", ["main", "thread"])
def test_a_node_goes_down_when_its_parent_is_killed(parent, graph_client, how):
    """SIGKILL skips every clean-up; the node still stops.

    The kernel's parent-death signal stops it, or, for a node started from a thread that has
    ended, the node's own watcher.
    """
    name = f"hb_orphan_{how}_{os.getpid()}"
    proc, node_pid = parent(name, how)
    assert graph_client.wait_for_node(name, timeout=60)
    assert alive(node_pid)
    proc.kill()
    proc.wait(timeout=10)
    assert wait_gone(node_pid, 15), f"{name} outlived its killed parent"
