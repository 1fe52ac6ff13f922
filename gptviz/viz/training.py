"""Loss curves of one or more training runs, against the loss of guessing at random."""

from __future__ import annotations

import math

import plotly.graph_objects as go

from .style import GREY, esc, figure, series_colour, tint


def _thin(xs: list, ys: list, max_points: int) -> tuple[list, list]:
    """Every n-th point (and the last): a 5000-step curve need not travel to the browser in full."""
    if len(xs) <= max_points:
        return list(xs), list(ys)
    step = math.ceil(len(xs) / max_points)
    keep = list(range(0, len(xs), step))
    if keep[-1] != len(xs) - 1:
        keep.append(len(xs) - 1)
    return [xs[i] for i in keep], [ys[i] for i in keep]


_KEY = "thin line: train loss (one batch) · thick with dots: val loss (held-out text)"


def loss_chart(runs: list[dict], vocab_size: int, best_val_marker: bool = False, title: str = "Loss",
               height: int = 380, max_points: int = 1000, step_marks: dict[str, int] | None = None) -> go.Figure:
    """Train loss (thin, light) and validation loss (thick, with markers) of each run.

    runs: [{"name", "step", "train_loss", "eval_step", "val_loss"}] (Trainer.history plus a name);
    lists may be empty while a run starts. Optional per run: "colour" (else the n-th series colour),
    and "val_low" / "val_high" (a run repeated with several seeds: val_loss is their mean) to draw
    the seeds' range as a band with error bars. The dashed line is the loss of a model that guesses
    uniformly, ln(vocab_size): a fresh model starts there. best_val_marker stars the lowest
    validation loss of each run, where more training stopped helping. step_marks ({label: step})
    draws a dotted line at each step shown elsewhere on the page (a training-timeline snapshot).
    """
    baseline = math.log(vocab_size)
    data = []
    seen = [baseline]
    for n, run in enumerate(runs):
        name, colour = esc(run.get("name", f"run {n + 1}")), run.get("colour") or series_colour(n)
        steps, train = _thin(run.get("step", []), run.get("train_loss", []), max_points)
        evals, val = list(run.get("eval_step", [])), list(run.get("val_loss", []))
        low, high = list(run.get("val_low", [])), list(run.get("val_high", []))
        seen += [v for v in train + val + high if math.isfinite(v)]
        if low:  # the seeds' range: a band behind the mean curve
            data.append(dict(
                type="scatter", x=evals + evals[::-1], y=high + low[::-1], mode="lines", fill="toself",
                fillcolor=tint(colour, 0.7), line=dict(width=0), opacity=0.6, name=f"{name} seed range",
                legendgroup=name, showlegend=False, hoverinfo="skip",
            ))
        data.append(dict(
            type="scatter", x=steps, y=train, mode="lines", name=f"{name} train", legendgroup=name,
            line=dict(color=colour, width=1), opacity=0.45, showlegend=False,  # one legend entry per run
            hovertemplate="step %{x}: train %{y:.3f}<extra>" + name + "</extra>",
        ))
        val_trace = dict(
            type="scatter", x=evals, y=val, mode="lines+markers", name=name, legendgroup=name,
            line=dict(color=colour, width=3), marker=dict(size=7),
            hovertemplate="step %{x}: val %{y:.3f}<extra>" + name + "</extra>",
        )
        if low:
            val_trace["error_y"] = dict(type="data", symmetric=False, color=colour, thickness=1.5, width=4,
                                        array=[h - v for h, v in zip(high, val)],
                                        arrayminus=[v - lo for v, lo in zip(val, low)])
            val_trace["hovertemplate"] = ("step %{x}: val %{y:.3f} (seeds %{customdata[0]:.3f}–%{customdata[1]:.3f})"
                                          "<extra>" + name + "</extra>")
            val_trace["customdata"] = [[lo, h] for lo, h in zip(low, high)]
        data.append(val_trace)
        if best_val_marker and val:
            best = min(range(len(val)), key=lambda i: val[i])
            data.append(dict(
                type="scatter", x=[evals[best]], y=[val[best]], mode="markers", name=f"{name} best val",
                legendgroup=name, showlegend=False, marker=dict(symbol="star", size=16, color=colour, line=dict(color="black", width=1)),
                hovertemplate="lowest val loss %{y:.3f} at step %{x}<extra>" + name + "</extra>",
            ))
    layout = dict(
        title=dict(text=title, subtitle=dict(text=_KEY + (" · ★ lowest val loss" if best_val_marker else ""))),
        height=height, hovermode="closest",
        # measured from the figure's bottom edge, so the legend pushes the margin instead of covering "step"
        legend=dict(orientation="h", yref="container", y=0, yanchor="bottom"),
        margin=dict(l=60, r=10, t=70, b=40),
        xaxis=dict(title=dict(text="step"), automargin=True),  # room for "step" above the legend
        # from 0, so a drop from 4.2 to 2.0 looks like the halving it is
        yaxis=dict(range=[0, max(seen) * 1.08], title=dict(text="loss (cross-entropy, nats)")),
        # a horizontal line across the plot (what fig.add_hline makes)
        shapes=[dict(type="line", xref="x domain", x0=0, x1=1, yref="y", y0=baseline, y1=baseline,
                     line=dict(dash="dash", color=GREY, width=2))],
        annotations=[dict(text=f"random guess = ln(V) = {baseline:.2f}", showarrow=False, xref="x domain", x=1,
                          xanchor="right", yref="y", y=baseline, yanchor="bottom")],
    )
    for label, step in (step_marks or {}).items():
        layout["shapes"].append(dict(type="line", xref="x", x0=step, x1=step, yref="y domain", y0=0, y1=1,
                                     line=dict(dash="dot", color=GREY, width=1.5)))
        layout["annotations"].append(dict(text=esc(label), showarrow=False, xref="x", x=step, yref="y domain", y=0,
                                          yanchor="bottom", bgcolor="white"))  # the top holds the baseline's note
    if not any(run.get("step") or run.get("eval_step") for run in runs):
        layout["xaxis"]["range"] = [0, 1]  # nothing yet: an empty axis rather than plotly's -1..6
    return figure(data, layout)
