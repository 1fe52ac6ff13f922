"""The Inside-the-layers page's state and text: the lens position, the heads to silence, the lens sentence."""

from __future__ import annotations

import re

import streamlit as st

from .state import Layers


def position_for(T: int):
    """A new prompt length sends the position slider back to the last token."""
    if st.session_state.get(Layers.POSITION_FOR) != T or st.session_state.get(Layers.POSITION) not in range(T):
        st.session_state[Layers.POSITION] = T - 1
    st.session_state[Layers.POSITION_FOR] = T


def head_name(head: tuple[int, int]) -> str:
    return f"L{head[0]} H{head[1]}"


def keep_known_heads(options: list[str]):
    """Drop remembered heads this model does not have (picked on a bigger model)."""
    remembered = st.session_state.get(Layers.ABLATE) or []
    if any(name not in options for name in remembered):
        st.session_state[Layers.ABLATE] = [name for name in remembered if name in options]


def md(text: str) -> str:
    """A token label inside Markdown: '*', '_', '$' and friends shown as typed."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|$<>~])", r"\\\1", text)


def lens_sentence(table: dict, n_layer: int) -> str:
    """One sentence reading the logit lens: where the final answer first ranks #1, and what happens after."""
    answer = f"'{md(table['answer_label'])}'"
    first = table["first_layer_top1"]
    if first is None:
        return f"The final answer {answer} never ranks #1 before the end."
    row = table["layers"][first]
    if first == 0:
        return (f"The final answer **{answer}** is already #1 at **{row}**, before any block: "
                "the current token alone suggests it, like a bigram model.")
    if first == n_layer:
        return f"The final answer **{answer}** becomes #1 only after **{row}**, the last block."
    later = n_layer - first
    blocks = f"the {later} block{'s' if later > 1 else ''} after it"
    p0, p1 = table["answer_prob"][first], table["answer_prob"][-1]
    change = f"({p0:.0%} → {p1:.0%})"
    if any(rank != 1 for rank in table["answer_rank"][first:]):
        what = f"{blocks} push it down and back to #1 {change}"
    elif round(100 * p1) > round(100 * p0):  # as the percentages show them
        what = f"{blocks} only make it surer {change}"
    else:
        what = f"{blocks} keep it on top without making it surer {change}"
    return f"The final answer **{answer}** is already #1 after **{row}**; {what}."
