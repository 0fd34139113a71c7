"""Ctrl-C and SIGTERM for the command-line tools that spin rclpy.

The handlers only note the request; the tool acts on it between rclpy calls. (A
KeyboardInterrupt raised while rclpy's C++ code is taking a message surfaces as a RuntimeError
instead, and the tool would not stop cleanly.)
"""
from __future__ import annotations

import signal


class Stopped(KeyboardInterrupt):
    """Ctrl-C or SIGTERM arrived; ``exit_status`` is the shell's 128 + signal number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.exit_status = 128 + signum


class StopRequests:
    """Use as ``with StopRequests() as stop:`` and call ``stop.check()`` between rclpy calls."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def _note(self, signum, frame) -> None:
        self.received = signum

    def __enter__(self) -> StopRequests:
        self._previous = {s: signal.signal(s, self._note) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def check(self) -> None:
        """Raise Stopped if Ctrl-C or SIGTERM arrived."""
        if self.received is not None:
            raise Stopped(self.received)
