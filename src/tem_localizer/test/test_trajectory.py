import pytest

from tem_localizer.trajectory import BoundedTrajectory


def test_short_runs_keep_every_pose():
    path = BoundedTrajectory(max_poses=10)
    for step in range(7):
        path.append(step)
    assert path.poses() == list(range(7))


def test_long_runs_stay_bounded_span_the_run_and_end_at_the_newest():
    path = BoundedTrajectory(max_poses=100)
    for step in range(100_000):
        path.append(step)
        assert len(path.poses()) <= 101
    poses = path.poses()
    assert poses[0] == 0 and poses[-1] == 99_999
    gaps = {b - a for a, b in zip(poses[:-2], poses[1:-1])}
    assert gaps == {path.spacing}            # evenly spaced, whatever the run length
    assert path.spacing * 100 >= 100_000 // 2


def test_clear_and_bad_size():
    path = BoundedTrajectory(max_poses=4)
    for step in range(20):
        path.append(step)
    path.clear()
    assert path.poses() == []
    path.append("a")
    assert path.poses() == ["a"]
    with pytest.raises(ValueError, match="max_poses"):
        BoundedTrajectory(max_poses=1)
