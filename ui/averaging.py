"""The averaging-trick page's state and parser: the toy tensor the student edits."""

from __future__ import annotations

import pandas as pd
import streamlit as st
import torch

from gptviz import averaging
from gptviz.errors import InputError

from .state import Averaging

FIRST_SEED = 1337  # the lecture's torch.manual_seed


def new_numbers():
    """The 'New random numbers' button: the next seed."""
    st.session_state[Averaging.SEED] = st.session_state.get(Averaging.SEED, FIRST_SEED) + 1


def toy_frame(T: int, C: int) -> tuple[pd.DataFrame, int]:
    """The table to edit and its seed: a new shape or seed gives new numbers and clears the edits."""
    seed = st.session_state.setdefault(Averaging.SEED, FIRST_SEED)
    if st.session_state.get(Averaging.SHAPE) != (T, C, seed):
        st.session_state[Averaging.SHAPE] = (T, C, seed)
        st.session_state[Averaging.TOY] = averaging.toy_tensor(T, C, seed).tolist()
    frame = pd.DataFrame(st.session_state[Averaging.TOY], index=[f"token {t}" for t in range(T)],
                         columns=[f"c{c}" for c in range(C)])
    return frame, seed


def parse_table(edited: pd.DataFrame) -> torch.Tensor:
    """The edited table as a (T, C) tensor; InputError for an empty or non-numeric cell."""
    values = edited.apply(pd.to_numeric, errors="coerce").to_numpy(dtype="float32", copy=True)
    x = torch.from_numpy(values)
    if not torch.isfinite(x).all():
        raise InputError("Every cell of x needs a number: fill in the empty ones.")
    return x
