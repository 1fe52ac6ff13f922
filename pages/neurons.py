"""MLP neurons: which fire on the prompt, and where in the model's own text each one fires most."""

import time

import streamlit as st

from gptviz import neurons
from gptviz.viz import stepwise as viz
from ui import neurons as scans
from ui.common import capture, inspected, intro, prompt_ids, student_errors
from ui.entry import require_app
from ui.state import Neurons


def header():
    st.title("MLP neurons")
    intro("After attention, each block's MLP widens every token's vector to 4 × n_embd numbers, the neurons, and "
          "keeps only the positive part (GELU). Here are the neurons that fire most on your prompt; pick one to "
          "see the places in the model's own validation text where it fires hardest, the firing token highlighted.")


def pick_neuron(cache, n_layer: int, n_neurons: int) -> tuple[int, int, list]:
    """The layer, the prompt's strongest neurons, and the neuron the student looks at."""
    scans.keep_choice(n_layer, n_neurons)
    c1, c2 = st.columns(2)
    layer = c1.selectbox("Layer", range(n_layer), format_func=lambda i: f"layer {i}", key=Neurons.LAYER)
    top = neurons.prompt_neurons(cache, layer, k=12)
    scans.keep_choice(n_layer, n_neurons, strongest=top[0][0])
    neuron = c2.number_input(f"Neuron (0–{n_neurons - 1})", 0, n_neurons - 1, step=1, key=Neurons.NEURON,
                             help="Click a bar to pick one of the prompt's strongest neurons.")
    return layer, int(neuron), top


def strongest_bars(top: list, labels: list[str], neuron: int):
    st.plotly_chart(viz.neuron_bars(top, labels, chosen=neuron), theme=None, width="stretch", key=Neurons.BARS,
                    on_select=lambda: scans.on_bar_click(top), selection_mode="points")


def top_contexts(entry, layer: int, neuron: int):
    tokens = scans.validation_tokens(entry)
    if tokens is None:
        st.info("The text this model learned from is not on the server (it was uploaded in another session), so "
                "its neurons' top contexts cannot be shown. Upload the text on the Data & tokens page.", icon="📄")
        return
    started = time.perf_counter()
    with st.spinner(f"Reading {len(tokens):,} tokens of validation text (once per model)…"):
        index = scans.index(entry, tokens)
    elapsed = time.perf_counter() - started
    st.markdown(f"**Where neuron {neuron} of layer {layer} fires most** in {len(tokens):,} tokens of "
                f"{entry.corpus}'s validation text")
    for c in neurons.contexts(index, tokens, entry.tokenizer, layer, neuron):
        st.html(viz.context_html(c.before, c.token, c.after, c.activation))
    st.caption(f"Each line is what the model saw before the highlighted token (its context window), then a few "
               f"tokens after in grey; the number is the neuron's activation. ({elapsed:.2f} s)")


def main():
    require_app()
    header()
    entry = inspected("neurons")
    with student_errors():
        neurons.check_layer(entry.model, 0)
    ids = prompt_ids(entry, page="neurons")
    labels = [entry.tokenizer.label(i) for i in ids]
    _, cache = capture(entry, ids)
    layer, neuron, top = pick_neuron(cache, entry.model.config.n_layer, 4 * entry.model.config.n_embd)
    left, right = st.columns([2, 3])
    with left:
        strongest_bars(top, labels, neuron)
    with right:
        top_contexts(entry, layer, neuron)


main()
