import numpy as np
import pytest

from tem_localizer.trajectory import NO_PLACE, BoundedTrajectory


def walked(path: BoundedTrajectory, steps: int, start: int = 0) -> None:
    """Step n: stamp n, place n (none on odd steps), at (n, -n), facing n / 1000."""
    for step in range(start, start + steps):
        path.append(step, step if step % 2 == 0 else None, (step, -step), step / 1000)


def test_short_runs_keep_every_pose():
    path = BoundedTrajectory(max_poses=10)
    walked(path, 7)
    rows = path.rows()
    assert rows.stamps.tolist() == list(range(7))
    assert rows.places.tolist() == [0, NO_PLACE, 2, NO_PLACE, 4, NO_PLACE, 6]
    assert rows.positions.tolist() == [[n, -n] for n in range(7)]
    assert rows.yaws.tolist() == [n / 1000 for n in range(7)]


def test_long_runs_stay_bounded_span_the_run_and_end_at_the_newest():
    path = BoundedTrajectory(max_poses=100)
    for step in range(100_000):
        walked(path, 1, start=step)
        assert len(path.rows().stamps) <= 101
    rows = path.rows()
    stamps = rows.stamps
    assert stamps[0] == 0 and stamps[-1] == 99_999
    gaps = set(np.diff(stamps[:-1]).tolist())
    assert gaps == {path.spacing}            # evenly spaced, whatever the run length
    assert path.spacing * 100 >= 100_000 // 2
    # every row still belongs to its own step, through all the thinning
    assert (rows.positions == np.stack([stamps, -stamps], axis=1)).all()
    assert (rows.yaws == stamps / 1000).all()
    assert (rows.places[stamps % 2 == 0] == stamps[stamps % 2 == 0]).all()
    assert (rows.places[stamps % 2 == 1] == NO_PLACE).all()


def test_rows_are_views_so_a_correction_moves_the_kept_poses_and_the_newest():
    path = BoundedTrajectory(max_poses=4)
    walked(path, 11)             # spacing 4 by now: step 10 is the newest, not kept
    rows = path.rows()
    assert rows.stamps.tolist() == [0, 4, 8, 10]
    rows.positions[:] = [[1, 1], [2, 2], [3, 3], [4, 4]]
    rows.places[rows.places >= 8] = NO_PLACE
    again = path.rows()
    assert again.positions.tolist() == [[1, 1], [2, 2], [3, 3], [4, 4]]
    assert again.places.tolist() == [0, 4, NO_PLACE, NO_PLACE]
    walked(path, 1, start=11)    # not kept either: it replaces step 10 as the path's end
    assert path.rows().stamps.tolist() == [0, 4, 8, 11]


def test_clear_and_bad_size():
    path = BoundedTrajectory(max_poses=4)
    walked(path, 20)
    path.clear()
    assert len(path.rows().stamps) == 0
    path.append(7, None, (1.0, 2.0), 0.5)
    assert path.rows().stamps.tolist() == [7]
    with pytest.raises(ValueError, match="max_poses"):
        BoundedTrajectory(max_poses=1)
