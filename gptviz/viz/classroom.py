"""The class's figures: the board (val loss against the setting the teacher groups by) and the reveal of a
question (the class's guesses beside the model's own answer)."""

from __future__ import annotations

import plotly.graph_objects as go

from ..tokenizers import visible
from .style import BLUE, GREY, ORANGE, SEQUENTIAL, VERMILION, esc, figure


def board_chart(groups: list, label: str, fmt=str, height: int = 380) -> go.Figure:
    """One point per run (val loss against the setting's value), the groups' means joined by a line with
    whiskers for half the range. groups: gptviz.classroom.BoardGroup in the setting's order."""
    xs = [esc(fmt(g.value)) for g in groups]  # categories: n_head 1, 2, 4 and 'on'/'off' read alike
    runs = dict(type="scatter", mode="markers", name="a run",
                x=[x for x, g in zip(xs, groups) for _ in g.entries],
                y=[e.val_loss for g in groups for e in g.entries],
                hovertext=[esc(e.name) for g in groups for e in g.entries],
                hovertemplate="%{hovertext}: val loss %{y:.3f}<extra></extra>",
                marker=dict(color=BLUE, size=9, opacity=0.6, line=dict(color="white", width=1)))
    means = dict(type="scatter", mode="lines+markers", name="mean ± half the range", x=xs,
                 y=[g.mean for g in groups], text=[f"{len(g.entries)} run{'s' * (len(g.entries) > 1)}" for g in groups],
                 error_y=dict(type="data", array=[g.spread for g in groups], visible=True, color=ORANGE),
                 hovertemplate="mean %{y:.3f} (%{text})<extra></extra>",
                 line=dict(color=ORANGE, width=3), marker=dict(color=ORANGE, size=12, symbol="diamond"))
    return figure([means, runs], dict(  # the runs' points drawn over the means' line
        title=dict(text=f"Final val loss by {esc(label)}"), height=height, margin=dict(l=60, r=20, t=50, b=50),
        xaxis=dict(title=dict(text=esc(label)), type="category", categoryorder="array", categoryarray=xs),
        yaxis=dict(title=dict(text="val loss (lower is better)")),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0)))


def token_reveal_chart(choices: list[tuple[str, float]], counts: dict, mine: str | None = None,
                       k: int = 12, height: int | None = None) -> go.Figure:
    """Side by side, the same tokens in the same rows: the share of the class that picked each one, and the
    model's probability for it. The student's own guess is drawn in vermilion."""
    model = dict(choices)
    total = sum(counts.values()) or 1
    rows = [lab for lab, _ in choices[:k]]
    rows += [lab for lab, _ in sorted(counts.items(), key=lambda kv: -kv[1]) if lab not in rows][:k]
    if mine is not None and mine not in rows:
        rows.append(mine)
    colour = [VERMILION if lab == mine else None for lab in rows]
    names = [esc(visible(lab)) for lab in rows]  # a space shows as ␣, a newline as ⏎
    shared = dict(type="bar", orientation="h", y=names, textposition="auto", cliponaxis=False)
    guessed = dict(shared, name="the class guessed", x=[counts.get(lab, 0) / total for lab in rows], xaxis="x",
                   text=[str(counts.get(lab, 0)) for lab in rows],
                   marker=dict(color=[c or ORANGE for c in colour]),
                   hovertemplate="%{y}: %{text} students<extra></extra>")
    said = dict(shared, name="the model says", x=[model.get(lab, 0.0) for lab in rows], xaxis="x2",
                text=[f"{100 * model.get(lab, 0.0):.1f}%" for lab in rows],
                marker=dict(color=[c or BLUE for c in colour]),
                hovertemplate="%{y}: %{x:.1%}<extra></extra>")
    axis = dict(range=[0, 1], tickformat=".0%")
    return figure([guessed, said], dict(
        height=height or min(620, max(260, 26 * len(rows) + 110)), margin=dict(l=70, r=30, t=60, b=40),
        showlegend=False, bargap=0.25,
        xaxis=dict(axis, domain=[0, 0.47], title=dict(text=f"share of the class ({sum(counts.values())} answers)")),
        xaxis2=dict(axis, domain=[0.53, 1], title=dict(text="the model's probability")),
        yaxis=dict(autorange="reversed", type="category"),
        annotations=[dict(text="The class guessed", x=0.235, y=1.08, xref="paper", yref="paper", showarrow=False),
                     dict(text="The model says", x=0.765, y=1.08, xref="paper", yref="paper", showarrow=False)]))


def head_reveal_chart(counts: list[list[int]], scores: list[list[float]], mine: tuple[int, int] | None = None,
                      height: int = 320) -> go.Figure:
    """Two layer × head grids: how many students picked each head, and the detector's previous-token score
    (the model's answer). The student's own pick is outlined."""
    n_layer, n_head = len(scores), len(scores[0]) if scores else 0
    heads, layers = [f"H{h}" for h in range(n_head)], [f"L{l}" for l in range(n_layer)]
    votes = dict(type="heatmap", z=counts, x=heads, y=layers, colorscale=[[0, "#FFFFFF"], [1, ORANGE]],
                 showscale=False, text=counts, texttemplate="%{text}", xaxis="x", yaxis="y",
                 hovertemplate="%{y} %{x}: %{z} students<extra></extra>")
    model = dict(type="heatmap", z=scores, x=heads, y=layers, colorscale=SEQUENTIAL, zmin=0, zmax=1,
                 showscale=False, text=[[f"{v:.2f}" for v in row] for row in scores], texttemplate="%{text}",
                 xaxis="x2", yaxis="y2", hovertemplate="%{y} %{x}: score %{z:.2f}<extra></extra>")
    shapes = []
    if mine is not None:
        for ax in ("", "2"):
            shapes.append(dict(type="rect", xref=f"x{ax}", yref=f"y{ax}", x0=mine[1] - 0.5, x1=mine[1] + 0.5,
                               y0=mine[0] - 0.5, y1=mine[0] + 0.5, line=dict(color=VERMILION, width=4)))
    grid = dict(autorange="reversed")
    return figure([votes, model], dict(
        height=height, margin=dict(l=50, r=20, t=60, b=30), shapes=shapes,
        xaxis=dict(domain=[0, 0.47], side="top"), xaxis2=dict(domain=[0.53, 1], side="top"),
        yaxis=dict(grid), yaxis2=dict(grid, anchor="x2"),
        annotations=[dict(text="The class picked", x=0.235, y=1.18, xref="paper", yref="paper", showarrow=False),
                     dict(text="Previous-token score (the model)", x=0.765, y=1.18, xref="paper", yref="paper",
                          showarrow=False, font=dict(color=GREY))]))


def head_picker_spec(n_layer: int, n_head: int, picked: tuple[int, int] | None = None) -> dict:
    """A clickable layer × head grid (Vega-Lite: a click on a cell selects it, see head_of_click)."""
    cells = [{"layer": l, "head": h, "name": f"L{l} H{h}", "picked": (l, h) == picked}
             for l in range(n_layer) for h in range(n_head)]
    return {"data": {"values": cells}, "height": 40 * n_layer + 20, "width": "container",
            "params": [{"name": "cell", "select": {"type": "point", "fields": ["layer", "head"]}}],
            "mark": {"type": "rect", "stroke": "white", "strokeWidth": 2, "cursor": "pointer"},
            "encoding": {"x": {"field": "head", "type": "ordinal", "title": "head"},
                         "y": {"field": "layer", "type": "ordinal", "title": "layer"},
                         "color": {"condition": {"test": "datum.picked", "value": VERMILION}, "value": "#DDDDDD"},
                         "tooltip": {"field": "name"}},
            "config": {"view": {"stroke": None}}}

