"""The lecture's mathematical trick: averaging the past four ways, on a toy tensor the student edits."""

import pandas as pd
import streamlit as st
import torch

from gptviz import averaging
from gptviz.viz import stepwise as viz
from ui.averaging import new_numbers, parse_table, toy_frame
from ui.common import intro, student_errors
from ui.entry import require_app
from ui.state import Averaging


def header():
    st.title("The averaging trick")
    intro("Before attention, the lecture lets every token take the average of itself and the tokens before it. "
          "It writes that average four ways: the first three give exactly the same numbers; the fourth swaps "
          "the zeros for learned scores, so each token weighs the past its own way — that is self-attention. "
          "Edit any number of the toy tensor and watch all four.")


def toy_controls() -> torch.Tensor:
    """T and C, fresh random numbers on demand, and the table the student edits."""
    table, controls = st.columns([1, 1])
    T = controls.slider("T (tokens)", 1, averaging.MAX_T, 5, key=Averaging.T, persist_state="session")
    C = controls.slider("C (channels)", 1, averaging.MAX_C, 3, key=Averaging.C, persist_state="session")
    controls.button("New random numbers", key=Averaging.NEW, icon="🎲", on_click=new_numbers)
    frame, seed = toy_frame(T, C)
    with table:
        st.markdown("**x**: T × C, one row per token (click a number to change it)")
        edited = st.data_editor(frame, key=Averaging.editor(T, C, seed), width="content")
    with student_errors():
        return parse_table(edited)


def version_card(name: str, x: torch.Tensor, reference: torch.Tensor):
    out = averaging.VERSIONS[name](x)
    diff = float((out - reference).abs().max())
    with st.container(border=True):
        st.markdown(f"**{name}**")
        st.code(averaging.CODE[name], language="python")
        st.plotly_chart(viz.weights_heatmap(averaging.weights_of(name, x), "weights (rows add up to 1)"),
                        theme=None, width="stretch", key=Averaging.weights(int(name[0])))
        st.markdown("**the result, weights @ x**")
        st.dataframe(pd.DataFrame(out.numpy(), columns=[f"c{c}" for c in range(x.shape[1])]).round(4))
        if diff <= averaging.EQUAL_WITHIN:
            st.success(f"the same as version 1 (largest difference {diff:.1e})", icon="✅")
        else:
            st.warning(f"differs from the plain average: up to {diff:.3f}", icon="🔀")


def four_versions(x: torch.Tensor):
    reference = averaging.loop_average(x)
    columns = st.columns(2)  # two by two: wide enough for the lecture's lines of code
    for n, name in enumerate(averaging.VERSIONS):
        with columns[n % 2]:
            version_card(name, x, reference)


def footer():
    st.markdown("Version 4's query and key layers here are random: in a trained model they are learned, so a "
                "token looks where it is useful — one step back, at the first token, or at a pattern seen before.")
    st.page_link("pages/head_steps.py", label="What a trained head does instead of averaging: one head, step by "
                 "step", icon="➡️")


def main():
    require_app()
    header()
    four_versions(toy_controls())
    footer()


main()
