from dataclasses import dataclass

import pytest

from treeworld_schema import ConfigError, section_from_mapping, setting, with_overrides


@dataclass(frozen=True)
class Example:
    size: int = setting(5, "cells", low=3, odd=True)
    scale: float = setting(1.0, "units", low=0.0, low_exclusive=True)
    mode: str = setting("a", "mode", choices=("a", "b"))
    flag: bool = setting(False, "flag")
    names: tuple = setting(("/a",), "topics")

    def check(self):
        if self.mode == "b" and self.size < 5:
            raise ConfigError("size: mode b needs at least 5")


def test_defaults_and_valid_values():
    assert section_from_mapping(Example, {}, "ex") == Example()
    parsed = section_from_mapping(Example, {"size": 7, "scale": 2, "mode": "b", "flag": True},
                                  "ex")
    assert parsed == Example(7, 2.0, "b", True)
    assert isinstance(parsed.scale, float)
    assert section_from_mapping(Example, {"names": ["/x", "/y"]}, "ex").names == ("/x", "/y")
    # ROS reads an empty YAML list as an unset parameter
    assert section_from_mapping(Example, {"names": None}, "ex").names == ()


@pytest.mark.parametrize("values, message", [
    ({"size": 4}, "ex.size: must be odd"),
    ({"size": 1}, "ex.size: must be >= 3"),
    ({"size": 5.5}, "ex.size: expected an integer"),
    ({"size": True}, "ex.size: expected a number"),
    ({"scale": 0.0}, "ex.scale: must be > 0.0"),
    ({"scale": float("nan")}, "ex.scale: must be finite"),
    ({"scale": "big"}, "ex.scale: expected a number"),
    ({"mode": "c"}, "ex.mode: 'c' is not one of a, b"),
    ({"flag": "yes"}, "ex.flag: expected true or false"),
    ({"names": "/a"}, "ex.names: expected a list of strings"),
    ({"names": ["/a", 3]}, "ex.names: expected a list of strings"),
    ({"colour": 1}, "ex.colour: unknown setting"),
    ({"mode": "b", "size": 3}, "ex.size: mode b needs at least 5"),
])
def test_bad_values_name_the_field(values, message):
    with pytest.raises(ConfigError) as error:
        section_from_mapping(Example, values, "ex")
    assert str(error.value).startswith(message)


def test_overrides_are_validated_and_none_keeps():
    base = Example()
    assert with_overrides(base, "ex", size=None, scale=3) == Example(scale=3.0)
    with pytest.raises(ConfigError, match="ex.size"):
        with_overrides(base, "ex", size=2)
