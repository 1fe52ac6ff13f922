"""MLP neurons: which fire on the prompt, and where in the model's own text each one fires most."""

import time

import streamlit as st

from gptviz import neurons
from gptviz.viz import stepwise as viz
from ui import models, timeline
from ui import neurons as scans
from ui.common import capture, encode_prompt, intro, prompt_input, student_errors
from ui.entry import require_app
from ui.state import Neurons

require_app()
st.title("MLP neurons")
intro("After attention, each block's MLP widens every token's vector to 4 × n_embd numbers, the neurons, and "
      "keeps only the positive part (GELU). Here are the neurons that fire most on your prompt; pick one to see "
      "the places in the model's own validation text where it fires hardest, the firing token highlighted.")

entry = models.current()
if entry is None:
    st.stop()
entry = timeline.pick(entry, page="neurons")
model, tok = entry.model, entry.tokenizer
with student_errors():
    neurons.check_layer(model, 0)
    ids = encode_prompt(entry, prompt_input(entry, page="neurons"))
labels = [tok.label(i) for i in ids]
_, cache = capture(entry, ids)
n_layer, n_neurons = model.config.n_layer, 4 * model.config.n_embd


def pick_neuron() -> tuple[int, int, list]:
    """The layer, the prompt's strongest neurons, and the neuron the student looks at."""
    if st.session_state.get(Neurons.LAYER) not in range(n_layer):
        st.session_state[Neurons.LAYER] = 0
    c1, c2 = st.columns(2)
    layer = c1.selectbox("Layer", range(n_layer), format_func=lambda i: f"layer {i}", key=Neurons.LAYER)
    top = neurons.prompt_neurons(cache, layer, k=12)
    if st.session_state.get(Neurons.NEURON) not in range(n_neurons):
        st.session_state[Neurons.NEURON] = top[0][0]
    neuron = c2.number_input(f"Neuron (0–{n_neurons - 1})", 0, n_neurons - 1, step=1, key=Neurons.NEURON,
                             help="Click a bar to pick one of the prompt's strongest neurons.")
    return layer, int(neuron), top


def on_bar_click(top):
    points = (st.session_state.get(Neurons.BARS) or {}).get("selection", {}).get("points", [])
    if points and points[0].get("point_index") is not None:
        st.session_state[Neurons.NEURON] = top[points[0]["point_index"]][0]


def top_contexts(layer: int, neuron: int):
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
    for c in neurons.contexts(index, tokens, tok, layer, neuron):
        st.html(viz.context_html(c.before, c.token, c.after, c.activation))
    st.caption(f"Each line is what the model saw before the highlighted token (its context window), then a few "
               f"tokens after in grey; the number is the neuron's activation. ({elapsed:.2f} s)")


layer, neuron, top = pick_neuron()
left, right = st.columns([2, 3])
with left:
    st.plotly_chart(viz.neuron_bars(top, labels, chosen=neuron), theme=None, width="stretch", key=Neurons.BARS,
                    on_select=lambda: on_bar_click(top), selection_mode="points")
with right:
    top_contexts(layer, neuron)
