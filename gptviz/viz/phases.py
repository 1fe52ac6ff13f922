"""The training timeline's phase change: each head's detector scores against the step, and the
in-context-learning score (how much better a repeated sequence's second copy is predicted).

Both read the numbers of gptviz.induction.timeline_scores: {"steps", "scores": {detector: (S, L, H)}, "icl"}.
"""

from __future__ import annotations

from .style import GREY, VERMILION, esc, figure, series_colour

PANEL_GAP = 0.04


def head_scores_over_training(line: dict, names: dict[str, str], current_step: int | None = None,
                              formed: int | None = None, threshold: float = 0.4, height: int = 230):
    """One small panel per detector (names: detector -> panel title), one line per head: score against step.

    Heads that reach `threshold` somewhere are drawn thick in their layer's colour; the others thin and faint.
    current_step (the timeline slider) and formed (where an induction head appears) are dotted lines.
    """
    steps = list(line["steps"])
    first = line["scores"][next(iter(names))] if names else None
    if first is None or not steps or first.numel() == 0:
        return figure([], dict(height=120, xaxis=dict(visible=False), yaxis=dict(visible=False), annotations=[
            dict(text="No heads to follow: this model has no attention (a bigram model) or no timeline.",
                 showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)]))
    n_layer, n_head = first.shape[1], first.shape[2]
    width = (1 - PANEL_GAP * (len(names) - 1)) / len(names)
    data, layout = [], dict(height=height, margin=dict(l=40, r=10, t=40, b=35), showlegend=False,
                            hovermode="closest", shapes=[], annotations=[])
    for p, (name, title) in enumerate(names.items()):
        suffix = "" if p == 0 else str(p + 1)
        scores = line["scores"][name]
        best = divmod(int(scores[-1].flatten().argmax()), n_head)
        for layer in range(n_layer):
            for head in range(n_head):
                ys = [round(float(v), 3) for v in scores[:, layer, head]]
                strong = max(ys) >= threshold
                data.append(dict(type="scatter", x=steps, y=ys, mode="lines", xaxis=f"x{suffix}", yaxis=f"y{suffix}",
                                 line=dict(color=series_colour(layer) if strong else GREY, width=3 if strong else 1),
                                 opacity=1 if strong else 0.4, name=f"L{layer} H{head}",
                                 hovertemplate=f"L{layer} H{head}, step %{{x}}: %{{y:.2f}}<extra>{esc(title)}</extra>"))
        domain = [p * (width + PANEL_GAP), p * (width + PANEL_GAP) + width]
        layout[f"xaxis{suffix}"] = dict(domain=domain, anchor=f"y{suffix}", title=dict(text="step"))
        layout[f"yaxis{suffix}"] = dict(range=[0, 1.02], anchor=f"x{suffix}", showticklabels=p == 0)
        layout["annotations"].append(dict(text=f"<b>{esc(title)}</b> · best L{best[0]} H{best[1]}", showarrow=False,
                                          xref="paper", x=sum(domain) / 2, yref="paper", y=1.12, yanchor="bottom"))
        for step, colour in ((current_step, GREY), (formed, VERMILION)):
            if step is not None:
                layout["shapes"].append(dict(type="line", xref=f"x{suffix}", x0=step, x1=step, yref="paper", y0=0,
                                             y1=1, line=dict(dash="dot", color=colour, width=1.5)))
        layout["shapes"].append(dict(type="line", xref=f"x{suffix} domain", x0=0, x1=1, yref=f"y{suffix}",
                                     y0=threshold, y1=threshold, line=dict(dash="dash", color=GREY, width=1)))
    return figure(data, layout)


def icl_chart(line: dict, current_step: int | None = None, formed: int | None = None, height: int = 380):
    """The in-context-learning score against the step: nats by which the second copy of a random sequence is
    predicted better than its first copy (0: the model does not use what the prompt already showed it)."""
    steps, icl = list(line["steps"]), [round(v, 3) for v in line["icl"]]
    data = [dict(type="scatter", x=steps, y=icl, mode="lines+markers", name="in-context learning",
                 line=dict(color=series_colour(2), width=3), marker=dict(size=6),
                 hovertemplate="step %{x}: second copy %{y:.2f} nats better<extra></extra>")]
    layout = dict(
        title=dict(text="In-context learning",
                   subtitle=dict(text="loss on a random sequence's first copy minus its second")),
        height=height, margin=dict(l=60, r=10, t=70, b=40), showlegend=False,
        xaxis=dict(title=dict(text="step")),
        yaxis=dict(title=dict(text="nats better on the second copy"), rangemode="tozero", zeroline=True),
        shapes=[], annotations=[],
    )
    for label, step, colour in (("shown", current_step, GREY), ("induction head", formed, VERMILION)):
        if step is not None:
            layout["shapes"].append(dict(type="line", xref="x", x0=step, x1=step, yref="y domain", y0=0, y1=1,
                                         line=dict(dash="dot", color=colour, width=1.5)))
            layout["annotations"].append(dict(text=label, showarrow=False, xref="x", x=step, yref="y domain", y=1,
                                              yanchor="bottom", font=dict(color=colour)))
    return figure(data, layout)
