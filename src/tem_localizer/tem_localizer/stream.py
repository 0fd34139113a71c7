"""Time-stamped odometry, commands and observations in; localizer steps out (ROS-free).

The ROS node feeds it messages as they arrive, bag replay feeds it recorded ones, so both make
exactly the same steps from the same input. A step happens when a stamp has its observation (a
smell, or a camera image) and its odometry (or, with commanded velocities, when the command of
the previous step is known). Rejected input is counted by the localizer and never reaches the
belief.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from tem_localizer.camera import (
    CompressedFrame,
    ImageError,
    RawImage,
    decode_compressed,
    decode_raw,
)
from tem_localizer.localizer import Localizer, LocalizerStep
from treeworld_schema.frames import yaw_of
from treeworld_schema.topics import SMELL_ENCODING

# A whole step (odometry and observation) stamped this long before the last step used belongs
# to another run of time (a bag played again or looped, a simulator restarted): each topic
# arrives in order, so a whole step cannot fall behind a later one by being late
RESTART_GAP_NS = 1_000_000_000


def odometry_motion(localizer: Localizer, displacement: np.ndarray,
                    max_jump: float) -> np.ndarray:
    """The motion in odometry's ``displacement`` since the last step: none when it jumped
    farther than ``max_jump`` (0 = never), which is a reset of odometry's origin (a driver
    restart), counted by the localizer. The node, replay and the in-process run all ask here,
    so they make the same steps from the same odometry."""
    jump = float(np.hypot(*displacement))     # NaN or inf: left for the localizer to refuse
    if max_jump and np.isfinite(jump) and jump > max_jump:
        localizer.odometry_reset(jump)
        return np.zeros(2)
    return displacement


@dataclass(frozen=True)
class StreamEvent:
    stamp: int               # nanoseconds
    step: LocalizerStep      # ``step.skipped`` names the reason when nothing was used
    late: bool = False       # only the motion was integrated: the step came too late
    odometry_pose: np.ndarray | None = None   # (3,) x, y, yaw in the odometry frame
    restarted: bool = False  # the first step after time restarted: the localizer starts over


class SensorStream:
    """Pairs odometry (or commands) and smells by stamp for one Localizer.

    With ``max_input_age`` (nanoseconds, 0 = never) and ``now`` (a clock in nanoseconds), a
    step older than that when it completes is a late frame: its motion is integrated, its
    smell dropped, so a localizer slower than real time stays current instead of falling
    further behind. Consecutive odometry poses more than ``max_odometry_jump`` apart (world
    units, 0 = never) are a reset of odometry's origin: that step moves nothing.

    Input stamped before the last step used is stale and skipped, except when time has
    restarted: odometry and observations stamped more than RESTART_GAP_NS before it are held
    aside, and once one of those steps is complete the localizer starts over (as ``~/reset``
    does) from it; counted as ``time_restarts``. Held input that time moves on past counts as
    stale. Each call returns the steps it completed, in order.
    """

    def __init__(self, localizer: Localizer, action_source: str = "odom",
                 odom_frame: str = "odom", smell_frame: str = "map",
                 max_input_age: int = 0, now: Callable[[], int] | None = None,
                 max_odometry_jump: float = 0.0, camera_frame: str = "base_link"):
        self.localizer = localizer
        self.action_source = action_source
        self.odom_frame, self.smell_frame = odom_frame, smell_frame
        self.camera_frame = camera_frame
        self.max_input_age, self.now = max_input_age, now
        self.max_odometry_jump = max_odometry_jump
        self.reset()

    def reset(self) -> None:
        # stamp -> {"odom": (2,), "yaw": radians, "smell": (D,) or "image": (H, W, 3)}
        self.pending: dict[int, dict] = {}
        self.earlier: dict[int, dict] = {}     # the same, held from before the last step
        self.commands: dict[int, np.ndarray] = {}   # stamp -> velocity (2,) from that step
        self.last_stamp = -1                   # the last used step
        self.last_position: np.ndarray | None = None

    def _rejected(self, stamp: int, kind: str, message: str) -> list[StreamEvent]:
        return [StreamEvent(stamp, self.localizer.reject(kind, message))]

    def _check(self, what: str, stamp: int, frame: str, expected_frame: str
               ) -> list[StreamEvent] | None:
        if frame != expected_frame:
            return self._rejected(stamp, "unknown_frame",
                                  f"{what} in frame '{frame}', expected '{expected_frame}'")
        if stamp <= self.last_stamp and not self._from_earlier(stamp):
            return self._rejected(stamp, "stale_stamp", f"{what} stamped {stamp} ns, not after "
                                  f"the last used step at {self.last_stamp} ns")
        if what in self._entries(stamp).get(stamp, {}):
            return self._rejected(stamp, "repeated_stamp", f"a second {what} stamped {stamp} ns")
        return None

    def _from_earlier(self, stamp: int) -> bool:
        """Whether ``stamp`` may belong to a restarted run of time (commanded velocities are
        paired by the step before, which a restart cuts: their stale stamps stay stale)."""
        return self.action_source == "odom" and stamp < self.last_stamp - RESTART_GAP_NS

    def _entries(self, stamp: int) -> dict[int, dict]:
        """Where the input stamped ``stamp`` waits for its partner."""
        return self.earlier if self._from_earlier(stamp) else self.pending

    def _add(self, stamp: int, values: dict) -> list[StreamEvent]:
        entries = self._entries(stamp)
        entries.setdefault(stamp, {}).update(values)
        return self._try_step(stamp) if entries is self.pending else self._try_restart(stamp)

    def odometry(self, stamp: int, frame: str, position,
                 orientation=(0.0, 0.0, 0.0, 1.0)) -> list[StreamEvent]:
        """An odometry pose: ``position`` (world units) and ``orientation`` (a quaternion x, y,
        z, w) in the odometry frame."""
        rejected = self._check("odom", stamp, frame, self.odom_frame)
        if rejected is not None:
            return rejected
        try:
            yaw = yaw_of(*orientation)
        except ValueError as error:
            return self._rejected(stamp, "bad_quaternion", f"odom orientation: {error}")
        return self._add(stamp, {"odom": np.asarray(position, dtype=np.float64), "yaw": yaw})

    def smell(self, stamp: int, frame: str, image: RawImage) -> list[StreamEvent]:
        """A smell as a one-row 32FC1 image of D floats."""
        rejected = self._check("smell", stamp, frame, self.smell_frame)
        if rejected is not None:
            return rejected
        if image.encoding != SMELL_ENCODING or image.height != 1:
            return self._rejected(stamp, "bad_encoding", f"smell image is {image.encoding} "
                                  f"with {image.height} rows, expected {SMELL_ENCODING} with "
                                  "1 row")
        if image.step != 4 * image.width or len(image.data) != image.step:
            return self._rejected(stamp, "bad_image_size", f"smell image {image.width} wide "
                                  f"has a row of {image.step} bytes and {len(image.data)} "
                                  f"bytes of data, expected {4 * image.width} and "
                                  f"{4 * image.width}")
        values = np.frombuffer(image.data, ">f4" if image.big_endian else "<f4")
        return self._add(stamp, {"smell": values.astype(np.float32)})

    def camera(self, stamp: int, frame: str, image: RawImage | CompressedFrame
               ) -> list[StreamEvent]:
        """A camera image, raw or compressed; it is encoded once its odometry (and so the
        heading it was taken at) is known."""
        rejected = self._check("image", stamp, frame, self.camera_frame)
        if rejected is not None:
            return rejected
        try:
            pixels = decode_raw(image) if isinstance(image, RawImage) else \
                decode_compressed(image)
        except ImageError as error:
            return self._rejected(stamp, error.kind, str(error))
        return self._add(stamp, {"image": pixels})

    def command(self, stamp: int, velocity) -> list[StreamEvent]:
        """A commanded velocity (world units / s), valid from ``stamp`` to the next step."""
        self.commands[stamp] = np.asarray(velocity, dtype=np.float64)
        return self._try_step(min(self.pending)) if self.pending else []

    def _ready(self, entry: dict) -> bool:
        if "smell" not in entry and "image" not in entry:
            return False
        if self.action_source == "odom":
            return "odom" in entry
        return self.last_stamp < 0 or self.last_stamp in self.commands

    def _action(self, stamp: int, entry: dict) -> np.ndarray:
        if self.action_source == "cmd_vel":
            if self.last_stamp < 0:
                return np.zeros(2)
            return self.commands[self.last_stamp] * (stamp - self.last_stamp) * 1e-9
        # the first step (and the first after a reset) defines the belief's origin
        reference = self.last_position if self.last_position is not None else entry["odom"]
        return odometry_motion(self.localizer, entry["odom"] - reference,
                               self.max_odometry_jump)

    def _try_restart(self, stamp: int) -> list[StreamEvent]:
        """Start over once the held step at ``stamp`` is complete: the localizer forgets this
        run (as ``~/reset`` does, its counters kept), the held input begins the next."""
        if not self._ready(self.earlier[stamp]):
            return []
        held = self.earlier
        self.localizer.restart_time((self.last_stamp - stamp) * 1e-9)
        self.reset()
        events = []
        for earlier in sorted(held):
            self.pending[earlier] = held[earlier]
            events += self._try_step(earlier)
        if events:
            events[0] = dataclasses.replace(events[0], restarted=True)
        return events

    def _try_step(self, stamp: int) -> list[StreamEvent]:
        entry = self.pending[stamp]
        if not self._ready(entry):
            return []
        for older in [s for s in self.pending if s < stamp]:
            # never completed: its partner was lost, rejected, or never sent (a camera slower
            # than odometry); its odometry is not lost, the next step's displacement has it
            entry_older = self.pending.pop(older)
            missing = "odom" if "smell" in entry_older or "image" in entry_older else \
                "observation"
            self.localizer.reject("unpaired", f"nothing came for the {missing} at {older} ns")
        for held, inputs in self.earlier.items():
            # time went on from where it was: what was held aside was stale after all
            for what in inputs.keys() & {"odom", "smell", "image"}:
                self.localizer.reject("stale_stamp", f"{what} stamped {held} ns, not after "
                                      f"the last used step at {self.last_stamp} ns")
        self.earlier = {}
        del self.pending[stamp]
        late = bool(self.max_input_age) and self.now is not None and \
            self.now() - stamp > self.max_input_age
        action = self._action(stamp, entry)
        if late:
            result = self.localizer.drop_late_frame(action)
        elif "smell" in entry:
            result = self.localizer.step(action, entry["smell"])
        else:       # commanded velocities carry no heading: the image is taken as facing 0
            result = self.localizer.step(action, self.localizer.encode_camera(
                entry["image"], entry.get("yaw", 0.0)))
        # A skipped step keeps the old odometry reference, so no displacement is lost. A
        # commanded velocity is only good for its own interval: that step is used up either way.
        if result.skipped is None or self.action_source == "cmd_vel":
            self.last_stamp = stamp
            self.commands = {s: v for s, v in self.commands.items() if s >= stamp}
            if "odom" in entry:
                self.last_position = entry["odom"]
        pose = np.append(entry["odom"], entry["yaw"]) if "odom" in entry else None
        return [StreamEvent(stamp, result, late, pose)]
