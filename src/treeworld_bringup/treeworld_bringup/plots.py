"""Pictures of a run: the world and paths, error and loss over time, the belief animation."""
from __future__ import annotations

import shutil
from io import BytesIO
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.animation import AbstractMovieWriter, FFMpegWriter, FuncAnimation  # noqa: E402
from PIL import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

from treeworld_bringup.evaluation import errors_over_time  # noqa: E402
from treeworld_bringup.recording import Recording, Scene  # noqa: E402


class DrawingStopped(Exception):
    """Raised from inside a long drawing when its caller asked it to stop."""


class PaletteGifWriter(AbstractMovieWriter):
    """A GIF writer that reduces each frame to 256 colours as it is drawn. matplotlib's
    PillowWriter holds every frame as full-colour pixels until the end: a 30,000-step
    ``treeworld run --gif`` (500 frames) peaked at 1.31 GB with it, 1.01 with this one (0.83
    without ``--gif``), and the GIF is the same byte for byte."""

    def setup(self, fig, outfile, dpi=None):
        super().setup(fig, outfile, dpi=dpi)
        self.frames: list[Image.Image] = []

    def grab_frame(self, **savefig_kwargs):
        pixels = BytesIO()
        self.fig.savefig(pixels, **{**savefig_kwargs, "format": "rgba", "dpi": self.dpi})
        frame = Image.frombuffer("RGBA", self.frame_size, pixels.getbuffer(), "raw", "RGBA", 0, 1)
        self.frames.append(frame.convert("RGB").quantize(256))

    def finish(self):
        self.frames[0].save(self.outfile, save_all=True, append_images=self.frames[1:],
                            duration=int(1000 / self.fps), loop=0)


def _draw_trees(ax, scene: Scene) -> None:
    edible = ~scene.tree_poisonous
    ax.scatter(*scene.tree_positions[edible].T, c="tab:green", marker="o", s=40,
               edgecolors="k", linewidths=0.5, label="edible tree", zorder=3)
    ax.scatter(*scene.tree_positions[~edible].T, c="tab:red", marker="X", s=50,
               label="poisonous tree", zorder=3)


def plot_world(file: Path, recording: Recording, scene: Scene, title: str) -> None:
    fig, ax = plt.subplots(figsize=(9, 7))
    _draw_trees(ax, scene)
    truth = recording.true_positions
    if truth is not None:
        ax.plot(*truth.T, color="tab:blue", lw=1.2, label="true path")
    if recording.estimates is not None:
        ax.plot(*recording.estimates.T, color="tab:orange", lw=1.2, ls="--",
                label="estimate at the time")
    if recording.corrected is not None:
        ax.plot(*recording.corrected.T, color="tab:purple", lw=1.0, ls=":",
                label="as corrected by the end")
    path = truth if truth is not None else recording.estimates
    ax.plot(*path[0], "ks", ms=8, label="start")
    ax.plot(*path[-1], "k*", ms=14, label="end")
    ax.set_aspect("equal")
    ax.set_xlabel("x (world units)")
    ax.set_ylabel("y (world units)")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(file, dpi=100)
    plt.close(fig)


def plot_error(path: Path, recording: Recording, cell_size: float, title: str,
               baseline: Recording | None = None) -> None:
    fig, ax = plt.subplots(figsize=(8, 4))
    steps = np.arange(recording.steps)
    ax.plot(steps, errors_over_time(recording.true_positions, recording.estimates),
            label="estimate at the time")
    if recording.corrected is not None:
        ax.plot(steps, errors_over_time(recording.true_positions, recording.corrected),
                label="as corrected by the end", alpha=0.8)
    if baseline is not None:
        ax.plot(np.arange(baseline.steps),
                errors_over_time(baseline.true_positions, baseline.estimates),
                label="dead reckoning", alpha=0.8)
    ax.axhline(cell_size, color="gray", ls=":", label=f"one cell ({cell_size:g})")
    ax.set_xlabel("step")
    ax.set_ylabel("position error (world units)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_loss(path: Path, recording: Recording, title: str) -> None:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(np.arange(recording.steps), recording.losses, lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("TEM loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def animate_belief(path: Path, recording: Recording, scene: Scene, title: str,
                   interrupted: Callable[[], bool] = lambda: False) -> None:
    """GIF of the belief (each frame scaled to its own peak), origin at the bottom left, with
    the true position and the trees on top; also an MP4 beside it when ffmpeg is installed.
    Raises DrawingStopped, leaving neither file, once ``interrupted()`` is true."""
    frames = recording.belief_frames
    rows = recording.belief_rows if recording.belief_rows is not None else \
        np.arange(len(frames)) * recording.belief_stride
    size = frames.shape[-1]
    span = recording.grid_extent * size / (size - 1)        # corner to corner
    origins = recording.belief_origins if recording.belief_origins is not None else \
        np.full((len(frames), 2), -span / 2)

    def extent(index: int) -> list[float]:
        x, y = origins[index]
        return [x, x + span, y, y + span]

    fig, ax = plt.subplots(figsize=(6, 6))
    image = ax.imshow(frames[0], extent=extent(0), origin="lower",
                      cmap="viridis", interpolation="nearest", vmin=0, vmax=1)
    _draw_trees(ax, scene)
    marked = recording.true_positions if recording.true_positions is not None \
        else recording.estimates
    label = "true position" if recording.true_positions is not None else "estimate"
    agent, = ax.plot([], [], "o", color="white", mec="red", mew=2, ms=7, label=label)
    ax.set_xlim(*extent(0)[:2])
    ax.set_ylim(*extent(0)[2:])
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(loc="upper right", fontsize=7)

    # a few frames a second: a long run's GIF takes a minute
    bar = tqdm(total=len(frames), desc="drawing belief.gif", unit="frame", mininterval=0.5,
               leave=False)

    def update(index: int):
        if interrupted():
            raise DrawingStopped
        bar.update(max(0, index + 1 - bar.n))      # the first frame is drawn twice
        frame = frames[index]
        image.set_data(frame / max(float(frame.max()), 1e-30))
        image.set_extent(extent(index))
        ax.set_xlim(*extent(index)[:2])
        ax.set_ylim(*extent(index)[2:])
        row = int(rows[index])
        agent.set_data([marked[row, 0]], [marked[row, 1]])
        health = f", health {recording.health[row]:.0f}" \
            if recording.health is not None and row < len(recording.health) else ""
        ax.set_title(f"{title}: belief at {recording.timestamps[row]:.1f} s{health}",
                     fontsize=9)
        return image, agent

    try:
        animation = FuncAnimation(fig, update, frames=len(frames), blit=False)
        animation.save(str(path), writer=PaletteGifWriter(fps=15), dpi=75)
        if shutil.which("ffmpeg"):
            animation.save(str(path.with_suffix(".mp4")), writer=FFMpegWriter(fps=15),
                           dpi=100)
    except DrawingStopped:
        # the writers finish what they have on the way out: a GIF of the frames so far
        path.unlink(missing_ok=True)
        path.with_suffix(".mp4").unlink(missing_ok=True)
        raise
    finally:
        bar.close()
        plt.close(fig)


def plot_rviz_view(path: Path, belief: np.ndarray, origin: tuple[float, float],
                   resolution: float, recording: Recording, scene: Scene,
                   covariance: np.ndarray) -> None:
    """What RViz shows with config/treeworld.rviz, drawn from the same messages: the
    OccupancyGrid belief (0..100), trees, true and estimated paths, the pose covariance
    (2-sigma ellipse)."""
    size = belief.shape[0]
    extent = [origin[0], origin[0] + size * resolution, origin[1], origin[1] + size * resolution]
    fig, ax = plt.subplots(figsize=(8, 8), facecolor="#1e1e1e")
    ax.set_facecolor("#1e1e1e")
    ax.imshow(np.ma.masked_equal(belief, 0), extent=extent, origin="lower", cmap="plasma",
              vmin=0, vmax=100, interpolation="nearest", alpha=0.9)
    _draw_trees(ax, scene)
    ax.plot(*recording.true_positions.T, color="#2878ff", lw=1.2, label="/ground_truth/odom")
    ax.plot(*recording.estimates.T, color="#ffa000", lw=1.2, ls="--", label="/tem/path")
    mean = recording.estimates[-1]
    values, vectors = np.linalg.eigh(covariance)
    angles = np.linspace(0, 2 * np.pi, 100)
    ellipse = (vectors @ (2 * np.sqrt(np.maximum(values, 0))[:, None]
                          * np.stack([np.cos(angles), np.sin(angles)]))).T + mean
    ax.plot(*ellipse.T, color="#ffa000", lw=1.5, label="/tem/pose (2 sigma)")
    ax.plot(*mean, "o", color="#ffa000")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.tick_params(colors="white")
    for spine in ax.spines.values():
        spine.set_color("gray")
    ax.set_title(f"RViz view (fixed frame map): /tem/belief at step {recording.steps - 1}",
                 color="white")
    ax.legend(loc="upper left", fontsize=8, facecolor="#333333", labelcolor="white")
    fig.tight_layout()
    fig.savefig(path, dpi=100, facecolor=fig.get_facecolor())
    plt.close(fig)


def plot_camera_views(path: Path, scene: Scene, views: list[tuple], title: str) -> None:
    """The world with the agent at a few steps (arrows: its heading) and what its panoramic
    camera saw there; ``views`` holds (step, position, heading, image)."""
    fig = plt.figure(figsize=(12, 1.6 * len(views) + 1.5))
    grid = fig.add_gridspec(len(views), 2, width_ratios=(1, 2.2))
    world = fig.add_subplot(grid[:, 0])
    _draw_trees(world, scene)
    for step, position, heading, _ in views:
        world.arrow(*position, *(40 * heading), width=4, color="k", zorder=4)
        world.annotate(f"step {step}", position, textcoords="offset points", xytext=(6, -12),
                       fontsize=8)
    world.set_aspect("equal")
    world.set_title(title, fontsize=9)
    world.grid(alpha=0.3)
    for row, (step, _, _, image) in enumerate(views):
        ax = fig.add_subplot(grid[row, 1])
        ax.imshow(image, aspect="auto", interpolation="nearest")
        width = image.shape[1]
        ax.set_xticks([0, width / 4, width / 2, 3 * width / 4, width],
                      ["behind", "left", "ahead", "right", "behind"], fontsize=8)
        ax.set_yticks([])
        ax.set_title(f"step {step}", fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
