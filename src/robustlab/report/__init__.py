"""Reports of runs: self-contained HTML pages (Jinja2) that embed every image, so a file opens
without network access.

``build_report(run_dir, sections)`` writes ``run_dir/report.html`` from the folder and the lab's
:class:`~robustlab.report.section.Section` list; ``overview_report`` compares runs of any lab.
"""

from robustlab.report.html import build_report
from robustlab.report.overview import overview_markdown, overview_report
from robustlab.report.section import Section, Table

__all__ = ["Section", "Table", "build_report", "overview_markdown", "overview_report"]
