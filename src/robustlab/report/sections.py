"""The results a lab's sections do not show, rendered generically: scalars as key/value rows,
mappings as key/value tables, lists of rows (or ``{columns, rows}``) as tables.

Like :mod:`robustlab.report.context`, nothing here raises on a missing or malformed section.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from robustlab.report.context import RunData
from robustlab.report.format import MISSING, is_number, num, pct

# -- anything else in results.json ----------------------------------------------------------------
#: results.json keys the report shell shows itself (header, configuration, flags, training, figures)
SHELL_KEYS = {"name", "task", "dataset", "training", "flags", "figures", "smoke"}
_MAX_LIST = 12


def _value(key: str, v: Any) -> str:
    """A value of an unknown section: accuracies as %, numbers short, short lists inline."""
    if isinstance(v, bool) or v is None:
        return MISSING if v is None else ("yes" if v else "no")
    if is_number(v):
        return pct(v) if "accuracy" in key.lower() and 0 <= v <= 1 else num(v)
    if isinstance(v, list):
        if len(v) <= _MAX_LIST and all(not isinstance(x, dict | list) for x in v):
            return ", ".join(_value(key, x) for x in v)
        return f"[{len(v)} values]"
    if isinstance(v, dict):
        return f"{{{len(v)} entries}}"
    return str(v)


def _kv_rows(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and not prefix:
            rows += _kv_rows(v, prefix=f"{key}.")
        else:
            rows.append((key, _value(str(k), v)))
    return rows


def _table(rows: list[Any], columns: list[str] | None = None) -> dict[str, Any] | None:
    dict_rows = [r for r in rows if isinstance(r, Mapping)]
    if not dict_rows:
        return None
    if columns is None:
        seen: dict[str, None] = {}
        for r in dict_rows:
            for k in r:
                seen.setdefault(str(k), None)
        columns = list(seen)
    return {
        "columns": columns,
        "rows": [[_value(c, r.get(c)) for c in columns] for r in dict_rows],
        "numeric": [all(is_number(r.get(c)) or r.get(c) is None for r in dict_rows) for c in columns],
    }


def other_sections(run: RunData, claimed: set[str] | frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Sections of results.json that neither the shell nor the lab's sections (``claimed`` keys) show
    (e.g. a generative model's numbers or a study table), rendered generically:
    ``{title, kv: [(key, value)]}`` or ``{title, table: {columns, rows, numeric}}``."""
    out: list[dict[str, Any]] = []
    scalars: list[tuple[str, str]] = []
    for key, v in run.results.items():
        if key in SHELL_KEYS or key in claimed:
            continue
        if not isinstance(v, Mapping | list):
            scalars.append((key, _value(key, v)))
            continue
        title = key.replace("_", " ")
        if isinstance(v, Mapping) and isinstance(v.get("rows"), list):
            cols = [str(c) for c in v["columns"]] if isinstance(v.get("columns"), list) else None
            table = _table(v["rows"], cols)
            if table:
                extra = ", ".join(f"{k}: {_value(k, x)}" for k, x in v.items() if k not in ("rows", "columns"))
                out.append({"title": title + (f" ({extra})" if extra else ""), "table": table})
                continue
        if isinstance(v, list) and v and all(isinstance(r, Mapping) for r in v):
            table = _table(v)
            if table:
                out.append({"title": title, "table": table})
                continue
        if isinstance(v, Mapping):
            out.append({"title": title, "kv": _kv_rows(v)})
        else:
            scalars.append((key, _value(key, v)))
    if scalars:
        out.insert(0, {"title": "other results", "kv": scalars})
    return out
