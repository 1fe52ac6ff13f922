"""Attention patterns: every head at once, one head up close, and one row or column as bars.

Rows are queries (the token doing the looking), columns are keys (the tokens looked at);
row i sums to 1 and is zero right of the diagonal, because a token cannot see the future.
"""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go

from .style import MAX_TICKS, SEQUENTIAL, esc, figure, position_labels, to_numpy

VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"


def attention_grid(patterns, labels: list[str], detector_badges: dict[tuple[int, int], str] | None = None,
                   height: int | None = None) -> go.Figure:
    """One heatmap per head in a layers x heads grid, all on one 0..1 colour scale.

    patterns: (n_layer, n_head, T, T), e.g. analysis.attention_for(cache, n_layer).
    detector_badges: optional text per (layer, head), e.g. {(0, 1): "previous token"}.
    """
    z = to_numpy(patterns)
    n_layer, n_head = z.shape[:2]
    if n_layer == 0 or n_head == 0:
        return figure([], dict(annotations=[dict(text="This model has no attention layers (a bigram model).",
                                                 showarrow=False)],
                               height=200, xaxis=dict(visible=False), yaxis=dict(visible=False)))
    badges = detector_badges or {}
    ticks = position_labels(labels)
    dense = len(ticks) > MAX_TICKS
    # Subplot axes laid out by hand: make_subplots + update calls took ~0.3 s per grid, this ~2 ms.
    gap_x, gap_y = 0.02, min(0.08, 0.3 / n_layer)
    width, height_frac = (1 - gap_x * (n_head - 1)) / n_head, (1 - gap_y * (n_layer - 1)) / n_layer
    data, layout, titles = [], {}, []
    for l in range(n_layer):
        for h in range(n_head):
            n = l * n_head + h + 1
            ax = "" if n == 1 else str(n)
            x0, top = h * (width + gap_x), 1 - l * (height_frac + gap_y)
            data.append(dict(type="heatmap", z=z[l, h], x=ticks, y=ticks, coloraxis="coloraxis",
                             xaxis=f"x{ax}", yaxis=f"y{ax}",
                             hovertemplate=f"query %{{y}} → key %{{x}}: %{{z:.2f}}<extra>L{l} H{h}</extra>"))
            layout[f"xaxis{ax}"] = dict(domain=[x0, min(1.0, x0 + width)], anchor=f"y{ax}", showticklabels=not dense,
                                        tickfont=dict(size=8), tickangle=-90)
            layout[f"yaxis{ax}"] = dict(domain=[max(0.0, top - height_frac), top], anchor=f"x{ax}", showticklabels=not dense,
                                        tickfont=dict(size=8), autorange="reversed")  # first query on top
            titles.append(dict(text=f"L{l} H{h}" + (f" · {esc(badges[(l, h)])}" if (l, h) in badges else ""),
                               x=x0 + width / 2, y=top, xref="paper", yref="paper", xanchor="center",
                               yanchor="bottom", showarrow=False, font=dict(size=11)))
    layout.update(
        annotations=titles,
        coloraxis=dict(colorscale=SEQUENTIAL, cmin=0, cmax=1, colorbar=dict(title=dict(text="weight"), thickness=12)),
        height=height or min(900, max(300, 160 * n_layer + 60)), margin=dict(l=40, r=10, t=40, b=30),
    )
    return figure(data, layout)


def attention_head_chart(pattern, labels: list[str], query: int | None = None, key: int | None = None,
                         size: int | None = None) -> dict:
    """One head as a clickable heatmap (a Vega-Lite spec); the chosen query row and key column stay bright.

    With st.vega_lite_chart(spec, on_select=..., selection_mode="cell") a click returns
    selection["cell"] = [{"query": i, "key": j}] (Plotly heatmaps return no points on click).
    Written as the spec Altair would produce, minus Altair's 30 ms of schema checks per chart;
    tests/test_viz.py validates it against the Vega-Lite schema with Altair.
    """
    z = to_numpy(pattern)
    T = z.shape[0]
    # rows carry only numbers; labels come from one lookup array (Vega shows text as text: no escaping)
    names = json.dumps([f"{i}:{label}" for i, label in enumerate(labels)], ensure_ascii=False)
    q, k = np.tril_indices(T)  # the future (above the diagonal) stays blank
    rows = [{"query": a, "key": b, "weight": w}
            for a, b, w in zip(q.tolist(), k.tolist(), z[q, k].round(4).tolist())]
    chosen = f"(datum.query === {-1 if query is None else query})"
    if key is not None:
        chosen = f"({chosen} || (datum.key === {key}))"
    dim = query is not None or key is not None
    side = size or min(480, max(220, 14 * T))

    def axis(field, title):
        return {"field": field, "type": "ordinal", "title": title, "scale": {"domain": list(range(T))},
                "axis": {"labelExpr": f"{names}[datum.value]", "labelFontSize": 9, "labelOverlap": True,
                         "labels": T <= 2 * MAX_TICKS}}

    return {
        "$schema": VEGA_LITE_SCHEMA,
        "data": {"values": rows},
        "transform": [{"calculate": f"{names}[datum.query]", "as": "q"},
                      {"calculate": f"{names}[datum.key]", "as": "k"}],
        "mark": {"type": "rect"},
        "encoding": {
            "x": axis("key", "key (attended to)"),
            "y": axis("query", "query (looking)"),
            "color": {"field": "weight", "type": "quantitative", "title": "weight",
                      "scale": {"scheme": "viridis", "domain": [0, 1]}},
            "opacity": {"condition": {"test": chosen, "value": 1.0}, "value": 0.35} if dim else {"value": 1.0},
            "tooltip": [{"field": "q", "type": "nominal", "title": "query"},
                        {"field": "k", "type": "nominal", "title": "key"},
                        {"field": "weight", "type": "quantitative", "format": ".2f"}],
        },
        "params": [{"name": "cell", "select": {"type": "point", "fields": ["query", "key"], "on": "click"}}],
        "width": side,
        "height": side,
    }


def attention_row_bars(weights, labels: list[str], title: str, highlight: int | None = None,
                       height: int = 260) -> go.Figure:
    """Bars over positions: a row ('where does query i look?') or a column ('who looks at key j?')."""
    w = to_numpy(weights)
    pos = list(range(len(w)))
    bars = dict(
        type="bar", x=pos, y=w, customdata=pos,
        marker=dict(color=w, colorscale=SEQUENTIAL, cmin=0, cmax=1,
                    line=dict(color=["black" if i == highlight else "rgba(0,0,0,0)" for i in pos], width=2)),
        text=[esc(label) for label in labels], hovertemplate="%{x}:%{text}: %{y:.2f}<extra></extra>",
        textposition="none",
    )
    return figure([bars], dict(
        title=dict(text=title), height=height, margin=dict(l=60, r=10, t=50, b=60),
        xaxis=dict(tickmode="array", tickvals=pos, ticktext=position_labels(labels),
                   showticklabels=len(pos) <= MAX_TICKS, tickangle=-90, title=dict(text="position:token")),
        yaxis=dict(range=[0, 1], title=dict(text="attention weight")),
    ))
