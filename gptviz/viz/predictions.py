"""What the model predicts: next-token bars, the logit lens, and the size of the residual stream."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .style import BLUE, MAX_TICKS, SEQUENTIAL, VERMILION, esc, figure, position_labels, to_numpy


def percent_format(top: float) -> str:
    """Enough decimals that ticks up to `top` never repeat ('0% 1% 1% 2%' on a 0-4% axis)."""
    return ".0%" if top >= 0.1 else ".1%"  # the axis always reaches 2%


def next_token_bars(probs, labels, k: int = 20, highlight: int | None = None, title: str = "Next token",
                    height: int | None = None) -> go.Figure:
    """The k most likely next tokens as horizontal bars, most likely on top.

    labels: a label per id (tokenizer.labels()) or a function id -> label (tokenizer.label).
    Tokens cut to probability 0 by top-k / top-p are left out. `highlight` (e.g. the sampled token)
    is drawn in vermilion and added at the bottom if it is not among the top k.
    customdata holds the token ids, so a page can map a selected bar back to its token.
    """
    label = labels if callable(labels) else labels.__getitem__
    p = to_numpy(probs)
    order = [int(i) for i in np.argsort(-p, kind="stable")[:k] if p[i] > 0]
    if highlight is not None and highlight not in order and p[highlight] > 0:
        order.append(int(highlight))
    pos = list(range(len(order)))
    values = p[order]
    names = [esc(label(i)) for i in order]
    top = min(1.0, float(values.max(initial=0)) * 1.2 + 0.02)
    bars = dict(
        type="bar", x=values, y=pos, orientation="h", customdata=order,
        marker=dict(color=[VERMILION if i == highlight else BLUE for i in order]),
        text=[f"{100 * v:.1f}%" for v in values], textposition="auto", cliponaxis=False,
        hovertext=names, hovertemplate="%{hovertext} (id %{customdata}): %{x:.2%}<extra></extra>",
    )
    return figure([bars], dict(
        title=dict(text=title), height=height or min(600, max(220, 22 * len(order) + 90)),
        margin=dict(l=60, r=30, t=50, b=40),
        yaxis=dict(tickmode="array", tickvals=pos, ticktext=names, autorange="reversed"),
        xaxis=dict(range=[0, top], tickformat=percent_format(top), title=dict(text="probability")),
    ))


def logit_lens_chart(table: dict, height: int | None = None) -> go.Figure:
    """Rows = layers (embed at the top), columns = top-k guesses, colour = probability.

    table: analysis.logit_lens_table(...). The row where the final answer first ranks #1 is
    outlined; each row's tick also shows the final answer's rank there.
    """
    layers, probs = table["layers"], np.asarray(table["top_probs"], dtype=np.float32)
    n_rows, k = probs.shape
    answer = table["answer_id"]
    text = [
        [f"<b>{esc(lab)}</b>" if i == answer else esc(lab) for lab, i in zip(labs, ids)]
        for labs, ids in zip(table["top_labels"], table["top_ids"])
    ]
    ticks = [f"{name}  (#{rank})" for name, rank in zip(layers, table["answer_rank"])]
    heatmap = dict(
        type="heatmap", z=probs, x=[f"#{j + 1}" for j in range(k)], y=list(range(n_rows)), text=text,
        texttemplate="%{text}", colorscale=SEQUENTIAL, zmin=0, zmax=1,
        colorbar=dict(title=dict(text="prob"), thickness=10, orientation="h", y=-0.05, yanchor="top"),  # right side holds the note
        hovertemplate="%{text}: %{z:.1%}<extra></extra>",
    )
    layout = dict(
        title=dict(text=f"Logit lens at position {table['position']}: the top {k} guesses after each block "
                        f"(final answer '{esc(table['answer_label'])}')"),
        height=height or min(650, 50 * n_rows + 190), margin=dict(l=90, r=170, t=110, b=30),
        # "#1".."#5" are ranks, not numbers; the plot ends where the heatmap ends (the right margin holds the note)
        xaxis=dict(side="top", type="category", range=[-0.5, k - 0.5], showgrid=False),
        yaxis=dict(tickmode="array", tickvals=list(range(n_rows)), ticktext=ticks, autorange="reversed",
                   automargin=True, showgrid=False),
    )
    first = table["first_layer_top1"]
    if first is not None:
        layout["shapes"] = [dict(type="rect", x0=-0.5, x1=k - 0.5, y0=first - 0.5, y1=first + 0.5,
                                 line=dict(color=VERMILION, width=3))]
        layout["annotations"] = [dict(x=1, xref="paper", y=first, xanchor="left", showarrow=False,
                                      font=dict(color=VERMILION), text=f" ← '{esc(table['answer_label'])}' is #1 from here")]
    return figure([heatmap], layout)


def residual_norm_heatmap(norms, labels: list[str], layers: list[str] | None = None,
                          height: int | None = None) -> go.Figure:
    """L2 norm of the residual stream per layer boundary (rows) and position (columns)."""
    z = to_numpy(norms)
    n_rows, T = z.shape
    layers = layers or ["embed"] + [f"block {i}" for i in range(n_rows - 1)]
    heatmap = dict(
        type="heatmap", z=z, x=list(range(T)), y=list(range(n_rows)), colorscale=SEQUENTIAL, zmin=0,
        customdata=[[f"{layer} · {tok}" for tok in position_labels(labels)] for layer in layers],
        colorbar=dict(title=dict(text="‖x‖"), thickness=12),
        hovertemplate="%{customdata}: %{z:.2f}<extra></extra>",
    )
    return figure([heatmap], dict(
        title=dict(text="Size of the residual stream"), height=height or min(500, 40 * n_rows + 140),
        margin=dict(l=60, r=10, t=50, b=60),
        xaxis=dict(tickmode="array", tickvals=list(range(T)), ticktext=position_labels(labels),
                   showticklabels=T <= MAX_TICKS, title=dict(text="position:token")),
        yaxis=dict(tickmode="array", tickvals=list(range(n_rows)), ticktext=layers, autorange="reversed"),
    ))
