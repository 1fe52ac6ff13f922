"""One head step by step, the averaging trick, and MLP neurons: strips of numbers, weights, contexts.

Vectors are drawn as heatmap strips, one row per token and one column per dimension, on a diverging
scale centred at zero (blue negative, red positive).
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from .style import BLUE, DIVERGING, SEQUENTIAL, VERMILION, esc, figure, tint, to_numpy


def vector_strip(values, row_labels: list[str], title: str, highlight_cols: tuple[int, int] | None = None,
                 height: int | None = None) -> go.Figure:
    """(rows, dims) numbers as a heatmap strip; highlight_cols=(start, stop) outlines a slice of columns."""
    z = to_numpy(values)
    if z.ndim == 1:
        z = z[None]
    rows, dims = z.shape
    finite = np.abs(z[np.isfinite(z)])
    top = float(finite.max()) if finite.size else 1.0
    labels = [esc(label) for label in row_labels]
    trace = dict(type="heatmap", z=z, y=list(range(rows)), colorscale=DIVERGING, reversescale=True,
                 zmin=-top or -1.0, zmax=top or 1.0, customdata=[[label] * dims for label in labels],
                 hovertemplate="%{customdata}, dim %{x}: %{z:.3f}<extra></extra>",
                 showscale=rows > 1, colorbar=dict(thickness=10, len=1.0))  # one row: too short for a scale
    layout = {}
    if highlight_cols is not None:
        start, stop = highlight_cols
        layout["shapes"] = [dict(type="rect", x0=start - 0.5, x1=stop - 0.5, y0=-0.5, y1=rows - 0.5,
                                 line=dict(color="black", width=3))]
    return figure([trace], dict(
        **layout, title=dict(text=title, font=dict(size=13)), height=height or min(420, 60 + 22 * rows),
        margin=dict(l=70, r=10, t=35, b=25),
        yaxis=dict(tickmode="array", tickvals=list(range(rows)), ticktext=labels, autorange="reversed",
                   showticklabels=rows <= 32),
        xaxis=dict(showticklabels=dims <= 64),
    ))


def weights_heatmap(weights, title: str, row_labels: list[str] | None = None) -> go.Figure:
    """A (T, T) weight matrix with its numbers written in: rows add up to 1, the future stays 0."""
    w = to_numpy(weights)
    T = w.shape[0]
    names = row_labels or [str(i) for i in range(T)]
    trace = dict(type="heatmap", z=w, x=list(range(T)), y=list(range(T)), colorscale=SEQUENTIAL, zmin=0, zmax=1,
                 text=[[f"{v:.2f}" for v in row] for row in w], texttemplate="%{text}", showscale=False,
                 hovertemplate="row %{y}, column %{x}: %{z:.3f}<extra></extra>")
    return figure([trace], dict(
        title=dict(text=title, font=dict(size=13)), height=60 + 34 * T, margin=dict(l=40, r=10, t=35, b=25),
        yaxis=dict(tickmode="array", tickvals=list(range(T)), ticktext=[esc(n) for n in names],
                   autorange="reversed"),
        xaxis=dict(tickmode="array", tickvals=list(range(T)), ticktext=[esc(n) for n in names]),
    ))


def neuron_bars(top: list[tuple[int, float, int]], labels: list[str], chosen: int | None = None) -> go.Figure:
    """The neurons that fire most on a prompt: (neuron, activation, position) as horizontal bars."""
    pos = list(range(len(top)))
    names = [f"neuron {n}" for n, _, _ in top]
    where = [esc(f"{p}:{labels[p]}") for _, _, p in top]
    bars = dict(type="bar", x=[a for _, a, _ in top], y=pos, orientation="h", customdata=[n for n, _, _ in top],
                marker=dict(color=[VERMILION if n == chosen else BLUE for n, _, _ in top]), hovertext=where,
                hovertemplate="neuron %{customdata}: %{x:.2f} at token %{hovertext}<extra></extra>")
    return figure([bars], dict(
        title=dict(text="Neurons that fire most on this prompt", font=dict(size=13)),
        height=min(500, 90 + 24 * len(top)), margin=dict(l=90, r=20, t=40, b=40),
        yaxis=dict(tickmode="array", tickvals=pos, ticktext=names, autorange="reversed"),
        xaxis=dict(title=dict(text="highest activation (after GELU)")),
    ))


def _visible(piece: str) -> str:
    return html.escape(piece).replace("\n", "⏎")


def context_html(before: list[str], token: str, after: list[str], activation: float) -> str:
    """One context of a neuron: the firing token on an orange background, the text after it greyed."""
    mark = tint("#E69F00", 0.3)
    return (
        '<div style="font-family:monospace;white-space:pre;overflow-x:auto;color:#000;line-height:1.8">'
        f'<span style="color:#555">{activation:6.2f}  </span>'
        f'{"".join(_visible(p) for p in before)}'
        f'<b style="background:{mark};border:1px solid #000;border-radius:3px">{_visible(token)}</b>'
        f'<span style="color:#888">{"".join(_visible(p) for p in after)}</span></div>'
    )
