import dataclasses
import math

import numpy as np
import pytest

from spiral_controller import (
    ControllerConfig,
    PathFileError,
    load_path_file,
    make_controller,
    senses,
)
from spiral_controller.drive import DiffDrive
from spiral_controller.paths import Circle, RandomExploration, RecordedPath, Spiral
from treeworld_sim import TreeWorld, WorldConfig


def drive(controller, steps):
    position, total = np.zeros(2), 0.0
    positions = []
    for step in range(steps):
        positions.append(position.copy())
        displacement, heading = controller(step)
        assert abs(np.hypot(*heading) - 1.0) < 1e-9 or not heading.any()
        position = position + displacement
        total += float(np.hypot(*displacement))
    return np.array(positions), position, total


def test_spiral_matches_the_seed():
    _, final, total = drive(Spiral(), 1000)
    assert round(total, 2) == 7863.29
    assert math.isclose(np.hypot(*final), 250.0, abs_tol=1e-9)


def test_the_spiral_goes_on_at_its_top_speed_along_the_same_curve():
    """The seed's spiral moves 157 units a step by step 10,000, which a launched localizer
    took as an odometry reset every step (its estimate stood still: ATE 1,245, where the
    in-process run, which then integrated every step, had 59). Past spiral_max_step it keeps
    the curve and that speed."""
    positions, final, _ = drive(Spiral(), 10_001)
    steps = np.hypot(*np.diff(positions, axis=0).T)
    np.testing.assert_array_equal(positions[:1001], drive(Spiral(max_step=0), 1001)[0])
    assert steps.max() <= 16.0 and steps[1019:].min() > 15.99   # chords of a 16-unit arc
    radius = np.hypot(*positions.T)
    angle = np.unwrap(np.arctan2(positions[:, 1], positions[:, 0]))
    np.testing.assert_allclose(radius, 25 / (2 * math.pi) * angle, atol=1e-6)
    assert 1099 < radius[-1] < 1100                     # the seed's path: 2,500 from the origin
    assert math.isclose(np.hypot(*drive(Spiral(max_step=0), 10_000)[1]), 2500.0, abs_tol=1e-6)
    # a top speed below the spiral's slowest: at that speed from the first step
    slow = np.hypot(*np.diff(drive(Spiral(max_step=0.1), 200)[0], axis=0).T)
    np.testing.assert_allclose(slow, 0.1, rtol=1e-3)


def test_circle_matches_the_seed():
    _, final, total = drive(Circle(), 1000)
    assert round(total, 2) == 6282.15
    assert np.hypot(*final) < 1e-9


def test_spiral_heading_turns_with_its_own_period():
    spiral = Spiral()
    for step, angle in [(0, 0.0), (25, 0.0), (30, 2 * math.pi * 5 / 25)]:
        displacement, heading = spiral(step)
        np.testing.assert_allclose(heading, [math.cos(angle), math.sin(angle)], atol=1e-12)
    displacement, heading = spiral(30)
    assert abs(np.dot(displacement / np.hypot(*displacement), heading)) < 0.99


def test_random_exploration_is_seeded_smooth_and_bounded():
    a, _, _ = drive(RandomExploration(seed=3), 2000)
    b, _, _ = drive(RandomExploration(seed=3), 2000)
    c, _, _ = drive(RandomExploration(seed=4), 2000)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.hypot(*a.T).max() < 400.0 * 1.5
    steps = np.diff(a, axis=0)
    turn = np.abs(np.diff(np.unwrap(np.arctan2(steps[:, 1], steps[:, 0]))))
    assert np.median(turn) < 0.5   # smooth: no jumps in direction from step to step


def test_recorded_path_is_followed_from_the_origin(tmp_path):
    tum = tmp_path / "path.tum"
    tum.write_text("# t x y z qx qy qz qw\n0 10 10 0 0 0 0 1\n1 13 14 0 0 0 0 1\n"
                   "2 13 20 0 0 0 0 1\n")
    controller = make_controller(ControllerConfig(controller="path", path_file=str(tum)))
    positions, final, _ = drive(controller, 5)
    np.testing.assert_allclose(positions[:3], [[0, 0], [3, 4], [3, 10]])
    np.testing.assert_allclose(final, [3, 10])    # rests after the path ends


def test_csv_path_with_header(tmp_path):
    csv = tmp_path / "path.csv"
    csv.write_text("t,x,y\n0,0,0\n1,1,2\n")
    np.testing.assert_allclose(load_path_file(csv), [[0, 0], [1, 2]])


@pytest.mark.parametrize("text, message", [
    ("0 0 0 0 0 0 0 1\n1 nan 0 0 0 0 0 1\n", ":2: NaN or infinite"),
    ("0,0,0\n1,2\n", ":2: expected"),
    ("0,0,0\n", "at least 2 poses"),
    ("0,0,0\n1,x,0\n", ":2: not a number"),
])
def test_bad_path_files_name_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(PathFileError, match=message) as error:
        load_path_file(path)
    assert str(path) in str(error.value)


def test_unreadable_path_file(tmp_path):
    with pytest.raises(PathFileError, match="cannot read"):
        load_path_file(tmp_path / "missing.tum")


def drive_along(controller, steps: int) -> np.ndarray:
    """The positions a differential-drive base reaches under ``controller`` (exact motion)."""
    world = TreeWorld(WorldConfig(num_trees=1, sensory_embedding_dim=8))
    positions = []
    for step in range(steps):
        world.drive(*controller(step))
        positions.append(world.position)
    return np.array(positions)


def test_the_diff_drive_circle_follows_the_holonomic_one():
    config = ControllerConfig(controller="circle", motion="diff_drive")
    holonomic = make_controller(dataclasses.replace(config, motion="holonomic"))
    wanted = np.cumsum([holonomic(step)[0] for step in range(300)], axis=0)
    driven = drive_along(make_controller(config), 300)
    # the first turn is from the start heading to the circle's tangent; after that the base
    # stays on the circle
    assert np.hypot(*(driven - wanted)[100:].T).max() < 1.0


def test_diff_drive_turns_at_most_max_turn_and_makes_up_the_lag():
    """A square path has right-angle corners: the base cannot take them in one step, falls
    behind, and catches up on the straight that follows; it never drives backwards."""
    corners = np.array([[0, 0], [200, 0], [200, 200], [0, 200], [0, 0]], dtype=float)
    square = np.concatenate([np.linspace(a, b, 40, endpoint=False)
                             for a, b in zip(corners[:-1], corners[1:])] + [corners[-1:]])
    follower = DiffDrive(RecordedPath(square), max_turn=0.3, pursue=True)
    forward, turn = np.array([follower(step) for step in range(len(square) + 40)]).T
    assert np.abs(turn).max() <= 0.3 + 1e-12 and forward.min() >= 0.0
    driven = drive_along(DiffDrive(RecordedPath(square), max_turn=0.3, pursue=True),
                         len(square) + 40)
    assert np.hypot(*driven[-1]) < 1.0          # back at the start once the path has ended


def test_the_diff_drive_form_of_the_forager_still_senses():
    follower = make_controller(ControllerConfig(controller="forage", motion="diff_drive"))
    assert isinstance(follower, DiffDrive) and senses(follower) and not follower.pursue
    assert not senses(make_controller(ControllerConfig(controller="circle",
                                                       motion="diff_drive")))
