"""How text becomes tokens: coloured token spans and the most frequent tokens."""

from __future__ import annotations

import html

import plotly.graph_objects as go

from ..tokenizers import Tokenizer
from .style import BLUE, PASTELS, esc, figure


def _piece(tokenizer: Tokenizer, i: int) -> str:
    text = tokenizer.decode([i])
    # half of a multi-byte character decodes to '�': its label (<0xE2>) says more
    return tokenizer.label(i) if "\ufffd" in text else text


def token_html(tokenizer: Tokenizer, ids, max_tokens: int | None = 5000) -> str:
    """The text with each token on its own pastel background; hover a token for its id and label.

    Newlines show as '⏎' and a line break. Everything is HTML-escaped, so the result is safe for
    st.html / st.markdown(unsafe_allow_html=True). Past max_tokens the rest is summarised.
    """
    ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
    shown = ids if max_tokens is None else ids[:max_tokens]
    spans = []
    for n, i in enumerate(shown):
        text = html.escape(_piece(tokenizer, i)).replace("\n", "⏎<br>")
        title = html.escape(f"id {i}: {tokenizer.label(i)}", quote=True)
        colour = PASTELS[n % len(PASTELS)]
        spans.append(f'<span title="{title}" style="background:{colour};border-radius:3px">{text}</span>')
    if len(shown) < len(ids):
        spans.append(f'<span style="color:#555"> … {len(ids) - len(shown)} more tokens</span>')
    # one line of HTML (no raw newlines), so Markdown cannot break it into paragraphs or code
    return (
        '<div style="font-family:monospace;white-space:pre-wrap;line-height:1.9;color:#000">'
        + "".join(spans) + "</div>"
    )


def token_frequency_chart(top: list[tuple[str, int]], title: str = "Most frequent tokens",
                          height: int | None = None) -> go.Figure:
    """Horizontal bars of (label, count), most frequent on top."""
    labels = [esc(label) for label, _ in top]
    counts = [c for _, c in top]
    pos = list(range(len(top)))
    bars = dict(type="bar", x=counts, y=pos, orientation="h", marker=dict(color=BLUE),
                customdata=labels, hovertemplate="%{customdata}: %{x}<extra></extra>")
    return figure([bars], dict(
        title=dict(text=title), height=height or min(600, max(250, 22 * len(top) + 100)),
        margin=dict(l=10, r=10, t=50, b=40), xaxis=dict(title=dict(text="count")),
        # automargin: the margin grows to fit the longest label ("␣the" was cut to "he")
        yaxis=dict(tickmode="array", tickvals=pos, ticktext=labels, autorange="reversed", automargin=True),
    ))
