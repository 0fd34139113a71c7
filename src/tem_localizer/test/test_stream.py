"""The sensor stream (ROS-free): pairing by stamp, odometry orientation, odometry resets."""
import numpy as np
import pytest

from tem_localizer import Localizer, LocalizerConfig
from tem_localizer.camera import RawImage
from tem_localizer.stream import SensorStream, StreamEvent

SMELL = np.ones(4, np.float32)


def image(values=SMELL, **changes) -> RawImage:
    values = np.asarray(values, "<f4")
    fields = dict(encoding="32FC1", height=1, width=values.size, step=4 * values.size,
                  big_endian=False, data=values.tobytes())
    return RawImage(**(fields | changes))


def stream(**options) -> SensorStream:
    localizer = Localizer(LocalizerConfig(method="deadreckoning", sensory_embedding_dim=4,
                                          device="cpu"))
    return SensorStream(localizer, **options)


def only(events: list[StreamEvent]) -> StreamEvent | None:
    """The step a message completed, if any (a message completes at most one, except when
    time restarts)."""
    assert len(events) <= 1, events
    return events[0] if events else None


def feed(stream: SensorStream, step: int, x: float, orientation=(0.0, 0.0, 0.0, 1.0)):
    stamp = step * 100_000_000
    stream.odometry(stamp, "odom", [x, 0.0], orientation)
    return only(stream.smell(stamp, "map", image()))


def test_an_odometry_jump_is_a_reset_not_motion(caplog):
    """A driver restart puts odometry back near its origin: the estimate stays, the motion
    after it counts from the new pose, and the reset is counted and warned about once."""
    s = stream(max_odometry_jump=50.0)
    events = [feed(s, 0, 0.0)]
    for step, x in enumerate([5.0, 10.0, -3000.0, -2995.0, 4000.0, 4010.0], start=1):
        events.append(feed(s, step, x))
    x_estimates = [event.step.mean[0] for event in events]
    assert x_estimates == pytest.approx([0.0, 5.0, 10.0, 10.0, 15.0, 15.0, 25.0])
    assert s.localizer.counters.odometry_resets == 2
    assert caplog.text.count("taken as a reset of its origin") == 1


def test_without_a_bound_every_displacement_is_motion():
    s = stream()
    feed(s, 0, 0.0)
    assert feed(s, 1, 3000.0).step.mean[0] == pytest.approx(3000.0)
    assert s.localizer.counters.odometry_resets == 0


def test_an_orientation_that_is_not_a_unit_quaternion_is_skipped_and_counted():
    s = stream()
    feed(s, 0, 0.0)
    bad = feed(s, 1, 5.0, orientation=(0.0, 0.0, 0.9, 0.9))
    assert bad is None                       # its odometry was refused: the smell waits
    assert s.localizer.counters.skipped == {"bad_quaternion": 1}
    good = feed(s, 2, 8.0, orientation=(0.0, 0.0, np.sin(0.5), np.cos(0.5)))
    assert good.step.mean[0] == pytest.approx(8.0)   # no displacement was lost
    np.testing.assert_allclose(good.odometry_pose, [8.0, 0.0, 1.0])


def test_infinite_odometry_is_refused_not_taken_for_a_reset():
    s = stream(max_odometry_jump=50.0)
    feed(s, 0, 0.0)
    assert feed(s, 1, float("inf")).step.skipped == "nonfinite_action"
    assert feed(s, 2, 5.0).step.mean[0] == pytest.approx(5.0)
    assert s.localizer.counters.odometry_resets == 0


def test_a_step_that_never_gets_its_partner_is_counted_and_its_motion_kept(caplog):
    """Odometry at 10 Hz, smell at 5 Hz: the odometry-only steps are unpaired, counted once
    each (warned once), and the displacement they carried arrives with the next pair."""
    s = stream()
    feed(s, 0, 0.0)
    for step in range(1, 7):
        s.odometry(step * 100_000_000, "odom", [5.0 * step, 0.0])
        if step % 2 == 0:
            event = only(s.smell(step * 100_000_000, "map", image()))
            assert event.step.mean[0] == pytest.approx(5.0 * step)
    assert s.localizer.counters.skipped == {"unpaired": 3}
    assert caplog.text.count("counted as 'unpaired'") == 1


@pytest.mark.parametrize("changes", [
    {"data": np.ones(4, "<f4").tobytes()[:-3]},            # truncated
    {"step": 12},                                           # a row shorter than its width
    {"width": 5},                                           # a width the data does not fill
])
def test_a_smell_image_whose_size_does_not_add_up_is_refused_and_counted(changes):
    s = stream()
    feed(s, 0, 0.0)
    s.odometry(100_000_000, "odom", [5.0, 0.0])
    event = only(s.smell(100_000_000, "map", image(**changes)))
    assert event.step.skipped == "bad_image_size"
    assert feed(s, 2, 9.0).step.mean[0] == pytest.approx(9.0)   # no displacement lost


def test_a_big_endian_smell_is_read_as_such():
    s = stream()
    values = np.array([1.0, 2.0, 3.0, 4.0])
    s.smell(0, "map", image(data=values.astype(">f4").tobytes(), big_endian=True))
    np.testing.assert_array_equal(s.pending[0]["smell"], values)   # waiting for its odom
    assert only(s.odometry(0, "odom", [0.0, 0.0])).step.skipped is None
    s.odometry(100_000_000, "odom", [1.0, 0.0])
    wrong = only(s.smell(100_000_000, "map", image(values=[1.0, 2.0, 3.0])))
    assert wrong.step.skipped == "wrong_smell_length"      # sizes add up, D does not


def test_time_that_restarts_starts_the_localizer_over_and_loses_no_step(caplog):
    """A bag played again (or looped) into a running localizer: its stamps go back to where
    they began. The localizer starts over with the first whole step of the second pass and
    localizes it exactly as it did the first."""
    s = stream()
    path = [0.0, 4.0, 9.0, 15.0, 22.0, 30.0] * 20             # 120 steps: 12 s at 10 Hz
    first = [feed(s, step, x).step.mean[0] for step, x in enumerate(path)]
    second = []
    for step, x in enumerate(path):
        stamp = step * 100_000_000
        # odometry starts elsewhere; on the first step it comes after the smell
        events = s.smell(stamp, "map", image()) if step == 0 else []
        events += s.odometry(stamp, "odom", [x + 1000.0, 0.0])
        if step > 0:
            events += s.smell(stamp, "map", image())
        assert [event.restarted for event in events] == [step == 0]
        second.append(events[0].step.mean[0])
    assert second == pytest.approx(first)
    assert s.localizer.counters.time_restarts == 1
    assert s.localizer.counters.skipped == {}
    assert caplog.text.count("time went back 11.9 s") == 1


def test_input_from_the_past_that_never_makes_a_whole_step_is_stale():
    """Stragglers: odometry stamped long before the last step, whose observation never
    comes, while time goes on. It is counted as stale once time moves past it and changes
    nothing; so is a whole step from less than a second before."""
    s = stream()
    for step in range(30):
        feed(s, step, float(step))
    for stamp in (0, 100_000_000):                         # 2.9 s before the last step
        assert s.odometry(stamp, "odom", [50.0, 0.0]) == []
    assert s.localizer.counters.skipped == {}      # held, not yet known to be stale
    assert feed(s, 30, 30.0).step.mean[0] == pytest.approx(30.0)
    assert s.localizer.counters.skipped == {"stale_stamp": 2}
    stamp = 2_500_000_000                                  # 0.5 s before: a late step
    assert only(s.odometry(stamp, "odom", [50.0, 0.0])).step.skipped == "stale_stamp"
    assert only(s.smell(stamp, "map", image())).step.skipped == "stale_stamp"
    assert s.localizer.counters.time_restarts == 0
    assert feed(s, 31, 31.0).step.mean[0] == pytest.approx(31.0)


def test_with_commanded_velocities_stamps_from_the_past_stay_stale():
    s = stream(action_source="cmd_vel")
    for step in range(30):
        stamp = step * 100_000_000
        s.command(stamp, [10.0, 0.0])
        s.smell(stamp, "map", image())
    for step in range(5):
        stamp = step * 100_000_000
        assert only(s.smell(stamp, "map", image())).step.skipped == "stale_stamp"
    assert s.localizer.counters.time_restarts == 0
