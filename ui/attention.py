"""The Attention page's state and callbacks: generated tokens, the step slider, clicks on the head chart."""

from __future__ import annotations

import streamlit as st

from gptviz.errors import GptvizError
from gptviz.generate import fit_to_window, generate

from . import state
from .state import Attention


def own_generated(owner: tuple) -> list[int]:
    """Generated tokens belong to one model (at any step of its timeline) and one prompt: anything else clears them."""
    if st.session_state.get(Attention.GENERATED_FOR) != owner:
        st.session_state[Attention.GENERATED] = []
        st.session_state[Attention.GENERATED_FOR] = owner
    return st.session_state[Attention.GENERATED]


def generate_tokens(model, prompt_ids: list[int], owner: tuple):
    """The Generate button's callback: it runs before the page, so the new tokens show in this very run."""
    n_new = int(st.session_state[Attention.N_NEW])
    context = fit_to_window(prompt_ids, model.config.block_size, room=n_new)  # one window: prompt and new tokens
    try:
        new = generate(model, context, n_new, temperature=float(st.session_state[Attention.TEMPERATURE]),
                       seed=int(st.session_state[Attention.SEED]))
    except GptvizError as e:
        st.session_state[Attention.GENERATE_ERROR] = str(e)
        return
    st.session_state[Attention.GENERATED], st.session_state[Attention.GENERATED_FOR] = new, owner
    st.session_state[Attention.STEP] = len(new)
    st.session_state[Attention.QUERY] = len(context) + len(new) - 1  # the newest token asks


def repeat_prompt(tokenizer, ids: list[int], block_size: int):
    """The Repeat button's callback: the prompt (its last block_size // 2 tokens) followed by a copy of itself."""
    half = ids[-max(block_size // 2, 1):]
    state.put(state.PROMPT, tokenizer.decode(half + half))
    st.session_state.pop(Attention.QUERY, None)  # the pickers start again at the last token


def follow_newest(prompt_length: int):
    """Moving the step slider makes the newest token the query."""
    st.session_state[Attention.QUERY] = prompt_length + st.session_state[Attention.STEP] - 1


def clicked_cells(event) -> list[tuple[int, int]]:
    """(query, key) pairs of a click on the head chart, read defensively from the chart's selection state."""
    try:
        selection = event["selection"] if isinstance(event, dict) else getattr(event, "selection", None)
        cells = selection.get("cell") if hasattr(selection, "get") else None
    except (KeyError, TypeError):
        return []
    if isinstance(cells, dict):  # some versions give {"query": [..], "key": [..]}
        q, k = cells.get("query"), cells.get("key")
        cells = [{"query": a, "key": b} for a, b in zip(q, k)] if isinstance(q, list) and isinstance(k, list) \
            else [cells]
    out = []
    for cell in cells or []:
        try:
            out.append((int(float(cell["query"])), int(float(cell["key"]))))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def on_cell_click():
    cells = clicked_cells(st.session_state.get(Attention.CELL))
    if cells:
        st.session_state[Attention.QUERY], st.session_state[Attention.KEY] = cells[-1]
