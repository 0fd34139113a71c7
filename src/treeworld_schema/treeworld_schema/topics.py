"""The contract between the Tree World nodes, ROS-free: topic names, frames, the smell encoding,
how deep per-step histories are, how readers report progress, and how trees are marked.

Every publisher and every parser (nodes, launcher, recorder, bag tools) uses these names, so a
rename happens here once.
"""
import math

CLOCK = "/clock"
SMELL = "/smell"
ODOM = "/odom"
GROUND_TRUTH = "/ground_truth/odom"
CMD_VEL = "/cmd_vel"
TREES = "/treeworld/trees"
HEALTH = "/treeworld/health"
BELIEF = "/tem/belief"
POSE = "/tem/pose"
PATH = "/tem/path"
GRAPH = "/tem/graph"          # slam: keyframes and loop closures, for RViz
# The forager's memory is anchored to steps; with slam it asks where they are now. A request
# (nav_msgs/Path) is stamped with the step just decided, one pose per anchor stamped with the
# anchor's step; the answer carries the same stamps with the map's positions after that step.
FORAGER_ANCHORS = "/spiral_controller/anchors"
RECALLED = "/tem/recalled"
CAMERA = "/camera/image_raw"                   # sensor_msgs/Image
CAMERA_COMPRESSED = "/camera/image_raw/compressed"   # sensor_msgs/CompressedImage
DIAGNOSTICS = "/diagnostics"
TF = "/tf"                    # map -> odom (the localizer), odom -> base_link (the simulator)

MAP_FRAME = "map"
ODOM_FRAME = "odom"
BASE_FRAME = "base_link"
SMELL_ENCODING = "32FC1"   # the smell vector as a one-row float image

# How the agent moves (docs/design.md §2). holonomic: /cmd_vel's linear x, y are a map-frame
# velocity and angular.z only turns the heading; diff_drive: linear.x is the forward speed in
# base_link and angular.z the turn rate (linear.y is ignored, as a wheeled base would).
MOTIONS = ("holonomic", "diff_drive")
START_YAW = math.pi / 4    # the agent starts at the origin heading (1, 1) / sqrt(2)

# Per-step topics keep this many messages per writer and per reader. In lockstep the simulator
# never runs more than ``max_lead_steps`` (at most half of this) ahead of its slowest required
# reader, so no reader's history can overflow however slow it is. Deeper buys a late joiner more
# of the past, but every writer's history takes this many steps to fill, and a graph whose
# histories are still filling runs measurably faster than one that has settled (README, The
# graph at length): at 200 steps (20 s at 10 Hz) a run reaches its steady pace early.
HISTORY_DEPTH = 200
MAX_LEAD_STEPS = HISTORY_DEPTH // 2

# Progress: a reader the simulator must not outrun publishes, on its own topic, a
# rosgraph_msgs/Clock holding the stamp of the newest step it has completely handled.
LOCALIZER_PROGRESS = "/tem_localizer/progress"
RECORDER_PROGRESS = "/treeworld_bag_recorder/progress"
LAUNCHER_PROGRESS = "/treeworld_launch/progress"

# /treeworld/trees: one cylinder per tree in the namespace of its kind, one label per tree.
EDIBLE_TREES = "edible_trees"
POISONOUS_TREES = "poisonous_trees"
TREE_LABELS = "tree_labels"
