"""Write a run's report: TUM trajectories, metrics.json and pictures, all or nothing.

Everything is written into a temporary folder beside ``out`` and moved in at the end, so an
interrupted or failed run never leaves half a report.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from treeworld_bringup import plots
from treeworld_bringup.evaluation import evaluate, write_tum
from treeworld_bringup.recording import Recording, Scene, scene_to_json


def compute_metrics(recording: Recording) -> dict:
    """World figures, and with an estimate, its ATE/RPE and loss statistics."""
    metrics = {"steps": recording.steps} | recording.summary
    has_truth = recording.true_positions is not None
    if has_truth and recording.estimates is not None and recording.steps > 1:
        metrics |= evaluate(recording.timestamps, recording.true_positions,
                            recording.estimates)
        if recording.corrected is not None:
            corrected = evaluate(recording.timestamps, recording.true_positions,
                                 recording.corrected)
            metrics |= {"ate_rmse_corrected": corrected["ate_rmse"],
                        "max_error_corrected": corrected["max_error"]}
    losses = recording.losses[np.isfinite(recording.losses)] \
        if recording.losses is not None else np.array([])
    if losses.size:
        metrics |= {"mean_loss": float(losses.mean()), "min_loss": float(losses.min()),
                    "max_loss": float(losses.max())}
    return metrics


def _json_ready(value):
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_report(out: Path, recording: Recording, scene: Scene, title: str, cell_size: float,
                 extra_metrics: dict | None = None, gif: bool = True,
                 baseline: Recording | None = None,
                 extras: list[tuple[str, Callable[[Path], None]]] = (),
                 base_metrics: dict | None = None) -> dict:
    """Write ground_truth.tum, estimate.tum, metrics.json, world.png, error.png, loss.png and
    belief.gif (as far as the recording has them) into ``out``; returns the metrics.
    ``baseline`` (e.g. dead reckoning) is drawn beside the estimate's error; ``extras`` are
    (name, write(path)) pairs for further files or folders; ``base_metrics`` are metrics that
    the recording's own evaluation updates."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    metrics = (base_metrics or {}) | compute_metrics(recording) | (extra_metrics or {})
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        has_truth = recording.true_positions is not None and recording.steps > 0
        if has_truth:
            write_tum(staging / "ground_truth.tum", recording.timestamps,
                      recording.true_positions)
        if recording.steps:
            plots.plot_world(staging / "world.png", recording, scene, title)
        if recording.estimates is not None and recording.steps:
            write_tum(staging / "estimate.tum", recording.timestamps, recording.estimates)
            if recording.corrected is not None:
                write_tum(staging / "corrected.tum", recording.timestamps, recording.corrected)
            if has_truth:
                plots.plot_error(staging / "error.png", recording, cell_size, title, baseline)
        if recording.losses is not None and np.isfinite(recording.losses).any():
            plots.plot_loss(staging / "loss.png", recording, title)
        if gif and recording.belief_frames is not None:
            plots.animate_belief(staging / "belief.gif", recording, scene, title)
        (staging / "scene.json").write_text(json.dumps(scene_to_json(scene)) + "\n")
        for name, write in extras:
            write(staging / name)
        (staging / "metrics.json").write_text(json.dumps(_json_ready(metrics), indent=2) + "\n")
        out.mkdir(exist_ok=True)
        for item in staging.iterdir():
            target = out / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)        # a bag or logs folder from an earlier run
            os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return metrics
