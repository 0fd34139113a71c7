"""Benchmark: does the graph hold at length? A long `treeworld launch` (lockstep, circle,
odometry noise 1.0, the default localizer (slam), every topic recorded): steps/s per
1,000-step window, the localizer's per-step latency over the run, each process's CPU time per
step in each window (from /proc, sampled twice a second), and bag bytes per step at two run
lengths. The last window is also timed without its last `max_lead_steps` steps, which the
other nodes work off after the simulator has published its last step (the drain).

    .venv/bin/python scripts/bench_long_run.py [--steps 10000] [--short 1000] [--out docs/bench]
        [--localizer slam|tem2d|deadreckoning] [--controller circle|random|spiral]
        [--node-repeats 2]

Writes OUT/long_run.png (latency and throughput over the run) and OUT/long_run.json (with
another localizer than slam: long_run_LOCALIZER.png and .json; with another controller than
the circle, _CONTROLLER added). Dead reckoning does the same work every step, so with it the
run shows what the graph itself costs as the run grows; a random walk keeps covering new
ground, so with it the map's size does. As this machine's speed drifts by 10 to 30 % within
minutes, the summary also gives last/first scaled by the simulator's CPU time per step in the
two windows (its work per step never changes), and the plot each process's CPU time per step
in units of the simulator's. The processes do not all slow alike when the machine does, so
those still move by several per cent between runs; for the localizer, the only node whose
work per step depends on what it has seen, the bench measures its last window against its
first without the machine in it: the node's last window and a fresh node's first, driven in
this process in turns of 100 steps (`localizer_node_last_over_first_in_turns`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
import yaml  # noqa: E402

from tem_localizer.config import LocalizerConfig  # noqa: E402
from tem_localizer.node import TemLocalizerNode  # noqa: E402
from treeworld_bringup.launcher import NODE_MODULES, launch_graph  # noqa: E402
from treeworld_bringup.settings import Settings, parameter_document  # noqa: E402
from treeworld_bringup.speed import walk  # noqa: E402
from treeworld_schema import interface as io  # noqa: E402
from treeworld_sim.node import odometry_message, smell_message  # noqa: E402

WINDOW = 1000
IN_TURNS = 100       # steps: the node's last window and a fresh node's first take turns
LEADING = ("treeworld_sim", "spiral_controller")   # ahead of the localizer by up to
                                                   # max_lead_steps
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


class CpuSampler:
    """Twice a second: perf_counter() and the CPU seconds (user + system) so far of this
    process (the launcher) and of each node it started, by node name."""

    def __init__(self):
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    @staticmethod
    def cpu_seconds(pid: int) -> tuple[int, float] | None:
        """(parent pid, CPU seconds) of ``pid``, None once it has gone."""
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND

    def _sample(self) -> None:
        me = os.getpid()
        while self.running:
            seconds = {"launcher": self.cpu_seconds(me)[1]}
            for entry in os.listdir("/proc"):
                if not entry.isdigit() or (stat := self.cpu_seconds(int(entry))) is None \
                        or stat[0] != me:
                    continue
                try:
                    with open(f"/proc/{entry}/cmdline") as cmdline:
                        arguments = cmdline.read().split("\0")
                except OSError:
                    continue
                seconds |= {name: stat[1] for name, module in NODE_MODULES.items()
                            if module in arguments}
            self.samples.append((time.perf_counter(), seconds))
            time.sleep(0.5)

    def stop(self) -> None:
        self.running = False
        self.thread.join()

    def per_step_ms(self, arrival: np.ndarray, truth_arrival: np.ndarray
                    ) -> dict[str, list[float]]:
        """Each process's CPU ms per step in each WINDOW-step window, interpolated between
        samples. A window spans its steps' estimates (``arrival``: the perf_counter() at each)
        for the processes that follow the localizer, and their true poses (``truth_arrival``)
        for those that lead it by up to max_lead_steps, the simulator and the controller:
        timed by the estimates, the simulator's last window would hold only the steps it had
        not published before the window began, 10 % fewer than the others'."""
        times = np.array([t for t, _ in self.samples])
        bounds = np.array([(start, end - 1) for start, end in
                           zip(range(0, len(arrival), WINDOW),
                               range(WINDOW, len(arrival) + 1, WINDOW))],
                          dtype=np.int64).reshape(-1, 2)                   # (windows, 2)
        result = {}
        for name in sorted({n for _, seconds in self.samples for n in seconds}):
            seen = np.array([seconds.get(name, np.nan) for _, seconds in self.samples])
            known = ~np.isnan(seen)
            ends = (truth_arrival if name in LEADING else arrival)[bounds]
            used = np.interp(ends, times[known], seen[known])
            result[name] = list((used[:, 1] - used[:, 0]) * 1000 / (WINDOW - 1))
        return result


def lead_steps(arrival: np.ndarray, truth_arrival: np.ndarray) -> list[int]:
    """How many steps the simulator was ahead of the localizer when the first estimate came
    and at the end of each WINDOW-step window: the true poses that had arrived by then, less
    the estimates."""
    handled = np.r_[1, np.arange(WINDOW, len(arrival) + 1, WINDOW)]
    published = np.searchsorted(truth_arrival, arrival[handled - 1], side="right")
    return (published - handled).tolist()


def settings_for(steps: int, localizer: str, controller: str) -> Settings:
    defaults = Settings()
    return Settings(dataclasses.replace(defaults.world, steps=steps, odometry_noise=1.0),
                    dataclasses.replace(defaults.controller, controller=controller),
                    dataclasses.replace(defaults.localizer, method=localizer,
                                        odometry_sigma=1.0, device="cpu"))


def run(steps: int, localizer: str, controller: str) -> dict:
    """One recorded launch: per-window steps/s, latencies, bag bytes per step."""
    sampler = CpuSampler()
    settings = settings_for(steps, localizer, controller)
    result = launch_graph(settings, use_localizer=True, record=True)
    sampler.stop()
    if result.failure is not None:
        raise SystemExit(f"the {steps}-step launch failed: {result.failure}")
    info = result.info
    arrival = np.array([info["arrival"][s] for s in range(steps)])
    truth_arrival = np.array([info["truth_arrival"][s] for s in range(steps)])
    windows = [WINDOW / (arrival[end - 1] - arrival[start])
               for start, end in zip(range(0, steps, WINDOW), range(WINDOW, steps + 1, WINDOW))]
    # the simulator may lead its readers by max_lead_steps: once it has published the last
    # step, the others work off those steps without it, faster
    drain = settings.world.max_lead_steps
    before_drain = (WINDOW - drain) / (arrival[steps - drain - 1] - arrival[steps - WINDOW]) \
        if steps >= WINDOW > drain else None
    bag_bytes = sum(f.stat().st_size for f in info["bag"].iterdir())
    shutil.rmtree(info["workspace"], ignore_errors=True)
    return {"steps": steps, "localizer": localizer, "controller": controller,
            "steps_per_second": result.recording.summary["steps_per_second"],
            "window_steps_per_second": windows, "latencies_ms": info["latencies_ms"],
            "last_window_before_drain": before_drain,
            "cpu_ms_per_step": sampler.per_step_ms(arrival, truth_arrival),
            "lead_steps": lead_steps(arrival, truth_arrival),
            "bag_bytes": bag_bytes, "bag_bytes_per_step": bag_bytes / steps,
            "ate_rmse": float(np.sqrt(np.mean(np.sum(
                (result.recording.estimates - result.recording.true_positions) ** 2, 1))))}


def node_step_growth(settings: Settings, repeats: int) -> list[float]:
    """The localizer node's CPU time per step in a run's last window over a fresh node's in its
    first, measured without the machine's drift: both nodes live in this process, their
    odometry and smell callbacks called directly with the launch's messages (nothing comes
    over DDS), the two windows taken in turns of IN_TURNS steps. One ratio per repeat."""
    steps, period = settings.world.steps, settings.world.step_period
    messages, odometry = [], np.zeros(2)
    for step, (moved, smell) in enumerate(walk(settings, steps)):
        odometry = odometry + moved
        stamp = io.step_stamp(step, period)
        messages.append((odometry_message(stamp, io.ODOM_FRAME, odometry, 0.0, np.zeros(2)),
                         smell_message(stamp, smell)))
    ratios = []
    with tempfile.TemporaryDirectory() as folder:
        parameters = Path(folder) / "parameters.yaml"
        parameters.write_text(yaml.safe_dump(
            {"tem_localizer": parameter_document(settings)["tem_localizer"]}))
        for _ in range(repeats):
            rclpy.init(args=["--ros-args", "--params-file", str(parameters)])
            try:
                ratios.append(_in_turns(TemLocalizerNode(), TemLocalizerNode(), messages))
            finally:
                rclpy.shutdown()
    return ratios


def _in_turns(run: TemLocalizerNode, fresh: TemLocalizerNode, messages: list) -> float:
    def handle(node, odometry, smell):
        node.on_odom(odometry)
        node.on_smell(smell)

    last = len(messages) - WINDOW
    for step in range(last):
        handle(run, *messages[step])
    seconds = {run: 0.0, fresh: 0.0}
    for start in range(0, WINDOW, IN_TURNS):
        for node, offset in ((run, last), (fresh, 0)):
            started = time.thread_time()
            for step in range(offset + start, offset + start + IN_TURNS):
                handle(node, *messages[step])
            seconds[node] += time.thread_time() - started
    for node in (run, fresh):
        node.destroy_node()
    return seconds[run] / seconds[fresh]


def plot(long: dict, path: Path) -> None:
    latencies = np.asarray(long["latencies_ms"])
    # a run shorter than one window has too few steps to show latency over the run
    timed = len(latencies) >= WINDOW
    fig, axes = plt.subplots(4 if timed else 3, 1, figsize=(9, 11 if timed else 8.5),
                             sharex=True)
    bottom, cpu, relative = axes[-3:]
    if timed:
        top = axes[0]
        top.plot(latencies, ",", color="tab:blue", alpha=0.4, label="one step")
        kernel = np.ones(WINDOW // 10) / (WINDOW // 10)
        top.plot(np.convolve(latencies, kernel, mode="valid"), color="tab:orange",
                 label=f"mean of {WINDOW // 10} steps")
        top.set_ylabel("localizer step latency (ms)")
        top.set_ylim(0, np.percentile(latencies, 99.5) * 1.2)
        top.legend(loc="upper right", fontsize=8)
    centres = np.arange(len(long["window_steps_per_second"])) * WINDOW + WINDOW / 2
    bottom.plot(centres, long["window_steps_per_second"], "o-", color="tab:green")
    bottom.set_ylabel(f"graph steps/s per {WINDOW} steps")
    bottom.set_ylim(0, max(long["window_steps_per_second"]) * 1.2)
    stacked = np.zeros(len(centres))
    colours = dict(zip(long["cpu_ms_per_step"], plt.get_cmap("tab10").colors))
    simulator = np.asarray(long["cpu_ms_per_step"]["treeworld_sim"])
    for name, used in long["cpu_ms_per_step"].items():
        cpu.bar(centres, used, width=0.8 * WINDOW, bottom=stacked, label=name,
                color=colours[name])
        stacked += np.asarray(used)
        if name != "treeworld_sim":
            relative.plot(centres, np.asarray(used) / simulator, "o-", color=colours[name],
                          label=name)
    relative.plot(centres, (stacked - simulator) / simulator, "o-", color="black",
                  label="all but the simulator")
    cpu.set_ylabel("CPU ms per step")
    cpu.set_ylim(0, stacked.max() * 1.35)                       # room for the legend
    cpu.legend(loc="upper center", fontsize=8, ncol=5)
    # the simulator's work per step never changes: in its units most of the machine's drift
    # drops out (not all: the processes do not all slow alike)
    relative.set_ylabel("CPU per step / simulator's")
    relative.set_ylim(0, ((stacked - simulator) / simulator).max() * 1.35)
    relative.legend(loc="upper center", fontsize=8, ncol=5)
    relative.set_xlabel("step")
    fig.suptitle(f"treeworld launch, {long['steps']} lockstep steps, {long['controller']}, "
                 f"{long['localizer']}, recording every topic (2-core machine)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--short", type=int, default=1_000)
    parser.add_argument("--out", type=Path, default=Path("docs/bench"))
    parser.add_argument("--localizer", choices=LocalizerConfig.__dataclass_fields__[
        "method"].metadata["choices"], default=LocalizerConfig.method)
    parser.add_argument("--controller", choices=("circle", "random", "spiral"), default="circle")
    parser.add_argument("--node-repeats", type=int, default=2,
                        help="times to measure the localizer node's last window against a "
                        "fresh node's first, in turns in this process (0: not at all)")
    args = parser.parse_args()
    if args.steps < WINDOW:      # it compares the run's first and last WINDOW steps
        parser.error(f"--steps must be at least {WINDOW}, got {args.steps}")
    os.environ.setdefault("ROS_DOMAIN_ID", "92")
    args.out.mkdir(parents=True, exist_ok=True)
    name = "long_run" + ("" if args.localizer == "slam" else f"_{args.localizer}") + \
        ("" if args.controller == "circle" else f"_{args.controller}")
    short = run(args.short, args.localizer, args.controller)
    long = run(args.steps, args.localizer, args.controller)
    plot(long, args.out / f"{name}.png")
    windows = long["window_steps_per_second"]
    latencies = np.asarray(long["latencies_ms"])
    timed = len(latencies) >= WINDOW          # (None in the JSON for a run under a window)
    first, last = latencies[:WINDOW], latencies[-WINDOW:]
    simulator = long["cpu_ms_per_step"]["treeworld_sim"]
    summary = {
        "steps": args.steps,
        "localizer": args.localizer,
        "controller": args.controller,
        "steps_per_second_first_window": windows[0],
        "steps_per_second_last_window": windows[-1],
        "last_over_first": windows[-1] / windows[0],
        # the last window without its last max_lead_steps steps (the drain, see run())
        "steps_per_second_last_window_before_drain": long["last_window_before_drain"],
        "last_before_drain_over_first": long["last_window_before_drain"] / windows[0]
        if long["last_window_before_drain"] else None,
        # derived, not the goal's figure: as if the machine had run at one speed throughout
        "last_over_first_at_simulator_pace": windows[-1] / windows[0] * simulator[-1]
        / simulator[0],
        # what the localizer's step costs at the end against the start, free of the
        # machine's drift (in turns in one process)
        "localizer_node_last_over_first_in_turns": node_step_growth(
            settings_for(args.steps, args.localizer, args.controller), args.node_repeats),
        "latency_ms_p50_first_window": float(np.median(first)) if timed else None,
        "latency_ms_p50_last_window": float(np.median(last)) if timed else None,
        "latency_ms_p99_first_window": float(np.percentile(first, 99)) if timed else None,
        "latency_ms_p99_last_window": float(np.percentile(last, 99)) if timed else None,
        "bag_bytes_per_step": {str(short["steps"]): short["bag_bytes_per_step"],
                               str(long["steps"]): long["bag_bytes_per_step"]},
        "ate_rmse": long["ate_rmse"],
    }
    cpu = long["cpu_ms_per_step"]
    (args.out / f"{name}.json").write_text(json.dumps(
        summary | {"window_steps_per_second": windows, "cpu_ms_per_step": cpu,
                   "lead_steps": long["lead_steps"]}, indent=2) + "\n")
    print(f"steps/s per {WINDOW}-step window: " + " ".join(f"{w:.0f}" for w in windows))
    print("the simulator's lead at the first estimate and at each window's end: " +
          " ".join(str(lead) for lead in long["lead_steps"]))
    print("CPU ms per step in each window (from /proc, every 0.5 s):")
    for name, used in cpu.items():
        print(f"  {name:18s}" + " ".join(f"{u:5.2f}" for u in used))
    print(f"  {'all':18s}" + " ".join(f"{sum(u):5.2f}" for u in zip(*cpu.values())))
    for key, value in summary.items():
        print(f"  {key:32s} {value}")


if __name__ == "__main__":
    main()
