"""Declarative node parameters: type, default, allowed range/choices, and one clear error per bad value.

Pure Python (no ROS): nodes read values with ``deep_perception.ros.node.load_params``; tests and
docs use the same specs.
"""

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence


class ParamError(ValueError):
    """A parameter has a bad type or value; the message names the parameter."""


@dataclass(frozen=True)
class Param:
    """One parameter: ``~name`` of ``type`` (bool, int, float, str, list) with validation bounds."""

    name: str
    type: type
    default: Any
    doc: str = ""
    min: Optional[float] = None
    max: Optional[float] = None
    choices: Optional[Sequence[Any]] = None
    length: Optional[int] = None  # for lists: required length
    item_type: Optional[type] = None  # for lists: element type
    extra: dict = field(default_factory=dict)

    def describe_range(self):
        """Human-readable allowed values, for the README tables."""
        if self.choices is not None:
            return " | ".join(map(str, self.choices))
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min}")
        if self.max is not None:
            parts.append(f"<= {self.max}")
        if self.length is not None:
            parts.append(f"{self.length} items")
        return ", ".join(parts) or "any"


def _coerce(p, value):
    if p.type is bool:
        if isinstance(value, bool):
            return value
        raise ParamError(f"parameter ~{p.name}: expected true/false, got {value!r}")
    if p.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(f"parameter ~{p.name}: expected an integer, got {value!r}")
        return value
    if p.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(f"parameter ~{p.name}: expected a number, got {value!r}")
        value = float(value)
        if value != value:
            raise ParamError(f"parameter ~{p.name}: NaN is not allowed")
        return value
    if p.type is str:
        if not isinstance(value, str):
            raise ParamError(f"parameter ~{p.name}: expected a string, got {value!r}")
        return value
    if p.type is list:
        if not isinstance(value, (list, tuple)):
            raise ParamError(f"parameter ~{p.name}: expected a list, got {value!r}")
        if p.length is not None and len(value) != p.length:
            raise ParamError(f"parameter ~{p.name}: expected {p.length} items, got {len(value)}")
        if p.item_type is not None:
            sub = Param(f"{p.name}[]", p.item_type, None)
            value = [_coerce(sub, v) for v in value]
        return list(value)
    raise ParamError(f"parameter ~{p.name}: unsupported type {p.type}")


def validate(p, value):
    """Coerce and check one value against its spec; raise ParamError naming the parameter."""
    value = _coerce(p, value)
    items = value if p.type is list else [value]
    for v in items:
        if p.choices is not None and v not in p.choices:
            raise ParamError(f"parameter ~{p.name}: {v!r} is not one of {list(p.choices)}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if p.min is not None and v < p.min:
                raise ParamError(f"parameter ~{p.name}: {v} is below the minimum {p.min}")
            if p.max is not None and v > p.max:
                raise ParamError(f"parameter ~{p.name}: {v} is above the maximum {p.max}")
    return value


def resolve(specs, lookup):
    """Validate every spec with ``lookup(name, default)`` giving the raw value; returns a dict."""
    return {p.name: validate(p, lookup(p.name, p.default)) for p in specs}


def markdown_table(specs):
    """The README table of a node's parameters."""
    rows = ["| parameter | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for p in specs:
        rows.append(f"| `~{p.name}` | {p.type.__name__} | `{p.default!r}` | {p.describe_range()} | {p.doc} |")
    return "\n".join(rows)
