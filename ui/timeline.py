"""The training timeline: look at the same view with the weights from an earlier training step.

Training keeps snapshots at log-spaced steps (0, 10, 30, 100, 300, ... and the end); a slider on the
inspection pages swaps the model for one of them, so students watch heads and clusters form.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

import streamlit as st

from gptviz.induction import model_from
from gptviz.model import GPT

from . import state
from .models import ModelEntry, identity


def final_step(entry: ModelEntry) -> int:
    steps = entry.meta.get("history", {}).get("step", [])
    return steps[-1] + 1 if steps else max(entry.snapshots, default=0)


def steps(entry: ModelEntry) -> list[int]:
    """The snapshot steps before the end; the end itself is the model as it is."""
    end = final_step(entry)
    return sorted(s for s in entry.snapshots if s < end) + [end]


def _model_at(entry: ModelEntry, step: int) -> GPT:
    memo: OrderedDict = st.session_state.setdefault(state.TIMELINE_MODELS, OrderedDict())
    key = (entry.key, identity(entry.model), step)
    if key not in memo:
        memo[key] = model_from(entry.model.config, entry.snapshots[step])
        while len(memo) > 2:  # a page looks at one step at a time; Compare at two
            memo.popitem(last=False)
    memo.move_to_end(key)
    return memo[key]


def _remember(page: str, model_key: str, widget: str):
    st.session_state[state.TIMELINE][page] = (model_key, st.session_state[widget])


def pick(entry: ModelEntry, page: str, start: int | None = None, label: str = "Training step (timeline)") -> ModelEntry:
    """A 'training step' slider (when the model has snapshots); returns the model at that step.

    Each page remembers its step together with the model it belongs to: a newly picked model starts at
    `start` (a step of its timeline), or else at its end. The step lives in plain session state, so it
    survives what a widget's own state does not (a page switch, a run that ended in an error).
    """
    options = steps(entry)
    if len(options) < 2:
        return entry
    key = state.timeline_widget(page)
    owner, step = st.session_state.setdefault(state.TIMELINE, {}).get(page, (None, None))
    if owner != entry.key or step not in options:
        step = start if start in options else options[-1]
    st.session_state[state.TIMELINE][page] = (entry.key, step)
    st.session_state[key] = step
    step = st.select_slider(label, options, key=key, on_change=_remember, args=(page, entry.key, key),
                            format_func=lambda s: f"{s} (final)" if s == options[-1] else str(s),
                            help="Weights saved during training: slide back to see this view before the model "
                                 "learned it.")
    if step == options[-1]:
        return entry
    return replace(entry, key=f"{entry.key}@{step}", label=f"{entry.label} at step {step}",
                   model=_model_at(entry, step), step=step)
