"""A section of a run's report, as a lab supplies it: a title and a body the report shell renders.

The body is any of: ``html`` (a fragment the lab rendered with :func:`robustlab.report.html.render_fragment`,
escaped there), a ``table`` (columns and rows of plain values, escaped by the shell), ``kv`` pairs, a
``note`` and ``figures`` (paths of images inside the run folder, embedded by the shell). ``cards`` are
headline numbers shown at the top of the page; ``config_rows`` extend the configuration table;
``verdict`` is the page's one-line summary; ``claims`` are the results keys the section shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Table:
    """Columns and rows of plain values; ``numeric[i]`` right-aligns column ``i``."""

    columns: list[str]
    rows: list[list[Any]]
    numeric: list[bool] | None = None


@dataclass
class Section:
    """One block of a report (see the module docstring); ``key`` names it for tests and anchors."""

    title: str
    key: str = ""
    html: str | None = None
    table: Table | None = None
    kv: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""
    figures: list[tuple[str, Path]] = field(default_factory=list)
    cards: list[dict[str, str]] = field(default_factory=list)
    config_rows: list[tuple[str, str]] = field(default_factory=list)
    #: one line of what the run is and how it did, shown at the top (the first section's wins)
    verdict: str = ""
    #: results.json keys this section shows (the shell's generic tables leave them out)
    claims: frozenset[str] = frozenset()
    #: image files (in the run folder) this section embeds itself: the shell's gallery leaves them out
    embedded: list[Path] = field(default_factory=list)
