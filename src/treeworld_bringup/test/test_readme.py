"""The README's parameter tables are the schemas' own (scripts/parameter_tables.py)."""
from pathlib import Path

import pytest

from spiral_controller import ControllerConfig
from tem_localizer import LocalizerConfig
from treeworld_schema.schema import markdown_table
from treeworld_sim import WorldConfig

README = Path(__file__).resolve().parents[3] / "README.md"


@pytest.mark.parametrize("node, section", [("treeworld_sim", WorldConfig),
                                           ("spiral_controller", ControllerConfig),
                                           ("tem_localizer", LocalizerConfig)])
def test_parameter_tables_match_the_schemas(node, section):
    assert f"#### `{node}`\n\n{markdown_table(section)}\n" in README.read_text()


def test_the_config_file_holds_every_parameter_at_its_default():
    import dataclasses

    import yaml

    from treeworld_bringup.settings import NODE_SECTIONS, Settings, load_settings

    config = README.parent / "config" / "treeworld.yaml"
    assert load_settings(config) == Settings()
    document = yaml.safe_load(config.read_text())
    listed = set(document["/**"]["ros__parameters"])
    for node, section in NODE_SECTIONS.items():
        listed_here = listed | set(document[node]["ros__parameters"])
        assert {f.name for f in dataclasses.fields(section)} <= listed_here, node
