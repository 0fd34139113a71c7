"""Benchmark: one TEM2d localizer step against memory length T (episodic memory).

    .venv/bin/python scripts/bench_localizer.py [--lengths 1000 10000 36000] [--device cpu]

S = 101, D = 1024, memory on (recall by smell + read + write), one agent. The memory is filled
with T synthetic (belief, smell) pairs, then steps are timed. Also times a read from the
constant-size accumulator form, the alternative a later change can switch to.
Prints median ms/step and the memory's bytes (float32).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from tqdm import tqdm

from tem_localizer import BeliefGrid
from tem_localizer.memory import AccumulatedMemory
from tem_localizer.tem import TEM2d


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def fill(model: TEM2d, length: int, generator: torch.Generator) -> None:
    """Write ``length`` pairs: beliefs around random places, random smells."""
    chunk = 500
    memory = model.memory
    for start in tqdm(range(0, length, chunk), desc=f"filling T={length}", leave=False):
        count = min(chunk, length - start)
        centres = (torch.rand(count, 2, generator=generator) * 800 - 400).to(model.device)
        beliefs = model.grid.initial_belief(centres)                       # (n, S, S)
        smells = torch.randn(count, model.smell_dim, generator=generator).to(model.device)
        for belief, smell in zip(beliefs, smells):
            memory.write(belief[None], smell[None])


def time_steps(model: TEM2d, repeats: int, generator: torch.Generator) -> list[float]:
    belief = model.initial_belief()
    times = []
    for _ in range(repeats):
        action = (torch.rand(1, 2, generator=generator) * 10).to(model.device)
        smell = torch.randn(1, model.smell_dim, generator=generator).to(model.device)
        synchronize(model.device)
        started = time.perf_counter()
        belief = model(belief, action, smell).belief
        synchronize(model.device)
        times.append((time.perf_counter() - started) * 1000)
        model.memory.length -= 1           # keep T fixed: forget the pair just written
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1000, 10_000, 36_000])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    grid = BeliefGrid(101, 1000.0)
    generator = torch.Generator().manual_seed(0)
    print(f"device {device}, S=101, D=1024, torch threads {torch.get_num_threads()}")
    print(f"{'T':>7s} {'median ms/step':>15s} {'p90 ms':>8s} {'memory MB':>10s}")
    with torch.no_grad():
        for length in args.lengths:
            model = TEM2d(grid, 1024, device=device, use_memory_to_localize=True)
            model.memory.initial_slots = length + 1
            model.memory.reset()
            fill(model, length, generator)
            times = sorted(time_steps(model, args.repeats, generator))
            print(f"{length:7d} {statistics.median(times):15.1f} "
                  f"{times[int(0.9 * (len(times) - 1))]:8.1f} {model.memory.nbytes / 1e6:10.0f}")
            del model
        accumulated = AccumulatedMemory(1, 101, 1024, device=device)
        query = grid.initial_belief(torch.zeros(1, 2, device=device))
        accumulated.write(query, torch.randn(1, 1024, device=device))
        reads = []
        for _ in range(args.repeats):
            synchronize(device)
            started = time.perf_counter()
            accumulated.read(query)
            synchronize(device)
            reads.append((time.perf_counter() - started) * 1000)
        size = (accumulated.belief_smell.numel() + accumulated.belief_total.numel()) * 4
        print(f"accumulator read (any T): median {statistics.median(reads):.1f} ms, "
              f"{size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
