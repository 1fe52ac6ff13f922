"""Attention patterns: every head at once, one head up close, and one row or column as bars.

Rows are queries (the token doing the looking), columns are keys (the tokens looked at);
row i sums to 1 and is zero right of the diagonal, because a token cannot see the future.
"""

from __future__ import annotations

import json

import altair as alt
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .style import MAX_TICKS, SEQUENTIAL, esc, position_labels, to_numpy


def attention_grid(patterns, labels: list[str], detector_badges: dict[tuple[int, int], str] | None = None,
                   height: int | None = None) -> go.Figure:
    """One heatmap per head in a layers x heads grid, all on one 0..1 colour scale.

    patterns: (n_layer, n_head, T, T), e.g. analysis.attention_for(cache, n_layer).
    detector_badges: optional text per (layer, head), e.g. {(0, 1): "previous token"}.
    """
    z = to_numpy(patterns)
    n_layer, n_head = z.shape[:2]
    if n_layer == 0 or n_head == 0:
        fig = go.Figure()
        fig.add_annotation(text="This model has no attention layers (a bigram model).", showarrow=False)
        fig.update_layout(height=200, xaxis_visible=False, yaxis_visible=False)
        return fig
    badges = detector_badges or {}
    ticks = position_labels(labels)
    dense = len(ticks) > MAX_TICKS
    # Built as plain dicts: plotly's make_subplots + update calls took ~0.3 s per grid, this ~0.05 s,
    # and the grid is redrawn for every prompt of every student.
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
    return go.Figure(dict(data=data, layout=layout))


def attention_head_chart(pattern, labels: list[str], query: int | None = None, key: int | None = None,
                         size: int | None = None) -> alt.Chart:
    """One head as a clickable Altair heatmap; the chosen query row and key column stay bright.

    With st.altair_chart(chart, on_select="rerun") a click returns selection["cell"] =
    [{"query": i, "key": j}] (Plotly heatmaps return no points on click).
    """
    z = to_numpy(pattern)
    T = z.shape[0]
    # rows carry only numbers; labels come from one lookup array (Vega shows text as text: no escaping)
    names = json.dumps([f"{i}:{label}" for i, label in enumerate(labels)], ensure_ascii=False)
    q, k = np.tril_indices(T)  # the future (above the diagonal) stays blank
    data = pd.DataFrame({"query": q, "key": k, "weight": z[q, k].round(4)})  # a frame: Altair skips per-row checks
    cell = alt.selection_point(fields=["query", "key"], name="cell", on="click")
    chosen = alt.datum.query == (-1 if query is None else query)
    if key is not None:
        chosen = chosen | (alt.datum.key == key)
    dim = query is not None or key is not None
    axis = dict(labelExpr=f"{names}[datum.value]", labelFontSize=9, labelOverlap=True, labels=T <= 2 * MAX_TICKS)
    side = size or min(480, max(220, 14 * T))
    return (
        alt.Chart(data)
        .transform_calculate(q=f"{names}[datum.query]", k=f"{names}[datum.key]")
        .mark_rect()
        .encode(
            x=alt.X("key:O", title="key (attended to)", axis=alt.Axis(**axis), scale=alt.Scale(domain=list(range(T)))),
            y=alt.Y("query:O", title="query (looking)", axis=alt.Axis(**axis), scale=alt.Scale(domain=list(range(T)))),
            color=alt.Color("weight:Q", scale=alt.Scale(scheme="viridis", domain=[0, 1]), title="weight"),
            opacity=alt.condition(chosen, alt.value(1.0), alt.value(0.35)) if dim else alt.value(1.0),
            tooltip=[alt.Tooltip("q:N", title="query"), alt.Tooltip("k:N", title="key"),
                     alt.Tooltip("weight:Q", format=".2f")],
        )
        .add_params(cell)
        .properties(width=side, height=side)
    )

def attention_row_bars(weights, labels: list[str], title: str, highlight: int | None = None,
                       height: int = 260) -> go.Figure:
    """Bars over positions: a row ('where does query i look?') or a column ('who looks at key j?')."""
    w = to_numpy(weights)
    pos = list(range(len(w)))
    fig = go.Figure(go.Bar(
        x=pos, y=w, customdata=pos,
        marker=dict(color=w, colorscale=SEQUENTIAL, cmin=0, cmax=1,
                    line=dict(color=["black" if i == highlight else "rgba(0,0,0,0)" for i in pos], width=2)),
        text=[esc(label) for label in labels], hovertemplate="%{x}:%{text}: %{y:.2f}<extra></extra>",
        textposition="none",
    ))
    dense = len(pos) > MAX_TICKS
    fig.update_xaxes(tickmode="array", tickvals=pos, ticktext=position_labels(labels), showticklabels=not dense,
                     tickangle=-90, title="position:token")
    fig.update_yaxes(range=[0, 1], title="attention weight")
    fig.update_layout(title=title, height=height, margin=dict(l=60, r=10, t=50, b=60))
    return fig
