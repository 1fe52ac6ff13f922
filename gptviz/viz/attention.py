"""Attention patterns: every head at once, one head up close, and one row or column as bars.

Rows are queries (the token doing the looking), columns are keys (the tokens looked at);
row i sums to 1 and is zero right of the diagonal, because a token cannot see the future.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np
import plotly.graph_objects as go

from .style import MAX_TICKS, SEQUENTIAL, esc, figure, position_labels, to_numpy

VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"


GRID_WIDTH = 1000  # px the grid is laid out for (a wide page at 1280-1440 px); it scales with the page
MIN_CELL = 3  # px: fewer heads side by side when a cell would get narrower (they wrap onto more rows)
MAX_COLUMNS = 8
TICK_PX = 12  # room one rotated token label needs
MAX_LABELS = 16  # token labels per axis at most: each costs the browser ~3 ms to measure and draw
TITLE_PX = 20  # room above a tile for its title
MAX_HEIGHT = 760  # px: the whole grid on a 1440x900 screen when cells can stay MIN_CELL px tall


def grid_columns(n_head: int, T: int) -> int:
    """Heads side by side: as many as keep a cell at least MIN_CELL wide, preferring a divisor of n_head."""
    fit = max(1, min(n_head, MAX_COLUMNS, int(GRID_WIDTH / (1.1 * T * MIN_CELL))))
    divisor = max(c for c in range(1, fit + 1) if n_head % c == 0)
    return divisor if 2 * divisor >= fit else fit


@dataclass(frozen=True)
class GridLayout:
    """Where every head sits in the grid's one heatmap: T x T tiles, layers down and heads across
    (wrapping onto more rows when many), with empty cells between tiles (room for the tile titles).
    Kept in the figure's layout.meta, so that a click on the grid maps back to a head (see grid_cell)."""

    n_layer: int
    n_head: int
    T: int
    cols: int
    gap_x: int  # empty columns between two tiles
    gap_y: int  # empty rows above each row of tiles but the first

    @property
    def per_layer(self) -> int:
        return math.ceil(self.n_head / self.cols)

    @property
    def shape(self) -> tuple[int, int]:
        rows = self.n_layer * self.per_layer
        return rows * (self.T + self.gap_y) - self.gap_y, self.cols * (self.T + self.gap_x) - self.gap_x

    def origin(self, layer: int, head: int) -> tuple[int, int]:
        """(row, column) of the head's first query and first key in the heatmap."""
        r, c = layer * self.per_layer + head // self.cols, head % self.cols
        return r * (self.T + self.gap_y), c * (self.T + self.gap_x)

    def cell(self, row: int, col: int) -> tuple[int, int, int, int] | None:
        """(layer, head, query, key) of the heatmap's cell at (row, col); None between tiles or outside."""
        if not (0 <= row < self.shape[0] and 0 <= col < self.shape[1]):
            return None
        (r, query), (c, key) = divmod(row, self.T + self.gap_y), divmod(col, self.T + self.gap_x)
        layer, head = r // self.per_layer, (r % self.per_layer) * self.cols + c
        return (layer, head, query, key) if query < self.T and key < self.T and head < self.n_head else None


def grid_cell(meta: dict, x, y) -> tuple[int, int, int, int] | None:
    """(layer, head, query, key) of a click on attention_grid's figure: x and y as plotly reports a
    point (category labels or positions); meta is the figure's layout.meta. None for a gap."""
    try:
        layout = GridLayout(**{k: int(v) for k, v in meta["grid"].items()})
        xs, ys = _axis_labels(layout)

        def position(v, labels):
            return labels.index(v) if isinstance(v, str) and v in labels else int(round(float(v)))

        return layout.cell(position(y, ys), position(x, xs))
    except (TypeError, ValueError, KeyError, OverflowError):  # a click payload is untrusted: anything else is no cell
        return None


def grid_patterns(z, meta: dict) -> np.ndarray:
    """The (n_layer, n_head, T, T) patterns back out of the grid's heatmap (what attention_grid was given)."""
    layout = GridLayout(**meta["grid"])
    z, T = np.asarray(z), layout.T
    out = np.empty((layout.n_layer, layout.n_head, T, T), dtype=z.dtype)
    for l in range(layout.n_layer):
        for h in range(layout.n_head):
            r, c = layout.origin(l, h)
            out[l, h] = z[r:r + T, c:c + T]
    return out


def _axis_labels(layout: GridLayout) -> tuple[list[str], list[str]]:
    """Category labels of the heatmap's columns and rows, read on hover ("L1 · query 5 → H2 · key 3").
    Plotly merges equal categories: invisible zero-width spaces keep repeated ones apart."""
    zw, step_x, step_y = "\u200b", layout.T + layout.gap_x, layout.T + layout.gap_y
    one_row = layout.per_layer == 1
    xs = [(f"H{i // step_x} · key {i % step_x}" if one_row else f"key {i % step_x}" + zw * (i // step_x))
          if i % step_x < layout.T else zw + str(i) for i in range(layout.shape[1])]
    ys = []
    for i in range(layout.shape[0]):
        r, q = divmod(i, step_y)
        ys.append(f"L{r // layout.per_layer} · query {q}" + zw * (r % layout.per_layer) if q < layout.T
                  else zw + str(i))
    return xs, ys


def attention_grid(patterns, labels: list[str], detector_badges: dict[tuple[int, int], str] | None = None,
                   height: int | None = None) -> go.Figure:
    """Every head as one square tile on one 0..1 colour scale: layers down, heads across (wrapping if many).

    patterns: (n_layer, n_head, T, T), e.g. analysis.attention_for(cache, n_layer). All heads are ONE
    heatmap trace on one pair of axes, tiles side by side with empty cells between them: the browser draws
    one image instead of a trace and axes per head (grid_cell maps a click back to a head, query and key).
    Token labels go on the first tile's axes only (every k-th token when they do not all fit).
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
    T = len(ticks)
    cols = grid_columns(n_head, T)
    rows = n_layer * math.ceil(n_head / cols)
    gap_px = 12
    tile = (GRID_WIDTH - 80 - (cols - 1) * gap_px) / cols  # px wide
    # square tiles, unless the grid would not fit a screen: then flatter ones, down to MIN_CELL px a cell
    fit = (MAX_HEIGHT - 80 - rows * (TITLE_PX + gap_px)) / rows
    tile_h = max(min(tile, fit), min(tile, MIN_CELL * T))
    layout = GridLayout(n_layer, n_head, T, cols, gap_x=max(1, round(gap_px * T / tile)),
                        gap_y=max(1, math.ceil((TITLE_PX + gap_px) * T / tile_h)))
    H, W = layout.shape
    grid = np.full((H, W), np.nan, dtype=np.float32)  # NaN: an empty cell between tiles, drawn as nothing
    for l in range(n_layer):
        for h in range(n_head):
            r, c = layout.origin(l, h)
            grid[r:r + T, c:c + T] = z[l, h]
    xs, ys = _axis_labels(layout)
    every = max(1, math.ceil(TICK_PX * T / tile), math.ceil(T / MAX_LABELS))  # every k-th token: no overlap
    shown = list(range(0, T, every))
    # fixed angles and margins: plotly's automatic ones re-measure every label and tripled the draw time
    tick = dict(tickmode="array", tickfont=dict(size=9), showgrid=False, zeroline=False, automargin=False,
                type="category")
    titles = []
    for l in range(n_layer):
        for h in range(n_head):
            r, c = layout.origin(l, h)
            titles.append(dict(text=f"L{l} H{h}" + (f" · {esc(badges[(l, h)])}" if (l, h) in badges else ""),
                               x=(c + T / 2) / W, y=1 - r / H, xref="paper", yref="paper", xanchor="center",
                               yanchor="bottom", showarrow=False, font=dict(size=11)))
    plot_h = H * tile_h / T
    trace = dict(type="heatmap", z=grid, x=xs, y=ys, coloraxis="coloraxis", hoverongaps=False,
                 hovertemplate="%{y} → %{x}: %{z:.2f}<extra></extra>")
    return figure([trace], dict(
        annotations=titles, meta={"grid": asdict(layout)},
        xaxis=dict(tickvals=[xs[i] for i in shown], ticktext=[ticks[i] for i in shown], tickangle=-90,
                   range=[-0.5, W - 0.5], **tick),
        yaxis=dict(tickvals=[ys[i] for i in shown], ticktext=[ticks[i] for i in shown], tickangle=0,
                   range=[H - 0.5, -0.5], **tick),  # first query on top
        coloraxis=dict(colorscale=SEQUENTIAL, cmin=0, cmax=1, colorbar=dict(title=dict(text="weight"), thickness=12,
                                                                             len=min(1.0, 400 / plot_h))),
        height=height or round(plot_h + 80 + TITLE_PX), margin=dict(l=70, r=10, t=10 + TITLE_PX, b=70),
    ))


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
            # the pattern stays readable: other cells are only a little lighter, the chosen row and column outlined
            "opacity": {"condition": {"test": chosen, "value": 1.0}, "value": 0.8} if dim else {"value": 1.0},
            "stroke": {"condition": {"test": chosen, "value": "#D55E00"}, "value": None} if dim else {"value": None},
            "strokeWidth": {"value": 1},
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
    ticks = position_labels(labels)
    shown = pos[::max(1, math.ceil(len(pos) / MAX_TICKS))]  # every k-th token: labels must not overlap
    bars = dict(
        type="bar", x=pos, y=w, customdata=pos,
        marker=dict(color=w, colorscale=SEQUENTIAL, cmin=0, cmax=1,
                    line=dict(color=["black" if i == highlight else "rgba(0,0,0,0)" for i in pos], width=2)),
        text=[esc(label) for label in labels], hovertemplate="%{x}:%{text}: %{y:.2f}<extra></extra>",
        textposition="none",
    )
    return figure([bars], dict(
        title=dict(text=title), height=height, margin=dict(l=60, r=10, t=50, b=60),
        xaxis=dict(tickmode="array", tickvals=shown, ticktext=[ticks[i] for i in shown], tickangle=-90,
                   title=dict(text="position:token")),
        yaxis=dict(range=[0, 1], title=dict(text="attention weight")),
    ))
