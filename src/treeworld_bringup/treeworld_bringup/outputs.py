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
                 pictures: list[tuple[str, Callable[[Path], None]]] = (),
                 base_metrics: dict | None = None,
                 interrupted: Callable[[], bool] = lambda: False) -> dict:
    """Write ground_truth.tum, estimate.tum, metrics.json, world.png, error.png, loss.png and
    belief.gif (as far as the recording has them) into ``out``; returns the metrics.
    ``baseline`` (e.g. dead reckoning) is drawn beside the estimate's error; ``extras`` and
    ``pictures`` are (name, write(path)) pairs for further data and pictures; ``base_metrics``
    are metrics that the recording's own evaluation updates. The data comes first; once
    ``interrupted()`` is true, the pictures not yet drawn are skipped (drawing a long run's
    belief.gif takes up to a minute, and whoever pressed Ctrl-C does not want to wait for it, but
    still wants the run) and named in the metrics as ``pictures_not_drawn``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    metrics = (base_metrics or {}) | compute_metrics(recording) | (extra_metrics or {})
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        has_truth = recording.true_positions is not None and recording.steps > 0
        has_estimate = recording.estimates is not None and recording.steps > 0
        if has_truth:
            write_tum(staging / "ground_truth.tum", recording.timestamps,
                      recording.true_positions)
        if has_estimate:
            write_tum(staging / "estimate.tum", recording.timestamps, recording.estimates)
            if recording.corrected is not None:
                write_tum(staging / "corrected.tum", recording.timestamps, recording.corrected)
        (staging / "scene.json").write_text(json.dumps(scene_to_json(scene)) + "\n")
        for name, write in extras:
            write(staging / name)
        to_draw = list(pictures)
        if recording.steps:
            to_draw.insert(0, ("world.png", lambda path: plots.plot_world(path, recording,
                                                                         scene, title)))
        if has_estimate and has_truth:
            to_draw.append(("error.png", lambda path: plots.plot_error(
                path, recording, cell_size, title, baseline)))
        if recording.losses is not None and np.isfinite(recording.losses).any():
            to_draw.append(("loss.png", lambda path: plots.plot_loss(path, recording, title)))
        if gif and recording.belief_frames is not None:
            to_draw.append(("belief.gif", lambda path: plots.animate_belief(
                path, recording, scene, title, interrupted)))
        skipped = []
        for name, draw in to_draw:
            try:
                if interrupted():
                    raise plots.DrawingStopped
                draw(staging / name)
            except plots.DrawingStopped:
                skipped.append(name)
        if skipped:
            metrics["pictures_not_drawn"] = skipped
        (staging / "metrics.json").write_text(json.dumps(_json_ready(metrics), indent=2) + "\n")
        out.mkdir(exist_ok=True)
        for name in skipped:             # an earlier run's picture would pass for this one's
            (out / name).unlink(missing_ok=True)
        for item in staging.iterdir():
            target = out / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)        # a bag or logs folder from an earlier run
            os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return metrics
