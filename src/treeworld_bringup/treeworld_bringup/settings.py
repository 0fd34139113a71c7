"""The project's one parameter file: a standard ROS 2 ``ros__parameters`` YAML with a section
per node, read here for the pip-installed commands and by ``ros2 launch`` for the nodes."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from spiral_controller import ControllerConfig
from tem_localizer import LocalizerConfig
from treeworld_schema import ConfigError, section_from_mapping
from treeworld_sim import WorldConfig

NODE_SECTIONS = {"treeworld_sim": WorldConfig, "spiral_controller": ControllerConfig,
                 "tem_localizer": LocalizerConfig}
ALL_NODES = "/**"


@dataclass(frozen=True)
class Settings:
    world: WorldConfig = WorldConfig()
    controller: ControllerConfig = ControllerConfig()
    localizer: LocalizerConfig = LocalizerConfig()


def _parameters(document: dict, node: str, path: Path) -> dict:
    section = document.get(node, {}) or {}
    if not isinstance(section, dict) or not isinstance(section.get("ros__parameters", {}), dict):
        raise ConfigError(f"{path}: section {node} must hold a ros__parameters mapping")
    return section.get("ros__parameters", {}) or {}


def load_settings(path: str | Path | None) -> Settings:
    """Validated settings from a parameter file, or the defaults when ``path`` is None.

    Raises ConfigError naming the file and field for anything wrong.
    """
    if path is None:
        return Settings()
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config file ({error})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    document = document or {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected node sections at the top level")
    unknown = set(document) - set(NODE_SECTIONS) - {ALL_NODES}
    if unknown:
        raise ConfigError(f"{path}: unknown node section {sorted(unknown)[0]!r} "
                          f"(known: {', '.join(NODE_SECTIONS)}, {ALL_NODES})")
    shared = _parameters(document, ALL_NODES, path)
    sections = {}
    for node, cls in NODE_SECTIONS.items():
        names = {field.name for field in dataclasses.fields(cls)}
        values = {k: v for k, v in shared.items() if k in names}
        values.update(_parameters(document, node, path))
        try:
            sections[node] = section_from_mapping(cls, values, node)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None
    return Settings(sections["treeworld_sim"], sections["spiral_controller"],
                    sections["tem_localizer"])


def parameter_document(settings: Settings) -> dict:
    """The ros__parameters document for ``settings`` (what the launcher hands each node)."""
    sections = {"treeworld_sim": settings.world, "spiral_controller": settings.controller,
                "tem_localizer": settings.localizer}
    return {node: {"ros__parameters": dataclasses.asdict(section)}
            for node, section in sections.items()}
