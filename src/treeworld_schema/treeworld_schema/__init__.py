"""One way to describe, validate and declare the configuration of every Tree World package.

Each package owns a dataclass of its settings (defaults, units and ranges written once, next to
what they configure). ``section_from_mapping`` validates a whole section at the edge (CLI, YAML,
ROS parameters) so the cores take plain, already-checked values.
"""
from treeworld_schema.schema import ConfigError, section_from_mapping, setting, with_overrides

__all__ = ["ConfigError", "section_from_mapping", "setting", "with_overrides"]
