"""What each node reports on /diagnostics: the status names and their keys (ROS-free).

Values travel as strings (diagnostic_msgs/KeyValue); numbers are written with ``repr`` so a
float reads back exactly.
"""

# -- status names -------------------------------------------------------------------------
SIMULATOR = "treeworld_sim"         # once, when the run is complete: its totals
LOCALIZER = "tem_localizer"         # after every step handled (used, skipped or late)
RECORDER = "bag_recorder"           # twice a second: messages recorded per topic

# -- treeworld_sim keys -------------------------------------------------------------------
STEPS = "steps"
TOTAL_MOVEMENT = "total_movement"
HEALTH = "health"
FRUIT_EATEN = "fruit_eaten"
POISONOUS_FRUIT_EATEN = "poisonous_fruit_eaten"
REJECTED_COMMANDS = "rejected_commands"

# -- tem_localizer keys (STEPS too: steps localized so far) -------------------------------
STEP_LATENCY_MS = "step_latency_ms"
MEMORY_ENTRIES = "memory_entries"
MEMORY_BYTES = "memory_bytes"
LOSS = "loss"                       # "nan" when the step was not localized
SKIPPED_TOTAL = "skipped_total"
SKIPPED_PREFIX = "skipped_"         # + the kind of bad input, one key per kind
LOST = "lost"
CLIPPED_ACTIONS = "clipped_actions"
LATE_FRAMES = "late_frames"
ODOMETRY_RESETS = "odometry_resets"
TIME_RESTARTS = "time_restarts"     # stamps went back for good: the localizer started over
DEVICE = "device"
# ... and with method slam
CLOSURES_ACCEPTED = "closures_accepted"      # closures in the graph, all kinds
CLOSURES_REJECTED = "closures_rejected"      # candidates refused, all reasons
CLOSURES_OUTWEIGHED = "closures_outweighed"  # in the graph, but the robust loss overruled
CLOSURE_SEARCHES = "closure_searches"        # steps with old places in the gate to test
CLOSURE_PREFIX = "closures_"                 # + accepted_<kind> / rejected_<reason>
OPTIMIZER_MS = "optimizer_ms"                # the last pose-graph update
OPTIMIZER_FAILURES = "optimizer_failures"
KEYFRAMES = "keyframes"
MAP_BYTES = "map_bytes"
MAP_ERRORS = "map_errors"                    # ~/save_map or ~/load_map refused
# ... after a map was loaded
RELOCALIZED_AFTER_STEPS = "relocalized_after_steps"        # "" while still searching
RELOCALIZATION_UNEXPLAINED = "relocalization_unexplained"  # settled where the map disagrees
RELOCALIZATION_RETRACTED = "relocalization_retracted"      # fixes no loop closure confirmed
# The bag_recorder status holds one key per recorded topic: its message count.


def skipped_by_kind(values: dict[str, str]) -> dict[str, int]:
    """The per-kind skip counters of a tem_localizer status."""
    return {key[len(SKIPPED_PREFIX):]: int(value) for key, value in values.items()
            if key.startswith(SKIPPED_PREFIX) and key != SKIPPED_TOTAL}
