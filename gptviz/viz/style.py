"""Colours and small helpers shared by every figure.

All colours are colour-blind safe: Okabe-Ito for categories, Viridis for 0..1 amounts,
reversed RdBu for signed values (blue negative, red positive). Pages should pass
`theme=None` to st.plotly_chart, or Streamlit repaints these colours.
"""

from __future__ import annotations

import html

import numpy as np
import pandas  # noqa: F401  plotly reads sys.modules["pandas"]: a half-imported one (another thread) breaks figures
import plotly.graph_objects as go

# Okabe & Ito (2008), "Color Universal Design"; yellow last, as it is hard to read as a line or text on white.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442"]


def series_colour(n: int) -> str:
    """The n-th series' colour (a run, a curve): the same n always gets the same colour."""
    return OKABE_ITO[n % len(OKABE_ITO)]


BLUE, ORANGE, VERMILION, GREY = "#0072B2", "#E69F00", "#D55E00", "#999999"
# spelled out as (position, colour) pairs, as plotly's validation spells out the names
SEQUENTIAL = go.Heatmap(colorscale="Viridis").colorscale
DIVERGING = go.Heatmap(colorscale="RdBu").colorscale  # used with reversescale=True

# Fixed per class, so a class keeps its colour whichever classes a chart happens to show.
CHAR_CLASS_COLOURS = {
    "uppercase": "#0072B2",
    "lowercase": "#E69F00",
    "digit": "#009E73",
    "space": "#000000",
    "punctuation": "#CC79A7",
    "other": "#999999",
}


def tint(hex_colour: str, amount: float = 0.6) -> str:
    """Mix a colour with white: pastel backgrounds that keep black text readable."""
    rgb = [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02X}" for c in rgb)


# Backgrounds for alternating token spans (tiktokenizer style). Yellow is left out: too pale tinted.
PASTELS = [tint(c) for c in ("#56B4E9", "#E69F00", "#009E73", "#CC79A7", "#0072B2")]


def categorical_colours(categories) -> dict[str, str]:
    """A colour per category in order of first appearance (char classes keep their own)."""
    out: dict[str, str] = {}
    for c in categories:
        if c not in out:
            out[c] = CHAR_CLASS_COLOURS.get(c) or OKABE_ITO[len(out) % len(OKABE_ITO)]
    return out


def esc(label: str) -> str:
    """Plotly reads text as a bit of HTML: a token such as '<b>' or '&' must be escaped to show as typed."""
    return html.escape(str(label), quote=False)


def to_numpy(x) -> np.ndarray:
    """Tensor, array or list -> float32 array (plotly sends those as compact binary)."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def position_labels(labels) -> list[str]:
    """'3:e' instead of 'e': a categorical axis would merge two tokens with the same label."""
    return [f"{i}:{esc(label)}" for i, label in enumerate(labels)]


MAX_TICKS = 24  # more token labels than this on an axis are unreadable: hover instead


def figure(data: list[dict], layout: dict) -> go.Figure:
    """A plotly Figure from plain dicts, skipping plotly's property-by-property validation.

    Validation costs 10-15 ms a figure and pages redraw on every click of every student; each
    builder's output is checked once in tests/test_viz.py instead (validating it changes nothing).
    """
    return go.Figure({"data": data, "layout": layout}, _validate=False)
