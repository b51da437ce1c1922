"""A lab's config schema as text: every key with its type, default and description."""

from __future__ import annotations

from typing import Any, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def _type_name(annotation: Any) -> str:
    if get_origin(annotation) is None and isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def schema_lines(model: type[BaseModel], prefix: str = "") -> list[str]:
    """``key = default  (type): description`` for every field of ``model``, nested sections expanded
    (``train.lr = 0.001 ...``); required fields show ``(required)``."""
    lines: list[str] = []
    for name, f in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            lines.extend(schema_lines(ann, key + "."))
            continue
        if f.default is PydanticUndefined and f.default_factory is None:
            default = "(required)"
        else:
            default = repr(f.get_default(call_default_factory=True))
        desc = f": {f.description}" if f.description else ""
        lines.append(f"{key} = {default}  ({_type_name(ann)}){desc}")
    return lines
