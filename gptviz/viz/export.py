"""Figures as standalone HTML files, for download buttons."""

from __future__ import annotations

import altair as alt
import plotly.graph_objects as go


def figure_to_html(fig: go.Figure | dict) -> str:
    """A self-contained HTML page of a figure: a plotly Figure or a Vega-Lite spec (a dict).

    Plotly figures embed plotly.js (~4.8 MB) so the file opens offline. Vega-Lite charts load
    Vega from a CDN (jsdelivr) when the file is opened: offline they stay blank, because
    inlining Vega needs the vl-convert package, which is not installed.
    """
    if isinstance(fig, go.Figure):
        return fig.to_html(include_plotlyjs=True, full_html=True)
    if isinstance(fig, dict) and "$schema" in fig:
        return alt.Chart.from_dict(fig).to_html()
    raise TypeError(f"Expected a plotly Figure or a Vega-Lite spec, got {type(fig).__name__}.")
