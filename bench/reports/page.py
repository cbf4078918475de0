"""A tiny document model rendered twice: as Markdown and as one self-contained HTML file
(inline CSS, figures embedded as data URIs), so the two pages never disagree."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

from bench.reports.render import html_table, markdown_table


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str  # may hold `code` and **bold** spans


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    bold: Sequence[Sequence[bool]] | None = None


@dataclass
class Figure:
    path: Path  # a PNG; the Markdown links it relative to the page
    caption: str


Block = Union[Heading, Para, Bullets, Table, Figure]


@dataclass
class Page:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)


def to_markdown(page: Page, page_dir: Path) -> str:
    out = [f"# {page.title}\n"]
    for b in page.blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}\n")
        elif isinstance(b, Para):
            out.append(b.text + "\n")
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {item}" for item in b.items) + "\n")
        elif isinstance(b, Table):
            rows = [[f"**{c}**" if b.bold and b.bold[i][j] else c for j, c in enumerate(row)]
                    for i, row in enumerate(b.rows)]
            out.append(markdown_table(b.headers, rows))
        elif isinstance(b, Figure):
            out.append(f"![{b.caption}]({b.path.relative_to(page_dir).as_posix()})\n\n_{b.caption}_\n")
    return "\n".join(out)


def _inline_html(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead { background: #f0f0f0; }
img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; margin-bottom: 1.5em; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""


def to_html(page: Page) -> str:
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{html.escape(page.title)}</title>", f"<style>{CSS}</style></head><body>",
           f"<h1>{html.escape(page.title)}</h1>"]
    for b in page.blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append(f"<p>{_inline_html(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            out.append(html_table(b.headers, b.rows, b.bold))
        elif isinstance(b, Figure):
            data = base64.b64encode(b.path.read_bytes()).decode("ascii")
            out.append(f"<figure><img alt=\"{html.escape(b.caption)}\" src=\"data:image/png;base64,{data}\">"
                       f"<figcaption>{html.escape(b.caption)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
