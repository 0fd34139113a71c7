"""Typed, range-checked configuration sections.

A section is a frozen dataclass whose fields are made with :func:`setting`. Values arriving from
outside (YAML, command line, ROS parameters) go through :func:`section_from_mapping`, which names
the offending field in a :class:`ConfigError`; nothing else in the project re-checks them.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence, TypeVar

Section = TypeVar("Section")


class ConfigError(ValueError):
    """A configuration value is wrong; the message starts with ``section.field``."""


def setting(
    default: Any,
    description: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_exclusive: bool = False,
    choices: Sequence[str] | None = None,
    odd: bool = False,
) -> Any:
    """A dataclass field with its meaning, units and allowed values.

    The field's type is the type of ``default`` (bool, int, float, str, or a tuple of strings
    for a list setting); ints are accepted where floats are expected.
    """
    metadata = {
        "description": description,
        "low": low,
        "high": high,
        "low_exclusive": low_exclusive,
        "choices": tuple(choices) if choices else None,
        "odd": odd,
    }
    return dataclasses.field(default=default, metadata=metadata)


def _checked(where: str, field: dataclasses.Field, value: Any) -> Any:
    expected = type(field.default)
    meta = field.metadata
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if expected is tuple:
        # a list setting; ROS hands an empty YAML list over as None
        items = () if value is None else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(items)
    if expected is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        if meta["choices"] and value not in meta["choices"]:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(meta['choices'])}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if expected is int:
        if isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(f"{where}: expected an integer, got {value!r}")
            value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{where}: must be finite, got {value!r}")
    low, high = meta["low"], meta["high"]
    if low is not None and (value < low or (meta["low_exclusive"] and value == low)):
        relation = ">" if meta["low_exclusive"] else ">="
        raise ConfigError(f"{where}: must be {relation} {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{where}: must be <= {high}, got {value!r}")
    if meta["odd"] and value % 2 != 1:
        raise ConfigError(f"{where}: must be odd, got {value!r}")
    return value


def section_from_mapping(cls: type[Section], values: Mapping[str, Any], section: str) -> Section:
    """Build and validate ``cls`` from ``values``; missing fields keep their defaults.

    Raises ConfigError naming ``section.field`` for an unknown field or a bad value, and calls
    the section's own ``check()`` (cross-field rules) when it has one.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"{section}: expected a mapping of settings, got {values!r}")
    known = {field.name: field for field in dataclasses.fields(cls)}
    for name in values:
        if name not in known:
            raise ConfigError(
                f"{section}.{name}: unknown setting (known: {', '.join(sorted(known))})"
            )
    checked = {name: _checked(f"{section}.{name}", known[name], v) for name, v in values.items()}
    instance = cls(**checked)
    check = getattr(instance, "check", None)
    if check is not None:
        try:
            check()
        except ConfigError as error:
            raise ConfigError(f"{section}.{error}") from None
    return instance


def with_overrides(instance: Section, section: str, **overrides: Any) -> Section:
    """A copy of ``instance`` with ``overrides`` applied and validated (None means keep)."""
    values = dataclasses.asdict(instance)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return section_from_mapping(type(instance), values, section)


def _allowed(field: dataclasses.Field) -> str:
    meta = field.metadata
    parts = [" \\| ".join(meta["choices"])] if meta["choices"] else []
    if meta["low"] is not None:
        parts.append(f"{'>' if meta['low_exclusive'] else '>='} {meta['low']:g}")
    if meta["high"] is not None:
        parts.append(f"<= {meta['high']:g}")
    if meta["odd"]:
        parts.append("odd")
    return ", ".join(parts)


def markdown_table(cls: type) -> str:
    """The section's settings as a Markdown table: name, default, allowed values, meaning."""
    lines = ["| parameter | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    for field in dataclasses.fields(cls):
        default = field.default
        if isinstance(default, bool):
            shown = str(default).lower()
        elif isinstance(default, tuple):
            shown = repr(list(default))
        elif isinstance(default, str):
            shown = repr(default)
        else:
            shown = f"{default:g}"
        meaning = field.metadata["description"].replace("|", "\\|")
        lines.append(f"| `{field.name}` | `{shown}` | {_allowed(field)} | {meaning} |")
    return "\n".join(lines)
