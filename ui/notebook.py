"""The Train page's lab notebook: which runs it shows, grouped by seed, as a table, a chart and a verdict."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from gptviz import runs

from . import state
from .state import Train


def finished() -> list[state.Run]:
    return [r for r in state.runs().values() if r.trainer.done]


def default_shown(done: list[state.Run], batch: list[state.Run]) -> list[int]:
    """What a student wants to compare first: every run of the latest batch's seed groups, and with a
    single group (one run and its seeds) also the two groups trained before it."""
    groups = {r.group for r in batch}
    if len(groups) == 1:
        earlier = [r.group for r in done if r.group not in groups]
        groups |= set(list(dict.fromkeys(earlier))[-2:])
    return [r.id for r in done if r.group in groups]


def choose_default(batch: list[state.Run]):
    """When a batch has finished, select its runs (once: the student may change the selection); a run
    deleted since leaves the selection."""
    if batch and all(r.trainer.done for r in batch) and st.session_state.get(Train.COMPARE_BATCH) != batch[-1].batch:
        st.session_state[Train.COMPARE_BATCH] = batch[-1].batch
        st.session_state[Train.COMPARE] = default_shown(finished(), batch)
    done = {r.id for r in finished()}
    if any(i not in done for i in st.session_state.get(Train.COMPARE, [])):
        st.session_state[Train.COMPARE] = [i for i in st.session_state[Train.COMPARE] if i in done]


def groups_of(shown: list[state.Run]) -> list[runs.Group]:
    return runs.group_results([runs.result_of(r.trainer, r.name, r.preset, r.settings, r.group) for r in shown])


def colour_of(group: runs.Group) -> str | None:
    """A seed group keeps the colour of its first run."""
    first = state.runs().get(group.first.group)
    return first.colour if first else None


def chart_curves(groups: list[runs.Group]) -> list[dict]:
    return [{**g.curve(), "colour": colour_of(g)} for g in groups]


def table(groups: list[runs.Group]):
    """The runs table as a styled frame: the setting cells that differ from the first row highlighted."""
    rows, highlight = runs.notebook_rows(groups)
    frame = pd.DataFrame(rows)

    def paint(column: pd.Series) -> list[str]:
        marks = highlight.get(column.name, [False] * len(column))
        return ["background-color: #FFE8B0; font-weight: bold" if m else "" for m in marks]

    number = {c: f for c, f in runs.NUMBER_FORMATS.items() if c in frame}
    return frame.style.apply(paint, axis=0).format(number)


def verdict_picks(groups: list[runs.Group]) -> dict[int, str]:
    """Group id -> row name, and the two picks defaulting to the last two rows."""
    options = {g.first.group: g.name for g in groups}
    ids = list(options)
    for k, default in ((Train.VERDICT_A, ids[-2]), (Train.VERDICT_B, ids[-1])):
        if st.session_state.get(k) not in options:
            st.session_state[k] = default
    return options
