"""``treeworld bench speed``: what a localizer step costs as the memory grows (ROS-free, so it
also runs as ``python -m treeworld_bringup.speed`` on a machine with only PyTorch).

- tem2d, episodic memory: the memory is filled with T synthetic (belief, smell) pairs (beliefs
  around random places, random smells), then steps (recall by smell, read, write) are timed.
- slam: a soak, the simulator's random walk (``--soak-path``: or the circle, or the spiral)
  with odometry noise 1.0 through the localizer for the longest T; latency and resident memory
  are read in windows along the way, so the row for T is what a step costs once T steps are
  stored. In the window before each T of the table a fresh localizer takes turns with the soak
  (BLOCK steps each) over the path's first 1,000 steps, so the cost at T and the cost at T =
  1,000 are compared on the same machine at the same minute (a shared machine drifts by 10-20 %
  over a soak). The walk keeps finding new ground and old ground in changing measure, so its
  late steps have more to do than its first; on the circle every lap after the first does the
  same work, so its soak shows what storing more steps costs on its own.

Writes OUT/speed.json and OUT/speed.png (the soak over time) and prints the table.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from spiral_controller import make_controller
from tem_localizer import BeliefGrid, Localizer
from tem_localizer.localizer import resolve_device
from tem_localizer.tem import TEM2d
from treeworld_bringup.settings import Settings
from treeworld_sim import TreeWorld

LENGTHS = (1_000, 10_000, 36_000, 100_000)
SOAK_PATHS = {"random": "a random walk", "circle": "a circle lapped every 100 steps",
              "spiral": "a spiral"}
WINDOW = 1_000
BLOCK = 100     # steps the soak and the fresh localizer alongside it take in turn


def resident_bytes() -> int:
    """The process's resident set size now (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def fill(model: TEM2d, length: int, generator: torch.Generator) -> None:
    """Write ``length`` pairs: beliefs around random places, random smells."""
    chunk = 500
    for start in tqdm(range(0, length, chunk), desc=f"filling T={length}", leave=False):
        count = min(chunk, length - start)
        centres = (torch.rand(count, 2, generator=generator) * 800 - 400).to(model.device)
        beliefs = model.grid.initial_belief(centres)                       # (n, S, S)
        smells = torch.randn(count, model.smell_dim, generator=generator).to(model.device)
        for belief, smell in zip(beliefs, smells):
            model.memory.write(belief[None], smell[None])


def tem2d_latency(length: int, device: torch.device, repeats: int = 20) -> dict:
    """Median and p99 ms of a TEM2d step with ``length`` pairs stored, and their bytes."""
    generator = torch.Generator().manual_seed(0)
    grid = BeliefGrid(101, 1000.0)
    with torch.no_grad():
        model = TEM2d(grid, 1024, device=device, use_memory_to_localize=True)
        model.memory.initial_slots = length + 1
        model.memory.reset()
        fill(model, length, generator)
        belief, times = model.initial_belief(), []
        for _ in range(repeats):
            action = (torch.rand(1, 2, generator=generator) * 10).to(device)
            smell = torch.randn(1, 1024, generator=generator).to(device)
            synchronize(device)
            started = time.perf_counter()
            belief = model(belief, action, smell).belief
            synchronize(device)
            times.append((time.perf_counter() - started) * 1000)
            model.memory.length -= 1        # keep T fixed: forget the pair just written
    return {"median_ms": statistics.median(times), "p99_ms": float(np.percentile(times, 99)),
            "memory_bytes": model.memory.nbytes}


def timed_step(localizer: Localizer, action: np.ndarray, smell: np.ndarray) -> float:
    """ms of one localizer step."""
    started = time.perf_counter()
    localizer.step(action, smell)
    return (time.perf_counter() - started) * 1000


def walk(settings: Settings, steps: int):
    """The soak's inputs, (odometry since the last step, smell) per step."""
    world, controller = TreeWorld(settings.world), make_controller(settings.controller)
    last_odometry = world.odometry_position.copy()
    for step in range(steps):
        record = world.observe()
        yield record.odometry_position - last_odometry, record.smell
        last_odometry = record.odometry_position
        world.move(*controller(step))


def slam_soak(steps: int, device: str, seed: int = 0, alongside=(), path: str = "random"
              ) -> dict:
    """Latency and resident memory of the slam localizer over ``steps`` steps of the
    controller ``path`` (a key of SOAK_PATHS); in the windows ending at a step in
    ``alongside``, also the median of a fresh localizer's first WINDOW steps, taken in turns
    with the soak's (``first_steps_median_ms``)."""
    defaults = Settings()
    settings = Settings(
        dataclasses.replace(defaults.world, seed=seed, odometry_noise=1.0, steps=steps),
        dataclasses.replace(defaults.controller, controller=path, seed=seed),
        dataclasses.replace(defaults.localizer, method="slam", device=device))
    localizer, fresh = Localizer(settings.localizer), Localizer(settings.localizer)
    first_steps = list(walk(settings, min(WINDOW, steps)))
    for inputs in first_steps:           # once before measuring, so that its memory is not
        fresh.step(*inputs)              # counted as the soak's growth
    latencies, fresh_latencies = np.zeros(steps), []
    windows = []
    resident_before = resident_bytes()
    counters = localizer.slam.counters
    searched_before = closures_before = 0
    for step, inputs in enumerate(tqdm(walk(settings, steps), total=steps, desc="slam soak",
                                       unit="step", mininterval=1.0)):
        latencies[step] = timed_step(localizer, *inputs)
        if (step // WINDOW + 1) * WINDOW in alongside and (step + 1) % BLOCK == 0:
            within = (step + 1) % WINDOW or WINDOW        # soak steps taken in this window
            if within == BLOCK:
                fresh.reset()
            fresh_latencies += [timed_step(fresh, *first)
                                for first in first_steps[within - BLOCK:within]]
        if (step + 1) % WINDOW == 0:
            recent = latencies[step + 1 - WINDOW:step + 1]
            closures = sum(counters.accepted.values())
            windows.append({"stored_steps": step + 1, "median_ms": float(np.median(recent)),
                            "mean_ms": float(np.mean(recent)),
                            "p99_ms": float(np.percentile(recent, 99)),
                            "resident_bytes": resident_bytes() - resident_before,
                            "map_bytes": localizer.slam.places.nbytes,
                            # the share of the window's steps with something to test, and
                            # closing a loop: what a step's cost depends on
                            "searched": (counters.searched - searched_before) / WINDOW,
                            "closed": (closures - closures_before) / WINDOW})
            if fresh_latencies:
                windows[-1]["first_steps_median_ms"] = float(np.median(fresh_latencies))
                fresh_latencies = []
            searched_before, closures_before = counters.searched, closures
    return {"windows": windows, "steps": steps}


def speed(out: Path, lengths=LENGTHS, device: str = "cpu", tem2d_lengths=None,
          soak: bool = True, soak_path: str = "random") -> dict:
    """``soak=False`` times tem2d only (slam needs gtsam, which a bare PyTorch machine lacks);
    ``tem2d_lengths`` None: the same as ``lengths``, empty: slam only."""
    out.mkdir(parents=True, exist_ok=True)
    torch_device = resolve_device(device)
    tem2d = {length: tem2d_latency(length, torch_device)
             for length in (lengths if tem2d_lengths is None else tem2d_lengths)}
    windows = slam_soak(max(lengths), device, alongside=set(lengths), path=soak_path
                        )["windows"] if soak else []
    by_length = {w["stored_steps"]: w for w in windows}
    result = {"device": str(torch_device), "soak_path": soak_path, "tem2d": tem2d,
              "slam": {length: by_length[length] for length in lengths if length in by_length},
              "soak": windows}
    (out / "speed.json").write_text(json.dumps(result, indent=1) + "\n")
    if windows:
        plot_soak(windows, out / "speed.png", str(torch_device), SOAK_PATHS[soak_path])
    return result


def speed_table(result: dict) -> str:
    lines = ["| T (steps stored) | tem2d episodic: median / p99 ms, memory | "
             "slam: median / mean / p99 ms (the 1,000 steps before T), resident growth, map | "
             "slam: median at T / the first 1,000 steps' median alongside |",
             "| --- | --- | --- | --- |"]
    for length in sorted(set(result["tem2d"]) | set(result["slam"]), key=int):
        tem2d = result["tem2d"].get(length)
        slam = result["slam"].get(length)
        left = f"{tem2d['median_ms']:.1f} / {tem2d['p99_ms']:.1f}, " \
               f"{tem2d['memory_bytes'] / 1e6:,.0f} MB" if tem2d else "-"
        right = f"{slam['median_ms']:.2f} / {slam['mean_ms']:.2f} / {slam['p99_ms']:.1f}, " \
                f"{slam['resident_bytes'] / 1e6:,.0f} MB " \
                f"({slam['resident_bytes'] / int(length):,.0f} B/step), " \
                f"{slam['map_bytes'] / int(length):,.0f} B/step" if slam else "-"
        ratio = f"{slam['median_ms'] / slam['first_steps_median_ms']:.2f} " \
                f"({slam['first_steps_median_ms']:.2f} ms)" \
            if slam and "first_steps_median_ms" in slam else "-"
        lines.append(f"| {int(length):,} | {left} | {right} | {ratio} |")
    return "\n".join(lines)


def plot_soak(windows: list[dict], path: Path, device: str, soak_path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    stored = [w["stored_steps"] for w in windows]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    top.plot(stored, [w["median_ms"] for w in windows], label="median")
    top.plot(stored, [w["mean_ms"] for w in windows], label="mean")
    top.plot(stored, [w["p99_ms"] for w in windows], label="p99")
    alongside = [w for w in windows if "first_steps_median_ms" in w]
    top.plot([w["stored_steps"] for w in alongside],
             [w["first_steps_median_ms"] for w in alongside], "kx",
             label="median of the first 1,000 steps, re-run alongside")
    top.set_ylabel(f"slam step latency (ms, {device})")
    top.set_yscale("log")
    top.set_ylim(top=4 * max(w["p99_ms"] for w in windows))     # room for the legend
    # milliseconds read as 1, 2, 5, 10 rather than as powers of ten
    top.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    top.yaxis.set_major_formatter(ScalarFormatter())
    top.yaxis.set_minor_formatter(NullFormatter())
    top.legend(ncol=2, fontsize=8, loc="upper left")
    middle.plot(stored, [100 * w["searched"] for w in windows],
                label="with old places in the loop-closure gate")
    middle.plot(stored, [100 * w["closed"] for w in windows], label="closing a loop")
    middle.set_ylabel("steps (%)")
    middle.set_ylim(0, 105)
    middle.legend(loc="center right")
    bottom.plot(stored, [w["resident_bytes"] / 1e6 for w in windows], label="process growth")
    bottom.plot(stored, [w["map_bytes"] / 1e6 for w in windows], label="place map")
    bottom.set_ylabel("memory (MB)")
    bottom.set_xlabel("steps stored")
    bottom.legend()
    fig.suptitle(f"slam soak: {soak_path} with odometry noise 1.0 (treeworld bench speed)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="treeworld bench speed", description=__doc__)
    add_speed_options(parser)
    args = parser.parse_args(argv)
    result = speed(args.out, args.lengths, args.device, args.tem2d_lengths, not args.no_soak,
                   args.soak_path)
    print(speed_table(result))
    return 0


def add_speed_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("docs/bench"))
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--tem2d-lengths", type=int, nargs="*",
                        help="tem2d's lengths when they differ (its memory is 45 KB a step); "
                        "none given: slam only")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--no-soak", action="store_true", help="tem2d only (no gtsam needed)")
    parser.add_argument("--soak-path", choices=tuple(SOAK_PATHS), default="random",
                        help="the controller whose path slam's soak follows")


if __name__ == "__main__":
    raise SystemExit(main())
