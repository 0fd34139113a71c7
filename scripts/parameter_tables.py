"""Print the README's parameter tables from the configuration schemas (their one source).

    .venv/bin/python scripts/parameter_tables.py
"""
from spiral_controller import ControllerConfig
from tem_localizer import LocalizerConfig
from treeworld_schema.schema import markdown_table
from treeworld_sim import WorldConfig

for node, cls in (("treeworld_sim", WorldConfig), ("spiral_controller", ControllerConfig),
                  ("tem_localizer", LocalizerConfig)):
    print(f"#### `{node}`\n\n{markdown_table(cls)}\n")
