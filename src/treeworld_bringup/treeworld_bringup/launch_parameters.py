"""The parameter file ``ros2 launch treeworld_bringup treeworld.launch.py`` hands its nodes.

Launch arguments are strings; the ones given (``steps:=200``, ``controller:=circle``) are read
as YAML values, checked by the same schema as every other edge, and written under each node's
own name, so they win over the node's section of the base file (a ``/**`` override, which is
what launch_ros writes for a parameter dict, would lose to it). Arguments left empty keep the
file's values.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import yaml

from treeworld_bringup.settings import Settings, load_settings, parameter_document
from treeworld_schema import ConfigError
from treeworld_schema.schema import with_overrides

# launch argument -> (node section, parameter); map_file before the flags that need it
OVERRIDES = {"steps": ("treeworld_sim", "steps"),
             "controller": ("spiral_controller", "controller"),
             "map_file": ("tem_localizer", "map_file"),
             "start_in_map": ("tem_localizer", "start_in_map"),
             "save_map_on_exit": ("tem_localizer", "save_map_on_exit")}
SECTIONS = {"treeworld_sim": "world", "spiral_controller": "controller",
            "tem_localizer": "localizer"}


def _value(argument: str, text: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"launch argument {argument}:={text!r} is not a value") from None


def resolved_settings(config: str | Path, arguments: dict[str, str]) -> Settings:
    """The base file's settings with the given (non-empty) launch arguments applied.

    Raises ConfigError naming the argument, the parameter and what is wrong."""
    settings = load_settings(config)
    for argument, text in arguments.items():
        if argument not in OVERRIDES:
            raise ConfigError(f"unknown launch argument {argument} (known: "
                              f"{', '.join(OVERRIDES)})")
        if text == "":
            continue
        node, parameter = OVERRIDES[argument]
        field = SECTIONS[node]
        try:
            section = with_overrides(getattr(settings, field), node,
                                     **{parameter: _value(argument, text)})
        except ConfigError as error:
            raise ConfigError(f"launch argument {argument}:={text}: {error}") from None
        settings = dataclasses.replace(settings, **{field: section})
    return settings


def write_parameter_file(config: str | Path, arguments: dict[str, str]) -> Path:
    """A ros__parameters file, one section per node, of the resolved settings."""
    document = parameter_document(resolved_settings(config, arguments))
    handle = tempfile.NamedTemporaryFile("w", prefix="treeworld-launch-", suffix=".yaml",
                                         delete=False)
    with handle:
        yaml.safe_dump(document, handle, sort_keys=False)
    return Path(handle.name)
