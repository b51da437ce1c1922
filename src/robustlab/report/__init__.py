"""Reports of runs: figures (matplotlib, Agg) and self-contained HTML pages (Jinja2).

``build_report(run_dir)`` writes ``run_dir/report.html``; ``compare_report(run_dirs, out)`` writes one
page across runs. Both embed every image, so the file opens without network access.
"""

from robustlab.report.compare import compare_markdown, compare_report
from robustlab.report.html import build_report

__all__ = ["build_report", "compare_markdown", "compare_report"]
