"""Reading charts back out of an AppTest run: the figure a page sent, as data."""

import base64
import json

import numpy as np


def array(v):
    """A plotly data array from the JSON spec (plain list or base64 typed array)."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        return a.reshape([int(s) for s in str(v["shape"]).split(",")]) if "shape" in v else a
    return np.asarray(v)


def figure(at, key):
    """The plotly figure of the chart created with `key=...`."""
    (el,) = [c for c in at.get("plotly_chart") if c.proto.id.endswith("-" + key)]
    return json.loads(el.proto.spec)


def bars(at, key):
    """(token ids, probabilities) of a horizontal bar chart of tokens, top to bottom."""
    trace = figure(at, key)["data"][0]
    return [int(i) for i in trace["customdata"]], array(trace["x"]).astype(float)


def metric(at, label_start):
    (m,) = [m for m in at.metric if m.label.startswith(label_start)]
    return m.value


def grid_heads(fig: dict) -> np.ndarray:
    """Every head's pattern, (n_layer * n_head, T, T), out of the attention grid's one heatmap."""
    from gptviz.viz.attention import grid_patterns

    (trace,) = fig["data"]
    heads = grid_patterns(array(trace["z"]), fig["layout"]["meta"])
    return heads.reshape(-1, *heads.shape[2:])


def grid_ticks(fig: dict) -> dict[int, str]:
    """{token position: label} of the attention grid's token labels (its first tile's x axis)."""
    x, columns = fig["layout"]["xaxis"], list(fig["data"][0]["x"])
    return {columns.index(v): text for v, text in zip(x["tickvals"], x["ticktext"])}
