"""The report as one list of blocks, written once as Markdown; the HTML page is that Markdown rendered by
markdown-it-py (CommonMark with tables, raw HTML off), so both documents are the same text section for section.

The HTML embeds figures as data URIs and entity-escapes every '//' so that the page holds no URL and loads nothing.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd
from markdown_it import MarkdownIt

from ablate.core.schema import REFERENCE_BASELINE, SYMMETRY_RTOL
from ablate.report.data import EVIDENCE_SPLIT, MISSING, Figure, Run, md_escape
from ablate.report.findings import answers_note, findings, verdict_lines
from ablate.report.tables import (
    ablation_table,
    answers_table,
    cost_table,
    leaderboard,
    published_table,
    unfinished_table,
)
from ablate.report.text import header_items

PUBLISHED_HEADING = "Published reference numbers (ImageNet, from the papers — not measured here)"
ANSWERS_HEADING = "Answers"


Block = tuple[str, object]


def build_document(run: Run, figures: list[Figure]) -> list[Block]:
    """The report as an ordered list of (block kind, content): the answers table first (one row per verdict-bearing
    comparison with its cost ratios) and a short note on the method and noise, then what they rest on."""
    title = [("h1", f"Ablation report: {md_escape(run.directory.resolve().name)}")]
    return (title + _answers_blocks(run) + _ablation_blocks(run) + _run_blocks(run) + _leaderboard_blocks(run)
            + _published_blocks() + _figure_blocks(figures) + [("h2", "Findings"), ("ul", findings(run))])


def _answers_blocks(run: Run) -> list[Block]:
    """The answers table and its note, then the Verdicts section's detail; without a family, why there is none."""
    heading: Block = ("h2", ANSWERS_HEADING)
    if not run.verdicts.attrs.get("family_size", 0):
        return [heading, ("ul", verdict_lines(run))]
    return [heading, ("table", answers_table(run)), ("p", answers_note(run)),
            ("h2", "Verdicts"), ("ul", verdict_lines(run))]


def _ablation_blocks(run: Run) -> list[Block]:
    """An ablation design's detail: the reference, one row per variant, then the reference vs each baseline, with
    each row's model's accuracy and absolute costs."""
    if run.reference is None:
        return []
    table = ablation_table(run)
    if len(table) <= 1:
        return [("h2", "Ablation table"), ("p", "The reference block has no completed model yet: no row to show.")]
    intro = (f"Every model of this table trained under the same {run.meta.get('seeds', '?')} seeds and was scored on "
             f"the same {EVIDENCE_SPLIT} images; each row's Δ is its model's {EVIDENCE_SPLIT} top-1 minus the "
             f"reference's (a reference row: the reference's minus the baseline's), as in the answers table. Costs "
             "are the row's model's.")
    interactions = ("An ablation changes one axis at a time around the reference, so it cannot see interactions: "
                    "whether an axis helps elsewhere in the space is a question for `--design grid` or "
                    "`--design balanced`.")
    return [("h2", "Ablation table"), ("p", intro), ("table", table), ("p", interactions)]


def _run_blocks(run: Run) -> list[Block]:
    return [("h2", "Run"), ("ul", header_items(run)), ("p", "Command to reproduce:"),
            ("code", str(run.meta.get("command") or MISSING))]


def _leaderboard_blocks(run: Run) -> list[Block]:
    rest = unfinished_table(run)
    intro = (f"One row per completed config (candidates and baselines; {len(run.summary)} configs, "
             f"{len(run.completed)} completed models), confirmed configs first. *selection*: the run seed's val "
             "top-1, which ranked the configs and picked those to confirm (optimistic for the picked ones; it "
             "judges nothing). *evidence*: test top-1 — over the fresh confirmation seeds for a confirmed config, "
             "else the run seed's model — with a 95 % interval over both seeds and the finite test set; Δ vs "
             f"{REFERENCE_BASELINE} and Δ at equal MACs (against the best baseline costing no more, "
             "chosen on the selection "
             "numbers) are against the test top-1 shown in that baseline's row, paired image by image, each side "
             "over its own seeds. Only the answers table and the Verdicts judge; "
             f"★ marks the Pareto front ({run.front_text}), the same front as the figures' and Findings'.")
    cost_intro = "Costs of the same configs (means over their models)."
    uncounted = run.summary["uncounted_ops"].fillna("").astype(str)
    if (uncounted != "").any():
        names = ", ".join(run.summary.loc[uncounted != "", "name"])
        cost_intro += (f" Warning: fvcore cannot count some ops of {names} (column uncounted ops); their MACs and "
                       "element-wise ops leave that work out, so they are lower bounds, not a free op.")
    if "symmetric" in run.summary and run.summary["symmetric"].notna().any():
        cost_intro += (f" symmetric: the trained model kept its logits (max |Δlogits| ≤ {SYMMETRY_RTOL:g} × max "
                       "|logit|, every seed) when each residual stream was rotated by a random orthogonal matrix with "
                       "its neighbours counter-rotated, BN fused, in eval mode — QLNet's continuous symmetry; the gap "
                       "is the largest |Δlogits| over the seeds.")
    return [("h2", "Leaderboard (measured in this run)"), ("p", intro), ("table", leaderboard(run)),
            ("h3", "Costs"), ("p", cost_intro), ("table", cost_table(run)),
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
            image = f"![{md_escape(content.title)}]({content.path.relative_to(base).as_posix()})\n\n" \
                if content.path else ""
            parts.append(f"{image}*{md_escape(content.caption)}*")
    return "\n\n".join(parts) + "\n"


def _markdown_table(df: pd.DataFrame) -> str:
    def cell(v) -> str:
        return md_escape(v).replace("\n", " ")
    lines = ["| " + " | ".join(map(cell, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")
_IMAGE = re.compile(r'src="([^"]+\.png)"')


def render_html(markdown: str, base: Path, title: str) -> str:
    """The report's Markdown as one HTML file with inline CSS and base64 figures: opens from disk, fetches nothing.

    Args:
        markdown: The report as :func:`render_markdown` wrote it.
        base: The run folder its figure links are relative to.
        title: The page title.

    Returns:
        The page; every '//' of its text entity-escaped, so no URL scheme can appear in its source.
    """
    body = _MARKDOWN.render(markdown).replace("//", "&#47;&#47;")
    body = _IMAGE.sub(lambda m: 'src="data:image/png;base64,'
                      + base64.b64encode((base / html.unescape(m.group(1))).read_bytes()).decode("ascii") + '"', body)
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title).replace('//', '&#47;&#47;')}</title>\n<style>{_CSS}</style>\n</head>\n"
            f"<body>\n{body}</body>\n</html>\n")


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;font-size:0.85em;margin:1em 0}"
        "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f0f0}"
        "td:nth-child(-n+2){text-align:left}pre{background:#f6f6f6;padding:0.8em;overflow-x:auto}"
        "img{max-width:100%}p:has(> img)+p>em{font-size:0.9em}")
