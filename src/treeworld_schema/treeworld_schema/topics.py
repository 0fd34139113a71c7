"""Topic names, frames and the smell encoding of the Tree World stack (ROS-free constants)."""

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
DIAGNOSTICS = "/diagnostics"

MAP_FRAME = "map"
ODOM_FRAME = "odom"
BASE_FRAME = "base_link"
SMELL_ENCODING = "32FC1"   # the smell vector as a one-row float image
