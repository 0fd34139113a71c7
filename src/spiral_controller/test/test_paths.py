import math

import numpy as np
import pytest

from spiral_controller import ControllerConfig, PathFileError, load_path_file, make_controller
from spiral_controller.paths import Circle, RandomExploration, Spiral


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
