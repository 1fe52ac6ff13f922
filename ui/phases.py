"""The training timeline's phase change on the Attention page: every head's detector scores and the
in-context-learning score at every snapshot, computed once per set of weights and shared by sessions."""

from __future__ import annotations

import streamlit as st

from gptviz import detectors, induction, viz

from . import models, timeline
from .common import default_prompt, detector_tokens, fingerprint, last_figure
from .models import ModelEntry
from .state import Attention

MAX_STEPS = 64  # a timeline with more snapshots is scored at this many of them, evenly spread (and its end)
PANELS = {name: d.badge for name, d in detectors.REGISTRY.items()}  # one small panel per detector


def full_entry(entry: ModelEntry) -> ModelEntry:
    """The model as training left it, whichever timeline step `entry` shows."""
    return entry if entry.step is None else models.entry(entry.key.rpartition("@")[0])


@st.cache_resource(max_entries=16, show_spinner="Scoring every head at every training step…")
def _shared_line(weights: str, _config, _weights_at: dict, _tokens) -> dict:
    # read-only numbers, shared by every session that looks at the same weights (a bundled model, say)
    return induction.timeline_scores(_config, _weights_at, _tokens)


def line_of(entry: ModelEntry) -> dict | None:
    """Detector and ICL scores at every step of the model's timeline (its end: the final weights); None without one."""
    full = full_entry(entry)
    steps = timeline.steps(full)
    if len(steps) < 2:
        return None
    if len(steps) > MAX_STEPS:  # a file may hold any number of snapshots: bound the work before doing it
        steps = [steps[i * (len(steps) - 1) // (MAX_STEPS - 1)] for i in range(MAX_STEPS)]
    weights_at = {s: full.snapshots[s] for s in steps[:-1]}
    weights_at[steps[-1]] = full.model.state_dict()
    tokens = detector_tokens(full.corpus, full.tokenizer, default_prompt(full))
    return _shared_line(f"{fingerprint(full)}:{steps}", full.model.config, weights_at, tokens)


def _figures(entry: ModelEntry, full: ModelEntry, line: dict):
    shown = entry.step if entry.step is not None else line["steps"][-1]
    formed = induction.formation_step(line)
    heads = viz.head_scores_over_training(line, PANELS, current_step=shown, formed=formed)
    h = full.meta.get("history", {})
    marks = {"shown": shown} | ({"induction head forms": formed} if formed is not None else {})
    loss = viz.loss_chart([{"name": full.label, **{k: h.get(k, []) for k in ("step", "train_loss", "eval_step",
                                                                             "val_loss")}}],
                          full.tokenizer.vocab_size, title="Loss", step_marks=marks)
    return heads, loss, viz.icl_chart(line, current_step=shown, formed=formed), formed


def phase_change(entry: ModelEntry):
    """Head scores over training, and the loss beside the in-context-learning score (a timeline's models only)."""
    line = line_of(entry)
    if line is None:
        return
    full = full_entry(entry)
    st.subheader("The training timeline: when did each head learn its job?")
    heads, loss, icl, formed = last_figure(Attention.PHASE_MEMO, (entry.key, id(entry.model)),
                                           lambda: _figures(entry, full, line))
    found = (f"An induction head forms at step **{formed}** (score ≥ {detectors.DEFAULT_THRESHOLD}): the loss drops "
             "and the second copy of a repeated sequence suddenly gets easier — a *phase change*."
             if formed is not None else
             f"No head reaches an induction score of {detectors.DEFAULT_THRESHOLD} in this run: try the *induction* "
             "preset on the Train page.")
    st.caption("Each line is one head's score (0 to 1) at each saved training step; thick lines are heads that "
               f"reach {detectors.DEFAULT_THRESHOLD}, coloured by layer. The dotted grey line is the step shown "
               "above. " + found)
    st.plotly_chart(heads, theme=None, width="stretch", key=Attention.PHASE_HEADS)
    left, right = st.columns(2)
    left.plotly_chart(loss, theme=None, width="stretch", key=Attention.PHASE_LOSS)
    right.plotly_chart(icl, theme=None, width="stretch", key=Attention.PHASE_ICL)
