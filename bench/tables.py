"""Tables generated from records only (never edited by hand).

The implementation lives in `bench.reports` (frame, tables); this module keeps the
names `bench run` and older callers import.
"""

from __future__ import annotations

from bench.reports.frame import method_order, records_frame
from bench.reports.tables import render_latex, render_markdown, summary_table, write_summary

__all__ = ["method_order", "records_frame", "render_latex", "render_markdown", "summary_table", "write_summary"]
