# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""SIGTERM and SIGHUP take the same clean path as Ctrl-C.

systemd, ``docker stop`` and ``kill`` send SIGTERM; closing a terminal sends SIGHUP. Python's
default for both is to die at once, skipping ``finally`` blocks and context managers, which would
leave the node processes a command started running (they have their own session, so the signal
does not reach them). Inside :func:`stop_signals_raise`, SIGTERM and SIGHUP raise
:class:`StopRequested` (a ``KeyboardInterrupt``) in the main thread, so the code that stops
children on Ctrl-C runs for them too. Once a stop is under way, a further SIGTERM or SIGHUP is
ignored so that the clean-up finishes; a second Ctrl-C still aborts at once. This module imports
neither torch nor rclpy.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""The signals that stop a command cleanly."""


class StopRequested(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived; handled wherever Ctrl-C is (``except KeyboardInterrupt``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


class _StopState:
    stopping = False


def _on_interrupt(signum, frame) -> None:
    _StopState.stopping = True
    raise KeyboardInterrupt


def _on_terminate(signum, frame) -> None:
    if _StopState.stopping:
        return  # already on the way out: let the clean-up that is running finish
    _StopState.stopping = True
    raise StopRequested(signum)


def stop_requested() -> bool:
    """True once SIGINT, SIGTERM or SIGHUP arrived inside :func:`stop_signals_raise`."""
    return _StopState.stopping


def _install() -> dict:
    """Install the handlers; returns the previous ones."""
    _StopState.stopping = False
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    # Set SIGINT explicitly too: a process started in the background of a shell inherits an
    # ignored SIGINT, and `kill -INT` must still stop it.
    signal.signal(signal.SIGINT, _on_interrupt)
    signal.signal(signal.SIGTERM, _on_terminate)
    if previous[signal.SIGHUP] is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, _on_terminate)
    return previous


def install_stop_handlers() -> bool:
    """For a script's ``main()``: what :func:`stop_signals_raise` does, until the process ends.

    Returns False (and changes nothing) off the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    _install()
    return True


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[bool]:
    """Within the block, SIGINT raises KeyboardInterrupt and SIGTERM / SIGHUP StopRequested.

    Yields False (and changes nothing) off the main thread, where Python cannot handle signals.
    An ignored SIGHUP (``nohup``) stays ignored. The previous handlers return on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = _install()
    try:
        yield True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
