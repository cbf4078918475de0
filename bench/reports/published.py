"""Our rows beside the published ones (CoUn's tables, `reference-results-coun.csv`), in the papers' form.

The published Avg-Gap is the gap of the means over trials (CoUn: FT 10% = (0.01 + 1.05 +
0.03 + 1.51) / 4 = 0.65), so our side is given in that form too (`avg_gap_of_means`).
A block matches a published setting by dataset, model and scenario (CIFAR-10 / ResNet-18
/ random10 is "C10-RN18-10%", class9 on CIFAR-10 is "C10-RN18-class(truck)"). The CSV's
comment lines start with '#'; a value marked '*' is one the paper's own deltas contradict
(kept, and shown with its mark).
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.errors import ConfigError
from bench.metrics import GAP_METRICS
from bench.reports.frame import GROUP
from bench.reports.render import markdown_table
from bench.reports.tables import fmt_pflops

DEFAULT_CSV = Path(__file__).resolve().parent / "published_data" / "coun.csv"  # a copy of docs' reference-results-coun.csv
CSV_COLUMNS = ("table", "setting", "method", "RA", "UA", "TA", "MIA", "AvgGap", "PFLOPs")
DATASET_CODES = {"cifar10": "C10", "cifar100": "C100", "tinyimagenet": "TIN"}
MODEL_CODES = {"resnet18": "RN18", "vgg16": "VGG16", "vit": "ViT"}
CLASS_NAMES = {("cifar10", 9): "truck"}
METHOD_ALIASES = {"CU(Lee et al.)": "CU"}  # the paper's row name -> ours


@dataclass(frozen=True)
class PublishedValue:
    value: float
    flagged: bool  # marked '*' in the CSV: inconsistent with the paper's own deltas

    def text(self) -> str:
        return f"{self.value:.2f}{'*' if self.flagged else ''}"


def _value(text: str, where: str) -> PublishedValue:
    raw = text.strip()
    flagged = raw.endswith("*")
    try:
        return PublishedValue(float(raw.rstrip("*")), flagged)
    except ValueError:
        raise ConfigError(f"{where}: {raw!r} is not a number") from None


def load_published(path: Path) -> dict[tuple[str, str], dict]:
    """{(setting, our method name): {"table", "RA", "UA", "TA", "MIA", "AvgGap", "PFLOPs": PublishedValue}}."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"published results {path} do not exist; pass --reference FILE (the CoUn CSV)")
    rows: dict[tuple[str, str], dict] = {}
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for n, fields in enumerate(csv.reader(lines), start=1):
        if len(fields) != len(CSV_COLUMNS):
            raise ConfigError(f"{path}: data line {n} has {len(fields)} fields, expected {len(CSV_COLUMNS)}")
        entry = dict(zip(CSV_COLUMNS, fields))
        method = METHOD_ALIASES.get(entry["method"], entry["method"])
        rows[(entry["setting"], method)] = {"table": entry["table"], **{
            k: _value(entry[k], f"{path}, line {n}, {k}") for k in CSV_COLUMNS[3:]}}
    return rows


def setting_name(dataset: str, model: str, scenario: str) -> str | None:
    """Our block -> the paper's setting label, or None if the paper has no such setting."""
    d, m = DATASET_CODES.get(dataset), MODEL_CODES.get(model)
    if d is None or m is None:
        return None
    if match := re.fullmatch(r"random(\d+)", scenario):
        return f"{d}-{m}-{match.group(1)}%"
    if match := re.fullmatch(r"class(\d+)", scenario):
        name = CLASS_NAMES.get((dataset, int(match.group(1))))
        return f"{d}-{m}-class({name})" if name else None
    return None


HEADINGS = ["Method", "RA (ours / paper)", "UA", "TA", "MIA", "Avg-Gap of means (ours / paper)",
            "PFLOPs (ours / paper)", "Seeds (ours)"]


def _pair(ours: float, theirs: PublishedValue | None) -> str:
    left = "–" if ours is None or math.isnan(ours) else f"{ours:.2f}"
    return f"{left} / {theirs.text() if theirs else '–'}"


def comparison(summary: pd.DataFrame, published: dict[tuple[str, str], dict]) -> list[tuple[str, list[list[str]]]]:
    """Per block with a published setting: (title, rows) with our mean and the paper's value side by side.
    Methods on either side only are listed with '–' on the other."""
    out = []
    if summary.empty:
        return out
    for key, block in summary.groupby(GROUP, sort=False):
        setting = setting_name(*key)
        if setting is None:
            continue
        theirs = {m: v for (s, m), v in published.items() if s == setting}
        if not theirs:
            continue
        rows = []
        ours = {row["method"]: row for _, row in block.iterrows()}
        for method in list(ours) + [m for m in theirs if m not in ours]:
            row, paper = ours.get(method), theirs.get(method)
            cells = [method]
            for metric in GAP_METRICS:
                cells.append(_pair(row[f"{metric}_mean"] if row is not None else None, paper[metric] if paper else None))
            cells.append(_pair(row["avg_gap_of_means"] if row is not None else None, paper["AvgGap"] if paper else None))
            pflops = fmt_pflops(row["pflops_mean"]) if row is not None else "–"
            cells.append(f"{pflops} / {paper['PFLOPs'].text() if paper else '–'}")
            cells.append(str(row["seeds"]) if row is not None else "–")
            rows.append(cells)
        table = next(iter(theirs.values()))["table"]
        out.append((f"{' / '.join(key)} vs CoUn {table} ({setting})", rows))
    return out


NOTE = ("Our rows beside CoUn's published ones (arXiv 2509.16391; mean over 10 trials). Avg-Gap in the paper's "
        "form on both sides: each metric averaged over seeds first, then the mean |gap| to Retrain's means. "
        "'*' marks a published value the paper's own deltas contradict. Absolute accuracies depend on the data "
        "copy and recipe; compare gaps.")


def render_comparison(summary: pd.DataFrame, published: dict[tuple[str, str], dict]) -> str:
    blocks = comparison(summary, published)
    if not blocks:
        settings = sorted({s for s, _ in published})
        return (f"_No block of these results matches a published setting ({', '.join(settings)})._\n")
    parts = [NOTE + "\n"]
    for title, rows in blocks:
        parts.append(f"### {title}\n")
        parts.append(markdown_table(HEADINGS, rows))
    return "\n".join(parts)
