"""Helpers for tests that run real nodes over real DDS: a private domain per test, a
subscriber that records what the graph publishes, and waiting with a deadline."""
from __future__ import annotations

import itertools
import os
import threading
import time
from contextlib import contextmanager

import rclpy
from rclpy.executors import SingleThreadedExecutor

_domains = itertools.count()


def private_domain() -> str:
    """A ROS_DOMAIN_ID no other test of this run uses (ids 1..100 are valid for Fast DDS)."""
    return str(1 + (os.getpid() * 7 + next(_domains)) % 100)


@contextmanager
def ros_context(domain: str):
    """rclpy initialized on ``domain``, spun in a background thread; yields (context, add)."""
    os.environ["ROS_DOMAIN_ID"] = domain
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    stop = threading.Event()

    def spin():
        while not stop.is_set() and context.ok():
            executor.spin_once(timeout_sec=0.05)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield context, executor.add_node
    finally:
        stop.set()
        thread.join(timeout=5)
        for node in list(executor.get_nodes()):
            node.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=context)


def wait_for(condition, timeout: float, what: str, check=None) -> None:
    """Poll ``condition`` until true; ``check`` (e.g. processes alive) may raise."""
    deadline = time.monotonic() + timeout
    while not condition():
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
