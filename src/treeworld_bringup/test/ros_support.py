"""Helpers for tests that run real nodes over real DDS: a private domain per test, a
subscriber that records what the graph publishes, and waiting with a deadline."""
from __future__ import annotations

import collections
import contextlib
import importlib.metadata
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import rclpy
from rclpy.executors import SingleThreadedExecutor

from treeworld_schema.ros import init_ros

_domains = itertools.count()


def private_domain() -> str:
    """A ROS_DOMAIN_ID no other test of this run uses, also when pytest-xdist runs tests side
    by side: each worker draws from its own share of ids 1..100 (valid for Fast DDS)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])
    share = 100 // workers
    return str(1 + worker * share + (os.getpid() * 7 + next(_domains)) % share)


@contextmanager
def ros_context(domain: str):
    """rclpy initialized on ``domain``, spun in a background thread; yields (context, add)."""
    os.environ["ROS_DOMAIN_ID"] = domain
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    context = rclpy.Context()
    init_ros(context=context)
    executor = SingleThreadedExecutor(context=context)
    stop = threading.Event()
    failures = []

    def spin():
        try:
            while not stop.is_set() and context.ok():
                executor.spin_once(timeout_sec=0.05)
        except Exception as error:      # the test's waits would only time out: say why
            failures.append(error)

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
        if failures:
            raise RuntimeError("the test's executor stopped spinning") from failures[0]


def wait_for(condition, timeout: float, what: str, check=None, explain=None) -> None:
    """Poll ``condition`` until true; ``check`` (e.g. processes alive) may raise; ``explain``
    says what the test saw, for the message of a timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if check is not None:
            check()
        if time.monotonic() > deadline:
            seen = f"; {explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{seen}")
        time.sleep(0.05)


def process_state(pid: int) -> str | None:
    """The kernel's state letter of process ``pid`` (R running, S sleeping, T stopped, Z
    exited but not yet reaped, ...), None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` still runs: an exited process its parent has not reaped yet (a zombie,
    as the nodes of a launcher that is gone are until init reaps them) does not."""
    return process_state(pid) not in (None, "Z")


def console_script(name: str) -> list[str]:
    """The command line that runs the installed console script ``name`` (e.g. treeworld,
    evo_ape) through its entry point with this interpreter: it works from a venv and from a
    colcon install alike, wherever the script file itself was put."""
    (entry,) = importlib.metadata.entry_points(group="console_scripts", name=name)
    module, attribute = entry.value.split(":")
    return [sys.executable, "-c",
            f"import sys; from {module} import {attribute} as main; sys.exit(main())"]


TREEWORLD = console_script("treeworld")


def ros_env(domain: str) -> dict[str, str]:
    return os.environ | {"ROS_DOMAIN_ID": domain, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}


def started_pids(process: subprocess.Popen, count: int) -> dict[str, int]:
    """The node PIDs a `treeworld launch` announces on stderr ('started NAME (pid N)')."""
    pids = {}
    while len(pids) < count:
        line = process.stderr.readline()
        assert line, "launcher ended before starting its nodes"
        if line.startswith("started "):
            pids[line.split()[1]] = int(line.split("(pid ")[1].split(")")[0])
    return pids


class Stderr:
    """What a child writes to stderr, read on a thread as it comes: a child whose stderr pipe
    is full blocks (a launcher's progress bar would fill one in minutes), and a test that
    fails wants the child's last words."""

    def __init__(self, process: subprocess.Popen):
        self.lines: collections.deque[str] = collections.deque(maxlen=500)
        self._reader = threading.Thread(target=self._read, args=(process.stderr,), daemon=True)
        self._reader.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    def text(self, limit: int = 3000, ended: bool = True) -> str:
        """The last ``limit`` characters: all of them once the child has ``ended`` (then its
        last lines are waited for), what came so far otherwise."""
        if ended:
            self._reader.join(timeout=5)
        return "".join(self.lines)[-limit:]


def running(process: subprocess.Popen, stderr: Stderr):
    """A ``check`` for :func:`wait_for`: fails at once, with its stderr, when ``process`` ended."""
    def check() -> None:
        if process.poll() is not None:
            raise AssertionError(f"exited with status {process.returncode}; its stderr ends: "
                                 f"{stderr.text()}")
    return check


def stop_all(processes: list[subprocess.Popen], pids: list[int] = ()) -> None:
    """Kill what a test started, by PID, whatever happened to the test."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
    killed = [pid for pid in pids if pid_alive(pid)]
    for pid in killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5     # SIGKILL takes effect soon, not at once
    while any(pid_alive(pid) for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.01)


@contextmanager
def throttled(pid: int, stop_for: float = 0.4, run_for: float = 0.1):
    """Process ``pid`` slowed on purpose while the block runs: stopped (SIGSTOP) ``stop_for``
    seconds at a time and let run ``run_for`` seconds between. Each stop stays well under 1 s:
    a process stopped inside a send holds a lock of another process's shared-memory port, and
    Fast DDS takes a lock held for 1 s as left by a dead process and discards the port (the
    likely cause of a CI run whose graph stalled after a 2 s freeze). The process runs on when
    the block ends."""
    done = threading.Event()

    def pulse():
        try:
            while not done.is_set():
                os.kill(pid, signal.SIGSTOP)
                done.wait(stop_for)
                os.kill(pid, signal.SIGCONT)
                done.wait(run_for)
        except ProcessLookupError:      # it ended: nothing left to slow
            pass

    thread = threading.Thread(target=pulse, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


@contextmanager
def busy_cpu(processes: int, seconds: float):
    """``processes`` spinning loops that end by themselves after ``seconds`` at the latest."""
    loop = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(processes)]
    try:
        yield
    finally:
        stop_all(spinners)
