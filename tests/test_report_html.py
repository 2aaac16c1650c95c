"""The rendered report as a reader opens it: ``report.html`` parsed with ``html.parser``.

The default design (an ablation, simulated through ``tests/simulated_runs.py`` with learning curves) must open with
the answers table and its cost ratios, hold no literal Markdown outside code, and every figure caption's numbers must
be those of the data the figure drew; a replicated grid run checks the figures an ablation skips (effects, EDFs,
parameter importance). Colours: one per name across every figure, the baselines' never a candidate's.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
from matplotlib.lines import Line2D
from simulated_runs import Population, ablation_meta, run_meta, simulate_ablation, simulate_run
from test_report import _curves

import ablate.report.figures as figures_module
from ablate.core.defaults import SEEDS
from ablate.core.schema import SELECTION_PHASES
from ablate.report import build_report, load_run
from ablate.report.figures import make_figures
from ablate.report.style import BASELINE_PALETTE, CANDIDATE_PALETTE, palette
from ablate.results import write_tables

ANSWER_COLUMNS = ["question", "answer", "Δ test top-1 (pp) [95 % CI]", "Holm p", "detectable (pp)", "MACs ratio",
                  "latency ratio"]
BASELINES = {"ResNet50", "R50-max", "R50-hybrid"}  # the simulated runs' baselines
MARKDOWN = re.compile(r"\*|`|\]\(|^#+ |\\[\\`*_|]|\|---", re.M)


class _Page(HTMLParser):
    """The page's top-level body elements as (tag, text, tags inside), table cells by row, and the text that lies
    outside ``<code>`` / ``<pre>``."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[dict] = []
        self.prose: list[str] = []
        self._stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("img", "br", "hr", "meta"):
            if self._in_body() and self.blocks:
                self.blocks[-1]["tags"].append(tag)
            return
        if self._stack == ["html", "body"]:
            self.blocks.append({"tag": tag, "text": "", "tags": [], "rows": []})
        elif self._in_body() and self.blocks:
            self.blocks[-1]["tags"].append(tag)
            if tag == "tr":
                self.blocks[-1]["rows"].append([])
            if tag in ("td", "th"):
                self.blocks[-1]["rows"][-1].append("")
        self._stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self._stack:
            del self._stack[len(self._stack) - 1 - self._stack[::-1].index(tag):]

    def handle_data(self, data):
        if not (self._in_body() and self.blocks and len(self._stack) > 2):
            return
        block = self.blocks[-1]
        block["text"] += data
        if self._stack[-1] in ("td", "th"):
            block["rows"][-1][-1] += data
        if not {"code", "pre"} & set(self._stack):
            self.prose.append(data)

    def _in_body(self) -> bool:
        return self._stack[:2] == ["html", "body"]


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    return parser


def _write(folder, trials, predictions, meta, curves=None):
    folder.mkdir(parents=True)
    write_tables(folder, trials.to_dict("records"), pd.DataFrame() if curves is None else curves, predictions)
    (folder / "run.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture(scope="module")
def default(tmp_path_factory):
    """The default run: qlblock's ablation, every config and baseline under the default seeds, with curves; the
    twist variant 6 pp worse in the population, so one row has a clear answer."""
    population = Population()
    population.config_effects["multiply-twist-w2"] = population.shift_for(-6.0)
    trials, predictions = simulate_ablation(np.random.default_rng(3), population)
    folder = _write(tmp_path_factory.mktemp("run") / "default", trials, predictions, ablation_meta(),
                    _curves(trials))
    return folder, build_report(folder), trials


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A `--design grid --confirm 3` run: 36 configs under the run seed, the best 3 and the baselines retrained."""
    population = Population()
    population.effects[("spatial", "twist")] = population.shift_for(-12.0)
    trials, predictions = simulate_run(np.random.default_rng(4), population, configs=36)
    folder = _write(tmp_path_factory.mktemp("run") / "grid", trials, predictions, run_meta(design="grid"))
    return folder, build_report(folder), trials


def test_the_first_screen_is_the_answers_table_with_cost_ratios(default):
    _, out, trials = default
    page = _parse(out.html.read_text())
    blocks = page.blocks
    assert blocks[0]["tag"] == "h1" and blocks[0]["text"].startswith("Ablation report: ")
    assert (blocks[1]["tag"], blocks[1]["text"]) == ("h2", "Answers")
    table = blocks[2]
    assert table["tag"] == "table" and table["rows"][0] == ANSWER_COLUMNS
    rows = table["rows"][1:]
    assert len(rows) == 7 + 3  # qlblock's 7 one-axis variants and the reference vs 3 baselines
    assert all(re.fullmatch(r"\d+\.\d\d×", cell) for row in rows for cell in row[-2:])
    twist = next(row for row in rows if row[0].startswith("multiply-twist-w2 vs reference"))
    assert twist[1] == "worse" and twist[2].startswith("-")
    macs = trials.groupby("name")["macs"].mean()
    assert twist[5] == f"{macs['multiply-twist-w2'] / macs['multiply-dwconv-w2']:.2f}×"
    note = blocks[3]
    assert note["tag"] == "p" and note["text"].startswith("Method: ") and "Noise floor: " in note["text"]
    assert len(note["text"]) < 1000  # a short note, the detail is in Verdicts


def test_no_literal_markdown_and_no_link_in_the_page(default, grid):
    for _, out, _ in (default, grid):
        page = out.html.read_text()
        parsed = _parse(page)
        prose = "\n".join(parsed.prose)
        assert not MARKDOWN.search(prose), MARKDOWN.search(prose)
        tags = {tag for block in parsed.blocks for tag in [block["tag"], *block["tags"]]}
        assert "a" not in tags and "em" in tags and "code" in tags  # *selection* became <em>, `names` <code>
        assert "http" not in page and page.count('src="data:image/png;base64,') == len(out.figures)


def _captions(page: _Page) -> dict[str, str]:
    """Each figure's caption by its title: the emphasised paragraph after the ``Figure N: title`` heading."""
    captions, title = {}, None
    for block in page.blocks:
        if block["tag"] == "h3" and block["text"].startswith("Figure "):
            title = block["text"].split(": ", 1)[1]
        elif title and block["tag"] == "p" and block["tags"] == ["em"]:
            captions[title], title = block["text"], None
    return captions


def _number(pattern: str, text: str) -> list[int]:
    match = re.search(pattern, text)
    assert match, (pattern, text)
    return [int(g) for g in match.groups()]


def _check_captions(folder, out, tmp_path) -> dict[str, object]:
    """Every figure's caption in the page is the one computed with its data; returns the figures by file name."""
    figures = make_figures(load_run(folder), tmp_path)
    captions = _captions(_parse(out.html.read_text()))
    assert set(captions) == {f.title for f in figures}
    for figure in figures:
        assert captions[figure.title] == figure.caption
    return {f.path.name: f for f in figures if f.path is not None}


def test_every_caption_states_the_numbers_of_its_figures_data(default, tmp_path):
    folder, out, trials = default
    drawn = _check_captions(folder, out, tmp_path)
    assert {"accuracy_vs_macs.png", "accuracy_vs_latency.png", "learning_curves.png"} <= set(drawn)
    done = trials[trials["status"] == "completed"]
    for name in ("accuracy_vs_macs.png", "accuracy_vs_latency.png"):
        figure = drawn[name]
        configs = figure.data
        n, cands, bases = _number(r"for (\d+) configs \((\d+) candidates, (\d+) baselines\)", figure.caption)
        assert (n, cands, bases) == (len(configs), (configs["kind"] == "candidate").sum(),
                                     (configs["kind"] == "baseline").sum()) == (11, 8, 3)
        assert _number(r"(\d+) over the seeds nothing selected on", figure.caption) == [11]
        assert _number(r"faint dots are the (\d+) single models", figure.caption) == [len(done)]
    front = drawn["accuracy_vs_macs.png"]
    ringed = _number(r"the (\d+) ringed configs are the Pareto front", front.caption)
    assert ringed == [int(front.data["on_front"].sum())] and ringed[0] >= 1
    assert "ringed" not in drawn["accuracy_vs_latency.png"].caption  # the run's cost is MACs: one front, one figure
    assert "run seed's model" not in front.caption  # every model of an ablation is evidence
    skipped = [f for f in make_figures(load_run(folder), tmp_path / "again") if f.path is None]
    assert [f.title.split(" ")[0] for f in skipped] == ["Per-axis", "Error", "Parameter"]  # factorial figures only
    for figure in skipped:
        assert _number(r"around the reference \((\d+) candidate configs\)", figure.caption) == \
            [trials.loc[trials["kind"] == "candidate", "name"].nunique()] == [8]
    curves = drawn["learning_curves.png"]
    counts = _number(r"of the (\d+) candidates first on the leaderboard \((\d+) models\) and the (\d+) baselines "
                     r"\((\d+) models\)", curves.caption)
    per_name = curves.data.drop_duplicates("name")["kind"].value_counts()
    per_model = curves.data.drop_duplicates("trial_id")["kind"].value_counts()
    assert counts == [per_name["candidate"], per_model["candidate"], per_name["baseline"], per_model["baseline"]] \
        == [5, 25, 3, 15]


def test_grid_captions_count_what_was_fitted(grid, tmp_path):
    folder, out, trials = grid
    drawn = _check_captions(folder, out, tmp_path)
    importance = drawn["param_importance.png"]
    own_seed = trials[(trials["status"] == "completed") & (trials["kind"] == "candidate")
                      & trials["phase"].isin(SELECTION_PHASES)]
    reruns = (trials["kind"] == "candidate") & ~trials["phase"].isin(SELECTION_PHASES)
    assert reruns.sum() == 3 * SEEDS  # the 3 confirmed configs' fresh seeds: fANOVA never sees them
    assert _number(r"over the (\d+) completed run-seed candidates", importance.caption) == [len(importance.data)] \
        == [len(own_seed)] == [36]
    effects = drawn["axis_effects.png"]
    assert _number(r"among (\d+) configs", effects.caption) == [own_seed["name"].nunique()]
    assert set(effects.data["axis"]) == {"nonlinearity", "spatial", "width"}
    edf = drawn["error_edf.png"]
    for axis, n in re.findall(r"(\w+): normalised over the MACs every choice occupies \((\d+) configs\)", edf.caption):
        assert int(n) == (edf.data["axis"] == axis).sum()


def _handle_colour(handle):
    """The fill of a legend handle (a line's colour, a marker's face, a collection's face), None when it has none."""
    if isinstance(handle, Line2D):
        colour = handle.get_markerfacecolor() if handle.get_marker() not in (None, "None", "") else handle.get_color()
    else:
        colour = handle.get_facecolor()
    rgba = np.asarray(mcolors.to_rgba_array(colour))
    return rgba[0] if len(rgba) and rgba[0][3] > 0 else None


def _legend_colours(monkeypatch, folder, tmp_path) -> list[tuple[str, str, str]]:
    """(figure, legend label, colour) of every coloured legend entry of every figure a run draws; a name printed
    inside a plot (where close markers' labels would overlap) is recorded as ``(figure, "text in plot", text)``."""
    seen, save = [], figures_module._save

    def recording(fig, path):
        for ax in fig.axes:
            seen.extend((path.name, "text in plot", t.get_text()) for t in ax.texts if t.get_text() != "n/e")
            legend = ax.get_legend()
            for text, handle in zip(legend.get_texts() if legend else [], legend.legend_handles if legend else []):
                rgba = _handle_colour(handle)
                if rgba is None:
                    continue
                if np.ptp(rgba[:3]) > 1e-3 or text.get_text().removeprefix("baseline ") in BASELINES:
                    seen.append((path.name, text.get_text().removeprefix("baseline "), mcolors.to_hex(rgba)))
        return save(fig, path)

    monkeypatch.setattr(figures_module, "_save", recording)
    make_figures(load_run(folder), tmp_path)
    return seen


@pytest.mark.parametrize("which", ["default", "grid"])
def test_one_colour_per_name_in_every_figure_and_baselines_apart(which, request, monkeypatch, tmp_path):
    folder = request.getfixturevalue(which)[0]
    colours = palette(load_run(folder))
    assert {colours[b] for b in BASELINES} <= set(BASELINE_PALETTE)
    assert not {c for n, c in colours.items() if n not in BASELINES} & set(BASELINE_PALETTE)
    entries = _legend_colours(monkeypatch, folder, tmp_path)
    assert not [e for e in entries if e[1] == "text in plot"]  # names live in legends: none can print over another
    named = [(fig, label, colour) for fig, label, colour in entries if label in colours]
    assert len({fig for fig, _, _ in named}) >= 3  # both scatters and the curves (the EDFs too on the grid)
    for fig, label, colour in named:
        assert colour == colours[label], (fig, label, colour)
    assert all(colour in CANDIDATE_PALETTE for _, label, colour in named if label not in BASELINES)
