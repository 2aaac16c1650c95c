"""The report as one list of blocks, rendered to markdown and to a self-contained HTML page.

Building the blocks once keeps both documents section for section the same; the HTML embeds figures as data URIs
and entity-escapes every '//' so that the page holds no URL and loads nothing.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd

from ablate.models.symmetry import SYMMETRY_RTOL
from ablate.report.data import COST_LABELS, MISSING, REFERENCE, Figure, Run
from ablate.report.findings import findings
from ablate.report.tables import leaderboard, published_table, unfinished_table
from ablate.report.text import header_items, noise_item

PUBLISHED_HEADING = "Published reference numbers (ImageNet, from the papers — not measured here)"


Block = tuple[str, object]


def build_document(run: Run, figures: list[Figure]) -> list[Block]:
    """The report as an ordered list of (block kind, content), rendered by both markdown and HTML."""
    return ([("h1", f"Ablation report: {run.directory.resolve().name}")] + _run_blocks(run) + _leaderboard_blocks(run)
            + _published_blocks() + _figure_blocks(figures) + [("h2", "Findings"), ("ul", findings(run))])


def _run_blocks(run: Run) -> list[Block]:
    return [("h2", "Run"), ("p", noise_item(run)), ("ul", header_items(run)), ("p", "Command to reproduce:"),
            ("code", str(run.meta.get("command") or MISSING))]


def _leaderboard_blocks(run: Run) -> list[Block]:
    rest = unfinished_table(run)
    intro = (f"One row per completed config (candidates and baselines) by mean validation top-1 over its training "
             f"seeds, with the 95 % t-interval (— with one seed: n = 1 cannot give a CI); Δ vs {REFERENCE} is paired "
             f"by training seed (same data split) over the seeds both completed; Δ at equal MACs is the mean val "
             f"top-1 minus the baselines' accuracy-vs-MACs front interpolated in log MACs (\"outside range\" beyond "
             f"it); ★ marks the Pareto front (max mean val top-1, min {COST_LABELS[run.cost]}) over "
             f"{len(run.summary)} configs ({len(run.completed)} completed rows).")
    if "symmetric" in run.summary and run.summary["symmetric"].notna().any():
        intro += (f" symmetric: the trained model kept its logits (max |Δlogits| ≤ {SYMMETRY_RTOL:g} × max |logit|, "
                  "every seed) when each residual stream was rotated by a random orthogonal matrix with its "
                  "neighbours counter-rotated, BN fused, in eval mode — QLNet's continuous symmetry; the gap is the "
                  "largest |Δlogits| over the seeds.")
    return [("h2", "Leaderboard (measured in this run)"), ("p", intro), ("table", leaderboard(run)),
            ("h2", "Pruned and failed trials"),
            ("table", rest) if not rest.empty else ("p", "None: 0 trials were pruned or failed.")]


def _published_blocks() -> list[Block]:
    """The papers' numbers under their own heading, never in a measured table."""
    published = published_table()
    note = ("Numbers reported by the papers (ImageNet-1k at 224 px unless the dataset column says otherwise); they are "
            "references, not results of this run. MACs in G (the papers' \"FLOPs\").")
    missing = ("p", "The published_results.csv resource is missing from this installation (0 rows).")
    return [("h2", PUBLISHED_HEADING), ("p", note), ("table", published) if published is not None else missing]


def _figure_blocks(figures: list[Figure]) -> list[Block]:
    blocks: list[Block] = [("h2", "Figures")]
    for number, figure in enumerate(figures, 1):
        blocks += [("h3", f"Figure {number}: {figure.title}"), ("figure", figure)]
    return blocks


def render_markdown(doc: list[Block], base: Path) -> str:
    """Markdown with figures linked relative to the run folder, so the folder can be moved as a whole."""
    parts = []
    for kind, content in doc:
        if kind in ("h1", "h2", "h3"):
            parts.append("#" * int(kind[1]) + " " + content)
        elif kind == "p":
            parts.append(content)
        elif kind == "ul":
            parts.append("\n".join(f"- {item}" for item in content))
        elif kind == "code":
            parts.append(f"```\n{content}\n```")
        elif kind == "table":
            parts.append(_markdown_table(content))
        elif kind == "figure":
            image = f"![{content.title}]({content.path.relative_to(base).as_posix()})\n\n" if content.path else ""
            parts.append(f"{image}*{content.caption}*")
    return "\n\n".join(parts) + "\n"


def _markdown_table(df: pd.DataFrame) -> str:
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(cell, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _escape(value) -> str:
    """HTML-escaped text with '//' entity-escaped, so no URL scheme can appear in the page source."""
    return html.escape(str(value)).replace("//", "&#47;&#47;")


def _text(value) -> str:
    """Escaped inline text where markdown backticks become <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _escape(value))


def render_html(doc: list[Block], title: str) -> str:
    """One HTML file with inline CSS and base64 figures: opens from disk, fetches nothing."""
    body = []
    for kind, content in doc:
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{_text(content)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_text(content)}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_text(i)}</li>" for i in content) + "</ul>")
        elif kind == "code":
            body.append(f"<pre><code>{_escape(content)}</code></pre>")
        elif kind == "table":
            body.append(_html_table(content))
        elif kind == "figure":
            body.append(_html_figure(content))
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{_text(title)}</title>\n"
            f"<style>{_CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{_text(c)}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(f"<td>{_text(v)}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{rows}</tbody>\n</table>"


def _html_figure(figure: Figure) -> str:
    if figure.path is None:
        return f"<p class=\"skipped\">{_text(figure.caption)}</p>"
    data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
    return (f"<figure><img alt=\"{_text(figure.title)}\" src=\"data:image/png;base64,{data}\">"
            f"<figcaption>{_text(figure.caption)}</figcaption></figure>")


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;font-size:0.85em;margin:1em 0}"
        "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f0f0}"
        "td:nth-child(-n+3){text-align:left}pre{background:#f6f6f6;padding:0.8em;overflow-x:auto}"
        "figure{margin:1em 0}img{max-width:100%}figcaption{font-style:italic;font-size:0.9em}"
        ".skipped{font-style:italic;color:#666}")
