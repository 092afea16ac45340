# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What every ``snapflow`` command shares: exit codes, one-line errors, stop signals."""

from __future__ import annotations

import os
import signal
import sys
import time
import types

import pytest

from snapflow_ros import cli
from snapflow_ros.cli.exit_codes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from snapflow_ros.config_fields import ConfigError

MODULE = "snapflow_test_command"


@pytest.fixture
def command(monkeypatch):
    """Register ``snapflow probe`` whose run is the function the test gives."""
    module = types.ModuleType(MODULE)
    module.add_arguments_probe = lambda parser: parser.add_argument("--value", default="")
    monkeypatch.setitem(sys.modules, MODULE, module)
    monkeypatch.setitem(cli.SUBCOMMANDS, "probe", (MODULE, "A test command."))
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)

    def define(run):
        module.run_probe = run

    return define


def _errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_bad_input_is_one_line_and_exit_2(command, capsys):
    def run(args):
        raise ConfigError(f"config file not found: {args.value}")

    command(run)
    assert cli.main(["probe", "--value", "x.yaml"]) == EXIT_BAD_INPUT
    assert _errors(capsys.readouterr().err) == ["error: config file not found: x.yaml"]


def test_a_bag_error_is_bad_input_too(command, capsys):
    from snapflow_ros.data.bag_reader import NotABagError

    def run(args):
        raise NotABagError("not a rosbag2 recording", path="notes.txt")

    command(run)
    assert cli.main(["probe"]) == EXIT_BAD_INPUT
    assert _errors(capsys.readouterr().err) == ["error: notes.txt: not a rosbag2 recording"]


def test_an_unexpected_error_is_one_line_unless_debugging(command, capsys, monkeypatch):
    def run(args):
        raise ZeroDivisionError("division by zero\nsecond line")

    command(run)
    assert cli.main(["probe"]) == EXIT_FAILED
    lines = _errors(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("error: unexpected ZeroDivisionError: "
                                                   "division by zero")
    assert "--debug" in lines[0] and cli.DEBUG_ENV in lines[0]
    for argv, env in ((["--debug", "probe"], None), (["probe"], "1")):
        if env:
            monkeypatch.setenv(cli.DEBUG_ENV, env)
        assert cli.main(argv) == EXIT_FAILED
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "in run" in err


def test_return_codes_pass_through_and_no_command_prints_help(command, capsys):
    command(lambda args: EXIT_OK)
    assert cli.main(["probe"]) == EXIT_OK
    command(lambda args: None)
    assert cli.main(["probe"]) == EXIT_OK
    assert cli.main([]) == EXIT_BAD_INPUT
    out = capsys.readouterr().out
    assert "exit codes:" in out and "SIGTERM" in out and cli.DEBUG_ENV in out


def test_ctrl_c_exits_130(command, capsys):
    def run(args):
        raise KeyboardInterrupt

    command(run)
    assert cli.main(["probe"]) == EXIT_INTERRUPTED
    assert _errors(capsys.readouterr().err) == ["interrupted"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_stop_signals_run_the_clean_up_and_exit_130(command, capsys, signum):
    """The signal arrives mid-command; ``finally`` runs (where children are stopped)."""
    cleaned = []

    def run(args):
        try:
            os.kill(os.getpid(), signum)
            time.sleep(10)  # interrupted by the handler
            return EXIT_OK
        finally:
            if signum != signal.SIGINT:
                # A second SIGTERM / SIGHUP (systemd, a closing terminal) while cleaning up is
                # ignored so that the clean-up finishes.
                os.kill(os.getpid(), signum)
                time.sleep(0.05)
            cleaned.append(True)

    command(run)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    started = time.monotonic()
    assert cli.main(["probe"]) == EXIT_INTERRUPTED
    assert time.monotonic() - started < 5 and cleaned == [True]
    name = signal.Signals(signum).name
    expected = "interrupted" if signum == signal.SIGINT else f"stopped ({name})"
    assert _errors(capsys.readouterr().err) == [expected]
    # The process's own handlers are back once the command returns.
    assert {sig: signal.getsignal(sig) for sig in previous} == previous


def test_a_command_whose_dependency_is_missing_says_so(monkeypatch, capsys):
    # As a module importing rclpy on a machine without ROS 2: its import fails.
    monkeypatch.setitem(sys.modules, MODULE, None)
    monkeypatch.setitem(cli.SUBCOMMANDS, "probe", (MODULE, "A test command."))
    assert f"[needs {MODULE}]" in cli.build_parser().format_help()
    assert cli.main(["probe", "--anything"]) == EXIT_FAILED
    assert f"needs the Python module {MODULE}" in capsys.readouterr().err
