"""Schema strings for ops whose scalar arguments are a parameter dataclass."""

from __future__ import annotations

import dataclasses

_TYPES = {"int": "int", "float": "float", "bool": "bool", "str": "str", "str | None": "str?"}


def params_schema(params_class) -> str:
    """``"int ws, int wt, ..."``: the dataclass fields as schema arguments, in order."""
    return ", ".join(f"{_TYPES[field.type]} {field.name}" for field in dataclasses.fields(params_class))
