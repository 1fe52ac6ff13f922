"""The Next-token page's state and callbacks: a prompt that grows one token at a time, and its undo stack."""

from __future__ import annotations

import streamlit as st

from . import state
from .state import NextToken

# A sampling button only leaves a request (NextToken.REQUEST); the next script run serves it with its own prompt,
# settings and seed. (A callback would see the previous run's prompt, and st.button's True is lost when a run restarts.)


def append(tok, token: int):
    """Append a token to the shared prompt, remembering how to undo it."""
    before = state.get(state.PROMPT)
    after = before + tok.decode([token])
    st.session_state.setdefault(NextToken.UNDO, []).append((before, after))
    state.put(state.PROMPT, after)


def clicked_token(event, shown: list[int]) -> int | None:
    """The token id of a clicked bar (customdata, or the bar's index into `shown`), or None."""
    points = (event or {}).get("selection", {}).get("points", [])
    if not points:
        return None
    point = points[0]
    token = point.get("customdata")
    if isinstance(token, list):
        token = token[0] if token else None
    if token is None and point.get("point_index") is not None:
        token = shown[point["point_index"]]
    return None if token is None else int(token)


def on_bar_click(tok, shown: list[int]):
    token = clicked_token(st.session_state.get(NextToken.BARS), shown)
    if token is not None:
        append(tok, token)


def append_picked(tok, shown: list[int]):
    """Append the token picked in the list; a pick that is not one of the ids offered is ignored."""
    token = st.session_state.get(NextToken.PICK)
    if token in shown:
        append(tok, token)


def request(what: str):
    st.session_state[NextToken.REQUEST] = what


def take_request() -> str | None:
    """A sampling button pressed in the last run ("one" or "many"), served once."""
    return st.session_state.pop(NextToken.REQUEST, None)


def undo():
    stack = st.session_state.get(NextToken.UNDO) or []
    if stack:
        before, _ = stack.pop()
        state.put(state.PROMPT, before)


def undo_stack(prompt: str) -> list:
    """The appended tokens that can still be undone: none once the student has edited the prompt by hand."""
    stack = st.session_state.setdefault(NextToken.UNDO, [])
    if stack and stack[-1][1] != prompt:
        stack.clear()
    return stack
