import html
import json
import math
import re
from pathlib import Path

import altair as alt
import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from gptviz import analysis as A
from gptviz import viz
from gptviz.generate import next_token_probs
from gptviz.tokenizers import BPETokenizer, CharTokenizer
from gptviz.viz.attention import TITLE_PX, GridLayout, grid_cell, grid_patterns
from gptviz.viz.style import CHAR_CLASS_COLOURS, OKABE_ITO, PASTELS

VIRIDIS = go.Heatmap(colorscale="Viridis").colorscale
RDBU = go.Heatmap(colorscale="RdBu").colorscale


@pytest.fixture
def run(small_model, shakespeare_char):
    """A real forward pass: (tokenizer, ids, logits, cache)."""
    tok = shakespeare_char.tokenizer
    ids = tok.encode("To be, or not: e")  # 16 tokens; 'e' and ' ' repeat
    logits, cache = small_model.run_with_cache(torch.tensor([ids]))
    return tok, ids, logits, cache


def test_the_figure_layer_never_imports_streamlit():
    root = Path(__file__).parent.parent / "gptviz"
    for path in [root / "analysis.py", *sorted((root / "viz").glob("*.py"))]:
        assert not re.search(r"^\s*(import|from)\s+streamlit", path.read_text(), re.M), path


# Builders skip plotly's validation at run time (style.figure); here every one of them, in each of
# its shapes, must come out of a validating go.Figure unchanged: no unknown property, no value
# plotly would coerce, so the browser draws what the tests below read.
LENS = dict(layers=["embed", "block 0"], top_probs=[[0.5, 0.2], [0.7, 0.1]], top_labels=[["a", "<b>"], ["c", "d"]],
            top_ids=[[3, 4], [3, 5]], answer_id=3, answer_rank=[1, 1], first_layer_top1=0, answer_label="a",
            position=2)
# a timeline of 2 layers x 2 heads at steps 0, 10, 20: head (1, 0) becomes an induction head at step 10
LINE = {"steps": [0, 10, 20], "icl": [0.0, 0.8, 1.5],
        "scores": {"induction": torch.tensor([[[0.0, 0.1], [0.05, 0.0]], [[0.0, 0.1], [0.6, 0.1]], [[0.0, 0.1], [0.8, 0.1]]]),
                   "previous_token": torch.rand(3, 2, 2) * 0.3}}
BUILDERS = {
    "grid": lambda: viz.attention_grid(torch.rand(2, 3, 6, 6), list("ab<c&d"), detector_badges={(0, 1): "prev"}),
    "grid, no attention": lambda: viz.attention_grid(torch.zeros(0, 0, 4, 4), list("abcd")),
    "grid, dense": lambda: viz.attention_grid(torch.rand(1, 1, 30, 30), [str(i) for i in range(30)]),
    "row bars": lambda: viz.attention_row_bars(torch.rand(6), list("ab<c&d"), "Where <b>", highlight=2),
    "next-token bars": lambda: viz.next_token_bars(torch.softmax(torch.randn(10), -1), str, k=5, highlight=7),
    "logit lens": lambda: viz.logit_lens_chart(LENS),
    "logit lens, never #1": lambda: viz.logit_lens_chart({**LENS, "first_layer_top1": None}),
    "residual norms": lambda: viz.residual_norm_heatmap(torch.rand(3, 6), list("ab<c&d")),
    "loss": lambda: viz.loss_chart([{"name": "a<", "step": [0, 1], "train_loss": [4.0, 3.0], "eval_step": [1],
                                     "val_loss": [3.1]}], 65, best_val_marker=True),
    "loss, nothing yet": lambda: viz.loss_chart([{"name": "new"}], 65),
    "scatter 2-d by class": lambda: viz.embedding_scatter(torch.randn(4, 2), list("aB1 "), ["lowercase", "uppercase",
                                                           "digit", "space"], explained=[0.3, 0.2]),
    "scatter 3-d by count": lambda: viz.embedding_scatter(torch.randn(4, 3), list("abcd"), [1, 5, 2, 0]),
    "scatter, empty": lambda: viz.embedding_scatter(torch.zeros(0, 2), [], []),
    "similarity": lambda: viz.similarity_heatmap(torch.rand(4, 4), list("abcd")),
    "similarity, dense": lambda: viz.similarity_heatmap(torch.rand(30, 30), [str(i) for i in range(30)]),
    "neighbours": lambda: viz.neighbours_bars([("a", 0.9), ("<", -0.2)]),
    "token counts": lambda: viz.token_frequency_chart([("a", 9), ("&", 3)]),
    "head scores over training": lambda: viz.head_scores_over_training(LINE, {"induction": "ind<", "previous_token": "prev"},
                                                                       current_step=10, formed=10),
    "head scores, no heads": lambda: viz.head_scores_over_training(
        {**LINE, "scores": {"induction": torch.zeros(3, 0, 0)}}, {"induction": "induction"}),
    "icl": lambda: viz.icl_chart(LINE, current_step=20, formed=10),
}


@pytest.mark.parametrize("name", BUILDERS)
def test_figures_are_what_plotly_validation_would_make_of_them(name):
    fig = BUILDERS[name]()
    checked = go.Figure(fig.to_dict())  # raises on an unknown property or a bad value
    assert json.loads(checked.to_json()) == json.loads(fig.to_json())


# ----------------------------------------------------------------------------- tokens


def test_token_html_escapes_and_keeps_one_span_per_token():
    text = "<script>alert('x')</script>\nhi & bye"
    tok = CharTokenizer.from_text(text)
    out = viz.token_html(tok, tok.encode(text))
    assert set(re.findall(r"</?(\w+)", out)) == {"div", "span", "br"}  # no tag from the text survives
    shown = html.unescape(re.sub(r"<[^>]+>", "", out))
    assert shown == text.replace("\n", "⏎")
    spans = re.findall(r'<span title="([^"]*)" style="background:(#[0-9A-F]{6})', out)
    assert len(spans) == len(text)
    assert spans[0][0] == f"id {tok.encode('<')[0]}: &lt;"
    assert {colour for _, colour in spans} <= set(PASTELS) and spans[0][1] != spans[1][1]
    assert "⏎<br>" in out and "\n" not in out  # one line of HTML, visible line break
    assert 'title="id 0: ⏎"' in out  # '\n' sorts first in the char vocabulary


def test_token_html_shows_half_characters_by_their_bytes_and_cuts_long_texts():
    tok = BPETokenizer([])  # no merges: every byte is a token
    out = viz.token_html(tok, tok.encode("é!"))
    assert "&lt;0xC3&gt;" in out and "&lt;0xA9&gt;" in out and ">!</span>" in out
    out = viz.token_html(tok, tok.encode("abcdef"), max_tokens=4)
    assert out.count("<span title=") == 4 and "2 more tokens" in out


def test_token_frequency_chart_puts_the_most_frequent_on_top(shakespeare_char):
    tok = shakespeare_char.tokenizer
    counts = A.token_counts(shakespeare_char.tokens, tok.vocab_size)
    top = [(tok.label(i), c) for i, c in A.top_tokens(counts, 8)]
    fig = viz.token_frequency_chart(top + [("<b>", 1)])
    (bar,) = fig.data
    assert bar.type == "bar" and bar.orientation == "h"
    assert list(bar.x) == [c for _, c in top] + [1]
    assert fig.layout.yaxis.ticktext[0] == "␣" and fig.layout.yaxis.ticktext[-1] == "&lt;b&gt;"
    assert fig.layout.yaxis.autorange == "reversed"


# ----------------------------------------------------------------------------- training


def test_loss_chart_draws_train_val_and_the_random_guess_line():
    runs = [
        {"name": "small", "step": [0, 1, 2, 3], "train_loss": [4.3, 3.5, 3.0, 2.9], "eval_step": [0, 2, 3],
         "val_loss": [4.2, 3.1, 3.2]},
        {"name": "big", "step": [0, 1], "train_loss": [4.1, 3.0], "eval_step": [1], "val_loss": [3.05]},
    ]
    fig = viz.loss_chart(runs, vocab_size=65, best_val_marker=True)
    names = [t.name for t in fig.data]
    assert names == ["small train", "small", "small best val", "big train", "big", "big best val"]
    assert [t.name for t in fig.data if t.showlegend is not False] == ["small", "big"]  # one entry per run
    assert "thin line: train loss" in fig.layout.title.subtitle.text and "★" in fig.layout.title.subtitle.text
    # the legend is placed from the figure's bottom edge and the axis makes room for "step" above it
    assert fig.layout.legend.yref == "container" and fig.layout.xaxis.automargin is True
    train, val, best = fig.data[:3]
    assert list(train.y) == runs[0]["train_loss"] and list(val.x) == runs[0]["eval_step"]
    assert train.line.width < val.line.width and "markers" in val.mode
    assert (best.x[0], best.y[0]) == (2, 3.1)  # the lowest val loss, before it went up again
    assert train.line.color == val.line.color == OKABE_ITO[0] and fig.data[3].line.color == OKABE_ITO[1]
    (line,) = fig.layout.shapes
    assert line.y0 == line.y1 == pytest.approx(math.log(65)) and line.line.dash == "dash"
    assert "random guess = ln(V)" in fig.layout.annotations[0].text
    assert fig.layout.yaxis.range[0] == 0 and fig.layout.yaxis.range[1] >= 4.3


def test_loss_chart_marks_the_steps_shown_elsewhere():
    run = {"name": "r", "step": list(range(300)), "train_loss": [3.0] * 300, "eval_step": [0, 300],
           "val_loss": [4.0, 2.5]}
    fig = viz.loss_chart([run], 65, step_marks={"A": 300, "B": 100})
    lines = [s for s in fig.layout.shapes if s.x0 == s.x1]  # vertical: the baseline is horizontal
    assert [(s.x0, s.yref, s.line.dash) for s in lines] == [(300, "y domain", "dot"), (100, "y domain", "dot")]
    assert [(a.text, a.x) for a in fig.layout.annotations][1:] == [("A", 300), ("B", 100)]


@pytest.mark.parametrize("runs", [
    [],
    [{"name": "new", "step": [], "train_loss": [], "eval_step": [], "val_loss": []}],
    [{"name": "one", "step": [0], "train_loss": [4.2], "eval_step": [0], "val_loss": [4.19]}],
])
def test_loss_chart_of_a_run_that_just_started(runs):
    fig = viz.loss_chart(runs, vocab_size=50257, best_val_marker=True)
    assert fig.layout.shapes[0].y0 == pytest.approx(math.log(50257))
    assert fig.layout.yaxis.range[1] > math.log(50257)  # the baseline is in view
    assert len(fig.data) == 2 * len(runs) + sum(bool(r["val_loss"]) for r in runs)


def test_loss_chart_thins_long_histories_but_keeps_the_last_step():
    steps = list(range(5000))
    fig = viz.loss_chart([{"name": "long", "step": steps, "train_loss": [3.0] * 5000, "eval_step": [],
                           "val_loss": []}], 65, max_points=500)
    assert len(fig.data[0].x) <= 501 and fig.data[0].x[-1] == 4999


# ----------------------------------------------------------------------------- attention


def test_attention_grid_is_one_heatmap_of_every_head_with_the_input_values(run):
    tok, ids, _, cache = run
    patterns = A.attention_for(cache, 2)
    labels = [tok.label(i) for i in ids]
    fig = viz.attention_grid(patterns, labels, detector_badges={(1, 0): "previous token"})
    (trace,) = fig.data  # one trace, one pair of axes: the browser draws one image
    assert trace.type == "heatmap" and trace.coloraxis == "coloraxis" and trace.hoverongaps is False
    meta = fig.layout.meta
    np.testing.assert_allclose(grid_patterns(trace.z, meta), patterns.numpy(), rtol=1e-6)
    z, T = np.asarray(trace.z, dtype=float), len(ids)
    assert np.isnan(z[:, T]).all() and np.isnan(z[T, :]).all()  # empty cells between the tiles
    assert fig.layout.coloraxis.cmin == 0 and fig.layout.coloraxis.cmax == 1
    assert fig.layout.coloraxis.colorscale == VIRIDIS
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["L0 H0", "L0 H1", "L1 H0 · previous token", "L1 H1"]
    x = fig.layout.xaxis
    assert list(x.ticktext) == [f"{i}:{label}" for i, label in enumerate(labels)]  # 16 tokens: all labelled
    assert [list(trace.x).index(v) for v in x.tickvals] == list(range(T))  # on the first tile's columns
    assert fig.layout.yaxis.range == (z.shape[0] - 0.5, -0.5)  # first query on top
    # hovering a cell names its layer, query, head and key
    r, c = GridLayout(**meta["grid"]).origin(1, 1)
    assert (trace.y[r + 3], trace.x[c + 2]) == ("L1 · query 3", "H1 · key 2")
    assert len(set(trace.x)) == len(trace.x) and len(set(trace.y)) == len(trace.y)  # no merged categories


def test_a_click_on_the_grid_maps_to_its_layer_head_query_and_key():
    fig = viz.attention_grid(torch.rand(3, 8, 64, 64), [str(i % 10) for i in range(64)])  # wraps: 2 rows a layer
    (trace,) = fig.data
    meta, layout = fig.layout.meta, GridLayout(**fig.layout.meta["grid"])
    assert layout.per_layer == 2
    for layer, head, query, key in [(0, 0, 0, 0), (2, 7, 63, 63), (1, 5, 10, 40), (2, 3, 0, 63)]:
        r, c = layout.origin(layer, head)
        assert grid_cell(meta, trace.x[c + key], trace.y[r + query]) == (layer, head, query, key)  # labels
        assert grid_cell(meta, c + key, r + query) == (layer, head, query, key)  # or positions
    r, c = layout.origin(0, 1)
    assert grid_cell(meta, c - 1, r) is None  # a gap between two tiles
    assert grid_cell(meta, -1, 0) is None and grid_cell(meta, 10**9, 0) is None
    assert grid_cell(meta, "nonsense", None) is None and grid_cell({}, 0, 0) is None  # hostile payloads


def test_attention_grid_wraps_many_heads_and_labels_every_kth_token_of_long_prompts():
    fig = viz.attention_grid(torch.rand(4, 8, 64, 64), [str(i % 10) for i in range(64)])
    layout = GridLayout(**fig.layout.meta["grid"])
    assert layout.cols == 4  # 8 heads of 64 tokens wrap into 4 columns: a cell stays at least 3 px wide
    assert layout.per_layer * layout.n_layer == 8
    x, (rows, cols) = fig.layout.xaxis, layout.shape
    positions = [list(fig.data[0].x).index(v) for v in x.tickvals]
    assert 4 <= len(positions) <= 16 and positions[1] - positions[0] >= 4
    width, height = 920 / cols, (fig.layout.height - 80 - TITLE_PX) / rows  # px a cell, at the width laid out for
    assert width >= 3 and height >= 2.9  # cells, not slivers
    fig = viz.attention_grid(torch.rand(4, 4, 32, 32), [str(i % 10) for i in range(32)])
    assert fig.layout.height <= 760  # the default prompt's grid fits a 1440x900 screen
    fig = viz.attention_grid(torch.rand(2, 8, 8, 8), list("abcdefgh"))
    assert GridLayout(**fig.layout.meta["grid"]).cols == 8  # short prompts: one row a layer
    fig = viz.attention_grid(torch.zeros(0, 0, 5, 5), list("abcde"))
    assert len(fig.data) == 0 and "no attention" in fig.layout.annotations[0].text


def test_attention_head_chart_is_clickable_by_cell(run):
    tok, ids, _, cache = run
    pattern = cache["blocks.0.attn.pattern"][0, 1]
    spec = viz.attention_head_chart(pattern, [tok.label(i) for i in ids], query=5, key=2)
    alt.Chart.from_dict(spec)  # a valid Vega-Lite spec: Altair checks it against the schema
    (param,) = spec["params"]
    assert param["name"] == "cell" and param["select"]["fields"] == ["query", "key"]
    assert param["select"]["on"] == "click" and param["select"]["type"] == "point"
    assert spec["mark"]["type"] == "rect"
    enc = spec["encoding"]
    assert (enc["x"]["field"], enc["y"]["field"]) == ("key", "query")
    assert enc["color"]["scale"]["scheme"] == "viridis" and enc["color"]["scale"]["domain"] == [0, 1]
    assert "datum.query === 5" in enc["opacity"]["condition"]["test"]
    assert "datum.key === 2" in enc["opacity"]["condition"]["test"]
    rows = spec["data"]["values"]
    assert len(rows) == 16 * 17 // 2  # the future (above the diagonal) is left blank
    got = {(r["query"], r["key"]): r["weight"] for r in rows}
    assert got[(5, 2)] == pytest.approx(float(pattern[5, 2]), abs=1e-4)
    assert '"1:o"' in enc["y"]["axis"]["labelExpr"]


def test_attention_head_chart_is_what_altair_would_build():
    """The hand-written spec says what an Altair chart of the same heatmap says (bar Altair's defaults)."""
    pattern, labels = torch.softmax(torch.randn(5, 5), -1).tril(), list("ab<c&")
    spec = viz.attention_head_chart(pattern, labels, query=3, key=1)
    names = spec["transform"][0]["calculate"].removesuffix("[datum.query]")
    axis = dict(labelExpr=f"{names}[datum.value]", labelFontSize=9, labelOverlap=True, labels=True)
    chart = (
        alt.Chart(alt.Data(values=spec["data"]["values"]))
        .transform_calculate(q=f"{names}[datum.query]", k=f"{names}[datum.key]")
        .mark_rect()
        .encode(
            x=alt.X("key:O", title="key (attended to)", axis=alt.Axis(**axis), scale=alt.Scale(domain=list(range(5)))),
            y=alt.Y("query:O", title="query (looking)", axis=alt.Axis(**axis), scale=alt.Scale(domain=list(range(5)))),
            color=alt.Color("weight:Q", scale=alt.Scale(scheme="viridis", domain=[0, 1]), title="weight"),
            opacity=alt.condition((alt.datum.query == 3) | (alt.datum.key == 1), alt.value(1.0), alt.value(0.8)),
            stroke=alt.condition((alt.datum.query == 3) | (alt.datum.key == 1), alt.value("#D55E00"), alt.value(None)),
            strokeWidth=alt.value(1),
            tooltip=[alt.Tooltip("q:N", title="query"), alt.Tooltip("k:N", title="key"),
                     alt.Tooltip("weight:Q", format=".2f")],
        )
        .add_params(alt.selection_point(fields=["query", "key"], name="cell", on="click"))
        .properties(width=220, height=220)
    ).to_dict()
    for key in ("$schema", "config"):
        chart.pop(key), spec.pop(key, None)
    assert chart == spec


def test_attention_head_chart_without_a_choice_is_not_dimmed():
    spec = viz.attention_head_chart(torch.eye(3), list("abc"))
    assert spec["encoding"]["opacity"] == {"value": 1.0}


def test_attention_row_bars(run):
    tok, ids, _, cache = run
    row = cache["blocks.1.attn.pattern"][0, 0, 7]
    fig = viz.attention_row_bars(row, [tok.label(i) for i in ids], "where does query 7 look?", highlight=7)
    (bar,) = fig.data
    np.testing.assert_allclose(bar.y, row.numpy(), rtol=1e-6)
    assert list(bar.customdata) == list(range(16)) and bar.marker.line.color[7] == "black"
    assert fig.layout.xaxis.ticktext[1] == "1:o" and fig.layout.title.text == "where does query 7 look?"


# ----------------------------------------------------------------------------- embeddings


def test_embedding_scatter_2d_coloured_by_char_class(small_model, shakespeare_char):
    tok = shakespeare_char.tokenizer
    coords, ratio = A.pca(small_model.wte.weight, k=2)
    classes = [A.char_class(label) for label in tok.labels()]
    fig = viz.embedding_scatter(coords, tok.labels(), classes, "Token embeddings", explained=ratio)
    assert {t.name for t in fig.data} == set(classes) and all(t.type == "scatter" for t in fig.data)
    for trace in fig.data:
        assert trace.marker.color == CHAR_CLASS_COLOURS[trace.name]
        for x, y, i, text in zip(trace.x, trace.y, trace.customdata, trace.text):
            assert (x, y) == pytest.approx(tuple(coords[i].tolist()), abs=1e-6)
            assert classes[i] == trace.name
    assert sum(len(t.x) for t in fig.data) == tok.vocab_size
    assert fig.layout.xaxis.title.text == f"PC1 ({100 * ratio[0]:.0f}% of variance)"
    assert "markers+text" == fig.data[0].mode


def test_embedding_scatter_3d_with_a_frequency_colour_scale(small_model, shakespeare_char):
    tok = shakespeare_char.tokenizer
    coords, ratio = A.pca(small_model.wte.weight, k=3)
    counts = A.token_counts(shakespeare_char.tokens, tok.vocab_size)
    fig = viz.embedding_scatter(coords, tok.labels(), counts.float(), explained=ratio, ids=list(range(tok.vocab_size)))
    (trace,) = fig.data
    assert trace.type == "scatter3d"
    np.testing.assert_allclose(trace.z, coords[:, 2].numpy(), rtol=1e-6)
    np.testing.assert_allclose(trace.marker.color, np.log10(1 + counts.numpy()), rtol=1e-5)
    assert trace.marker.colorscale == VIRIDIS
    assert fig.layout.scene.zaxis.title.text.startswith("PC3 (")


def test_embedding_scatter_drops_point_labels_for_a_big_vocabulary():
    fig = viz.embedding_scatter(torch.randn(1000, 2), [str(i) for i in range(1000)], torch.rand(1000))
    assert fig.data[0].mode == "markers" and len(fig.data[0].hovertemplate) > 0


def test_similarity_heatmap_uses_a_diverging_scale_centred_at_zero(small_model):
    sim = A.cosine_similarity_matrix(small_model.wpe.weight)
    fig = viz.similarity_heatmap(sim, [f"pos {i}" for i in range(16)])
    (hm,) = fig.data
    np.testing.assert_allclose(hm.z, sim.numpy(), rtol=1e-6)
    assert hm.colorscale == RDBU and hm.reversescale  # blue negative, red positive
    assert (hm.zmin, hm.zmid, hm.zmax) == (-1, 0, 1)
    assert fig.layout.xaxis.ticktext[3] == "pos 3" and fig.layout.yaxis.autorange == "reversed"


def test_neighbours_bars_most_similar_on_top():
    fig = viz.neighbours_bars([("a", 0.9), ("<", 0.5), ("c", -0.2)])
    (bar,) = fig.data
    assert list(bar.x) == [0.9, 0.5, -0.2] and fig.layout.yaxis.autorange == "reversed"
    assert list(fig.layout.yaxis.ticktext) == ["a", "&lt;", "c"]
    assert fig.layout.xaxis.range[0] < -0.2


# ----------------------------------------------------------------------------- predictions


def test_next_token_bars_sorted_with_ids_and_percentages(run):
    tok, _, logits, _ = run
    probs = next_token_probs(logits[0, -1])
    fig = viz.next_token_bars(probs, tok.labels(), k=10)
    (bar,) = fig.data
    top = probs.topk(10)
    assert list(bar.customdata) == top.indices.tolist()
    np.testing.assert_allclose(bar.x, top.values.numpy(), rtol=1e-6)
    assert list(bar.x) == sorted(bar.x, reverse=True) and fig.layout.yaxis.autorange == "reversed"
    assert list(fig.layout.yaxis.ticktext) == [tok.label(i) for i in top.indices.tolist()]
    assert bar.text[0] == f"{100 * top.values[0]:.1f}%"


def test_next_token_bars_leave_out_filtered_tokens_and_mark_the_chosen_one(run):
    tok, _, logits, _ = run
    probs = next_token_probs(logits[0, -1], top_k=5)
    fig = viz.next_token_bars(probs, tok.label, k=20, highlight=int(probs.argmax()))
    assert len(fig.data[0].x) == 5 and all(p > 0 for p in fig.data[0].x)
    assert fig.data[0].marker.color[0] != fig.data[0].marker.color[1]

    probs = next_token_probs(logits[0, -1])
    rare = int(probs.argmin())
    fig = viz.next_token_bars(probs, tok.labels(), k=3, highlight=rare)
    assert list(fig.data[0].customdata)[-1] == rare and len(fig.data[0].x) == 4


def test_logit_lens_chart_shows_the_table(small_model, run):
    tok, _, _, cache = run
    table = A.logit_lens_table(small_model, cache, tok, k=4)
    fig = viz.logit_lens_chart(table)
    (hm,) = fig.data
    np.testing.assert_allclose(hm.z, np.array(table["top_probs"]), rtol=1e-6)
    assert np.shape(hm.text) == (3, 4) and hm.texttemplate == "%{text}"
    assert [t.split("  ")[0] for t in fig.layout.yaxis.ticktext] == ["embed", "block 0", "block 1"]
    assert hm.text[-1][0] == f"<b>{table['answer_label']}</b>"  # the final answer in bold
    (box,) = fig.layout.shapes
    first = table["first_layer_top1"]
    assert box.y0 == first - 0.5 and box.y1 == first + 0.5


def test_residual_norm_heatmap(run):
    tok, ids, _, cache = run
    norms = A.residual_norms(cache, 2)
    fig = viz.residual_norm_heatmap(norms, [tok.label(i) for i in ids])
    (hm,) = fig.data
    np.testing.assert_allclose(hm.z, norms.numpy(), rtol=1e-6)
    assert list(fig.layout.yaxis.ticktext) == ["embed", "block 0", "block 1"]
    assert hm.customdata[2][0] == "block 1 · 0:T" and hm.colorscale == VIRIDIS


# ----------------------------------------------------------------------------- export


def test_figure_to_html_works_offline_for_plotly():
    out = viz.figure_to_html(viz.loss_chart([], 65))
    assert "<html>" in out[:100] and len(out) > 1_000_000  # plotly.js is inside
    assert not re.search(r'<script[^>]+src="https?://', out)


def test_figure_to_html_of_a_vega_lite_chart():
    out = viz.figure_to_html(viz.attention_head_chart(torch.eye(2), ["a", "b"]))
    assert "vegaEmbed" in out and '"cell"' in out
    with pytest.raises(TypeError):
        viz.figure_to_html("not a figure")


def test_figures_never_meet_a_half_imported_pandas():
    """Monkey finding: plotly checks `isinstance(v, pd.Series)` on whatever sys.modules["pandas"] holds, so a
    figure built while another session's thread was still importing pandas failed with AttributeError.
    Importing the figure builders must import pandas completely first (checked in a fresh interpreter)."""
    import subprocess
    import sys

    code = "import sys, gptviz.viz; pd = sys.modules.get('pandas'); print(pd is not None and hasattr(pd, 'Series'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_next_token_percent_ticks_never_repeat():
    flat = torch.full((50,), 1 / 50)  # every bar at 2%: the axis ends near 4%
    fig = viz.next_token_bars(flat, str, k=5)
    assert fig.layout.xaxis.tickformat == ".1%" and fig.layout.xaxis.range[1] < 0.1
    sure = torch.tensor([0.9, 0.1])
    assert viz.next_token_bars(sure, str).layout.xaxis.tickformat == ".0%"


def test_row_bars_label_every_kth_token_of_a_long_prompt():
    labels = [chr(97 + i % 26) for i in range(64)]
    fig = viz.attention_row_bars(torch.rand(64), labels, "t")
    assert len(fig.layout.xaxis.tickvals) <= 24 and fig.layout.xaxis.ticktext[1] == "3:d"


# ----------------------------------------------------------------------------- the phase change


def test_head_scores_over_training_draw_every_head_and_stress_the_ones_with_a_job():
    fig = viz.head_scores_over_training(LINE, {"induction": "induction", "previous_token": "prev"}, current_step=20,
                                        formed=10, threshold=0.4).to_dict()
    assert len(fig["data"]) == 2 * 4  # a panel per detector, a line per head
    ind = {t["name"]: t for t in fig["data"] if t["xaxis"] == "x"}
    assert list(ind["L1 H0"]["y"]) == pytest.approx([0.05, 0.6, 0.8]) and list(ind["L1 H0"]["x"]) == [0, 10, 20]
    assert ind["L1 H0"]["line"]["width"] > ind["L0 H1"]["line"]["width"]  # the induction head stands out
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    assert "<b>induction</b> · best L1 H0" in titles
    dotted = sorted(sh["x0"] for sh in fig["layout"]["shapes"] if sh["xref"] == "x")
    assert dotted == [10, 20]  # where it formed, and the step shown


def test_icl_chart_plots_the_score_and_marks_the_steps():
    fig = viz.icl_chart(LINE, current_step=20, formed=10).to_dict()
    assert list(fig["data"][0]["y"]) == [0.0, 0.8, 1.5]
    assert {a["text"]: a["x"] for a in fig["layout"]["annotations"]} == {"shown": 20, "induction head": 10}
