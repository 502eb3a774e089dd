"""The study's tables (CSV, Markdown, LaTeX), GELO, figures and the one-page summary.

Figures live in ``overspec.report.figures`` (imported on its own: it loads matplotlib).
"""

from overspec.report.gelo import GELO_COLUMNS, gelo_table
from overspec.report.paper import compare_with_paper, load_paper_tables, paper_as_metrics, write_paper_comparison
from overspec.report.schema import METRICS_COLUMNS, add_dataset_average, check_metrics
from overspec.report.summary import write_summary
from overspec.report.tables import paper_layout_tables, write_long_tables, write_paper_tables

__all__ = [
    "GELO_COLUMNS",
    "METRICS_COLUMNS",
    "add_dataset_average",
    "check_metrics",
    "compare_with_paper",
    "gelo_table",
    "load_paper_tables",
    "paper_as_metrics",
    "paper_layout_tables",
    "write_long_tables",
    "write_paper_comparison",
    "write_paper_tables",
    "write_summary",
]
