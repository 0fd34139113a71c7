"""Every setting of the localizer, with its default, unit and allowed range.

The science behind them: docs/design.md §4-§7.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from treeworld_schema import setting


def grid_cell_size(extent: float, size: int) -> float:
    """gamma: world units per cell of a belief grid of ``size`` cells per side spanning
    ``extent`` (cell centres on both edges: ``size`` - 1 cells across)."""
    return extent / (size - 1)


class DeviceUnavailable(RuntimeError):
    """The configured ``device`` (CUDA) is not present."""


@dataclass(frozen=True)
class LocalizerConfig:
    """How the agent localizes from odometry and smell. World units, cells, steps."""

    method: str = setting("slam", "tem2d (belief grid + memory), slam (belief grid + smell "
                          "map + pose graph that corrects the past) or deadreckoning (sum of "
                          "measured displacements, the baseline)",
                          choices=("tem2d", "slam", "deadreckoning"))
    grid_size: int = setting(101, "S: belief grid cells per side", low=3, high=1001, odd=True)
    extent: float = setting(1000.0, "E: world units across the belief grid", low=0.0,
                            low_exclusive=True)
    sensory_embedding_dim: int = setting(1024, "D: expected smell length", low=1,
                                         high=65_536)
    max_action_norm: float = setting(20.0, "Largest displacement per step; larger ones are "
                                     "clipped (world units)", low=0.0, low_exclusive=True)
    use_memory_to_localize: bool = setting(True, "Mix beliefs recalled from memory by smell "
                                           "into path integration")
    mixing: str = setting("average", "average (the seed's code) or affinity (weight c^k)",
                          choices=("average", "affinity"))
    affinity_exponent: float = setting(20.0, "k of the affinity mixing", low=0.0)
    sharpen_exponent: float = setting(1.05, "belief <- belief^e after each step", low=1.0,
                                      high=4.0)
    memory_capacity: int = setting(
        1000, "Pairs of (belief, smell) the memory keeps, the newest; older ones are "
        "forgotten so a step costs the same at any run length. 0 = keep all (cost grows with "
        "the run)", low=0)
    num_samples: int = setting(25, "Beliefs drawn per memory recall", low=1, high=10_000)
    reference_match_threshold: float = setting(
        0.01, "Recall only entries whose affinity to the previous belief is at least this "
        "share of the largest", low=0.0, high=1.0)
    sample_temperature: float = setting(0.0, "Softmax temperature of recall; 0 = sqrt(D)",
                                        low=0.0)
    read_threshold: float = setting(2.0, "Memory read ignores affinities below this / S^2",
                                    low=0.0)
    kernel_blur_sigma: float = setting(0.0, "Gaussian blur of the translation kernel (cells); "
                                       "0 = off", low=0.0, high=10.0)
    learn_action_map: bool = setting(
        False, "Learn how actions move the agent: tem2d trains a 2x2 map applied to actions; "
        "slam (with heading_window_steps) fits odometry's scale (a wheel radius that is off) "
        "against a loaded map's loop closures")
    train_every: int = setting(100, "Optimizer step every this many steps (when the model has "
                               "parameters)", low=1)
    learning_rate: float = setting(1e-3, "Adam learning rate", low=0.0, low_exclusive=True)
    lost_mass: float = setting(1e-3, "When less than this share of the belief stays on the "
                               "grid after path integration, the localizer is lost and "
                               "restarts around its dead-reckoned position",
                               low=0.0, high=1.0)
    device: str = setting("auto", "auto (CUDA when present) | cpu | cuda",
                          choices=("auto", "cpu", "cuda"))
    seed: int = setting(0, "Seed of memory sampling", low=0)
    cpu_threads: int = setting(
        1, "PyTorch threads on the CPU, for the whole process; 0 = PyTorch's default (one per "
        "core). A step's tensors are small, and other nodes share the cores", low=0)
    action_source: str = setting(
        "odom", "ROS node: odom (displacement between consecutive /odom poses) or cmd_vel "
        "(latest commanded velocity x time since the last step)", choices=("odom", "cmd_vel"))
    odom_frame: str = setting("odom", "ROS node: expected frame_id of /odom")
    smell_frame: str = setting("map", "ROS node: expected frame_id of /smell")
    observation: str = setting(
        "smell", "What the localizer recognizes places by: smell (/smell, D floats) or camera "
        "(/camera/image_raw or .../compressed, encoded to D numbers)", choices=("smell", "camera"))
    camera_transport: str = setting(
        "raw", "camera: raw (sensor_msgs/Image: rgb8, bgr8, mono8, 32FC1 on /camera/image_raw) "
        "or compressed (sensor_msgs/CompressedImage: JPEG, PNG on "
        "/camera/image_raw/compressed)", choices=("raw", "compressed"))
    camera_frame: str = setting("base_link", "camera: expected frame_id of the images")
    camera_encoder: str = setting(
        "pixels", "camera: pixels (area-averaged pixels) or mobilenet (torchvision "
        "mobilenet_v3_small's first 7 blocks: features at stride 16), then a fixed random "
        "projection to D",
        choices=("pixels", "mobilenet"))
    camera_weights: str = setting(
        "", "camera, mobilenet: a state_dict file of torchvision's mobilenet_v3_small; empty: "
        "fixed weights from the seed (nothing is downloaded)")
    camera_rows: int = setting(16, "camera: images are resized to this many rows", low=2,
                               high=1024)
    camera_columns: int = setting(128, "camera: ... and this many columns", low=4, high=4096)
    camera_panoramic: bool = setting(
        True, "camera: the image spans 360 degrees, columns from behind-left through ahead to "
        "behind-right (the simulator's): it is turned by the odometry heading so a place looks "
        "the same from any heading")
    odometry_sigma: float = setting(
        1.0, "slam: odometry noise per axis per step the pose graph assumes (world units)",
        low=0.0, low_exclusive=True)
    keyframe_every: int = setting(4, "slam: steps per pose-graph keyframe", low=1, high=1000)
    graph_window_steps: int = setting(
        2400, "slam: the newest this many steps stay in the optimizer; older keyframes settle "
        "(fixed) so a step costs the same at any run length", low=8)
    heading_window_steps: int = setting(
        0, "slam: fit how far the odometry frame is turned in the map over this many newest "
        "steps and turn odometry by it (wheel odometry whose heading drifts: 100); 0 = off, "
        "odometry's heading is taken as it is", low=0)
    smell_code_dim: int = setting(32, "slam: length of the smell code kept per step", low=2,
                                  high=1024)
    closure_exclude_steps: int = setting(
        60, "slam: the newest this many steps are never loop-closure candidates", low=10)
    closure_max_gate: float = setting(
        60.0, "slam: widest search radius for loop closures (world units)", low=0.0,
        low_exclusive=True)
    closure_min_strength: float = setting(
        5.0, "slam: smell codes weaker than this (far from every tree) are not matched",
        low=0.0)
    closure_min_gradient: float = setting(
        0.15, "slam: smell change per world unit below which a stretch is too flat to match",
        low=0.0)
    closure_tolerance: float = setting(
        0.2, "slam: how closely smells must match (code distance; for a retrace, per world "
        "unit of travel)", low=0.0, low_exclusive=True)
    closure_min_crossing_sine: float = setting(
        0.3, "slam: paths must cross at an angle with this sine, in the world and in smell",
        low=0.0, high=1.0)
    map_file: str = setting(
        "", "ROS node, slam: where ~/save_map writes the map and ~/load_map reads it")
    start_in_map: bool = setting(
        False, "ROS node, slam: start in the map at map_file (the agent first finds itself "
        "in it)")
    save_map_on_exit: bool = setting(
        False, "ROS node, slam: write the map to map_file when the node shuts down (Ctrl-C, "
        "the end of a launch), so the map outlives the run; not when no step was localized")
    answer_recalls: bool = setting(
        False, "ROS node, slam: answer the forager's requests for where its anchor steps are "
        "now, each with the map after that step, and handle a step only once the request of "
        "the step before has come (the launchers set it for a forager on slam)")
    max_odometry_jump: float = setting(
        100.0, "Consecutive odometry poses (/odom; in-process, the simulator's) farther apart "
        "than this (world units) are an odometry reset (a driver restart): the localizer "
        "re-anchors on the new pose instead of moving, and counts it. 0 = never", low=0.0)
    max_input_age: float = setting(
        0.0, "ROS node: a step older than this (seconds behind the node's clock) when it "
        "completes is a late frame: its motion is integrated, its smell dropped and counted. "
        "0 = never (lockstep needs none); set it for live robots", low=0.0)
    path_publish_every: int = setting(
        10, "ROS node: publish /tem/path every this many steps (and when input pauses)", low=1)
    path_max_poses: int = setting(
        1000, "ROS node: /tem/path holds at most this many poses, evenly spaced over the run",
        low=2, high=100_000)

    @property
    def cell_size(self) -> float:
        """World units per belief-grid cell, for code that needs the grid's scale but not the
        grid (grid.BeliefGrid loads torch)."""
        return grid_cell_size(self.extent, self.grid_size)

    @property
    def keeps_belief_grid(self) -> bool:
        """Whether the method has a belief grid (and the node publishes /tem/belief)."""
        return self.method != "deadreckoning"

    def check(self) -> None:
        from treeworld_schema import ConfigError

        if self.start_in_map and not self.map_file:
            raise ConfigError("map_file: start_in_map needs a map file")
        if self.save_map_on_exit and not self.map_file:
            raise ConfigError("map_file: save_map_on_exit needs a map file")
        if self.method == "slam" and self.learn_action_map and not self.heading_window_steps:
            raise ConfigError("learn_action_map: slam fits odometry's scale over "
                              "heading_window_steps, which is 0")
        if self.camera_weights and not Path(self.camera_weights).is_file():
            raise ConfigError(f"camera_weights: no such file {self.camera_weights!r}")
