"""Embedding space: tokens as points (PCA), position similarity, a token's nearest neighbours."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .style import BLUE, DIVERGING, MAX_TICKS, SEQUENTIAL, categorical_colours, esc, figure, to_numpy

MAX_TEXT_POINTS = 300  # beyond this, labels on every point are a blur and a heavy figure


def _axis_titles(k: int, explained) -> list[str]:
    if explained is None:
        return [f"PC{i + 1}" for i in range(k)]
    ratios = to_numpy(explained)
    if k == 3:  # short: a 3-D scene cuts long axis titles at its edges
        return [f"PC{i + 1} ({100 * ratios[i]:.0f}%)" for i in range(k)]
    return [f"PC{i + 1} ({100 * ratios[i]:.0f}% of variance)" for i in range(k)]


def _points(coords: np.ndarray, labels: list[str], ids, **kw) -> dict:
    """A 2-D or 3-D scatter trace of some points."""
    trace = dict(
        text=[esc(label) for label in labels], customdata=ids,
        mode="markers+text" if len(coords) <= MAX_TEXT_POINTS else "markers",
        hovertemplate="%{text} (id %{customdata})<extra></extra>", **kw,
    )
    if coords.shape[1] == 3:
        return dict(type="scatter3d", x=coords[:, 0], y=coords[:, 1], z=coords[:, 2], **trace)
    return dict(type="scatter", x=coords[:, 0], y=coords[:, 1], textposition="top center", **trace)


def embedding_scatter(coords, labels: list[str], colour_by, title: str = "Token embeddings",
                      explained=None, ids: list[int] | None = None, colour_title: str = "count",
                      height: int = 500) -> go.Figure:
    """Tokens as points after PCA, in 2-D (coords (N, 2)) or 3-D (coords (N, 3)).

    colour_by: a category per point (e.g. analysis.char_class) -> one legend entry per category,
    or a number per point (e.g. token counts) -> Viridis on a log10(1 + x) scale, since a few
    tokens are far more frequent than the rest. customdata holds the token ids (default 0..N-1).
    """
    xy = to_numpy(coords)
    if xy.size == 0:
        xy = xy.reshape(0, 2)
    ids = list(range(len(xy))) if ids is None else [int(i) for i in ids]
    data = []
    if len(colour_by) and isinstance(colour_by[0], str):
        for cls, colour in categorical_colours(colour_by).items():
            rows = [i for i, c in enumerate(colour_by) if c == cls]
            data.append(_points(xy[rows], [labels[i] for i in rows], [ids[i] for i in rows], name=cls,
                                marker=dict(color=colour, size=6), textfont=dict(color=colour, size=10)))
    else:
        values = np.log10(1 + np.maximum(to_numpy(colour_by), 0)) if len(colour_by) else None
        # a thin dark outline: the most frequent tokens are yellow, which vanishes on white
        marker = dict(size=6) if values is None else dict(
            color=values, colorscale=SEQUENTIAL, size=6, line=dict(color="#444444", width=0.5),
            colorbar=dict(title=dict(text=f"log10(1 + {colour_title})")))
        data.append(_points(xy, labels, ids, showlegend=False, textfont=dict(size=10), marker=marker))
    names = _axis_titles(xy.shape[1], explained)
    layout = dict(title=dict(text=title), height=height, margin=dict(l=60, r=10, t=50, b=60),
                  legend=dict(title=dict(text="")))
    axes = [dict(title=dict(text=name)) for name in names]
    if xy.shape[1] == 3:
        layout["scene"] = dict(xaxis=axes[0], yaxis=axes[1], zaxis=axes[2],
                               camera=dict(eye=dict(x=1.6, y=1.6, z=1.0)))  # a step back: titles stay inside
        layout["margin"] = dict(l=10, r=10, t=50, b=10)
    else:
        layout["xaxis"], layout["yaxis"] = axes
    return figure(data, layout)


def similarity_heatmap(matrix, tick_labels: list[str], title: str = "Cosine similarity of position embeddings",
                       height: int = 450) -> go.Figure:
    """A signed similarity matrix (e.g. position embeddings) on a blue-white-red scale centred at 0."""
    z = to_numpy(matrix)
    n = len(z)
    text = [esc(t) for t in tick_labels]
    heatmap = dict(
        type="heatmap", z=z, x=list(range(n)), y=list(range(n)), colorscale=DIVERGING, reversescale=True,
        zmin=-1, zmax=1, zmid=0, colorbar=dict(title=dict(text="cosine"), thickness=12),
        hovertemplate="%{y} vs %{x}: %{z:.2f}<extra></extra>",
    )
    layout = dict(title=dict(text=title), height=height, margin=dict(l=60, r=10, t=50, b=60),
                  yaxis=dict(autorange="reversed", scaleanchor="x"))
    if n <= MAX_TICKS:
        ticks = dict(tickmode="array", tickvals=list(range(n)), ticktext=text)
        layout["xaxis"] = ticks
        layout["yaxis"].update(ticks)
    return figure([heatmap], layout)


def neighbours_bars(neighbours: list[tuple[str, float]], title: str = "Nearest neighbours (cosine)",
                    height: int | None = None) -> go.Figure:
    """Horizontal bars of (label, cosine), most similar on top."""
    labels = [esc(label) for label, _ in neighbours]
    cos = [float(c) for _, c in neighbours]
    pos = list(range(len(cos)))
    bars = dict(
        type="bar", x=cos, y=pos, orientation="h", marker=dict(color=BLUE), customdata=labels,
        text=[f"{c:.2f}" for c in cos], textposition="auto",
        hovertemplate="%{customdata}: %{x:.3f}<extra></extra>",
    )
    return figure([bars], dict(
        title=dict(text=title), height=height or min(500, max(220, 24 * len(cos) + 90)),
        margin=dict(l=60, r=10, t=50, b=60),
        yaxis=dict(tickmode="array", tickvals=pos, ticktext=labels, autorange="reversed"),
        xaxis=dict(range=[min([0.0] + cos) * 1.05, 1], title=dict(text="cosine similarity")),
    ))
