"""One attention head of the student's model, computed in front of them for one query token."""

import math

import pandas as pd
import streamlit as st
import torch

from gptviz import stepwise
from gptviz.viz import stepwise as viz
from ui import models, timeline
from ui.state import HeadSteps
from ui.common import capture, encode_prompt, intro, keep, prompt_input, student_errors
from ui.entry import require_app

require_app()
st.title("One head, step by step")
intro("Here one head of your model does its work for one token, with the model's own numbers: the query "
      "asks, every earlier token's key answers, the softmax turns the answers into weights, and the weights mix "
      "the values. Move the query through the prompt; click a step to highlight it.")
st.page_link("pages/averaging.py", label="First: the averaging trick this replaces", icon="⬅️")

entry = models.current()
if entry is None:
    st.stop()
entry = timeline.pick(entry, page="steps")
model, tok = entry.model, entry.tokenizer
cfg = model.config
if cfg.n_layer == 0:
    st.info("This model is a bigram model: it has no attention heads. Train one with attention (the *single "
            "head* preset or larger) on the **Train** page, or pick another model in the sidebar.", icon="👀")
    st.stop()

with student_errors():
    ids = encode_prompt(entry, prompt_input(entry, page="steps"))
labels = [tok.label(i) for i in ids]
T = len(ids)
_, cache = capture(entry, ids)


def choose() -> tuple[int, int, int, str]:
    c1, c2, c3 = st.columns([1, 1, 4])
    keep(HeadSteps.LAYER, lambda v: v in range(cfg.n_layer), 0)
    keep(HeadSteps.HEAD, lambda v: v in range(cfg.n_head), 0)
    layer = c1.selectbox("Layer", range(cfg.n_layer), format_func=lambda i: f"layer {i}", key=HeadSteps.LAYER)
    head = c2.selectbox("Head", range(cfg.n_head), format_func=lambda i: f"head {i}", key=HeadSteps.HEAD)
    keep(HeadSteps.QUERY, lambda v: v in range(T), T - 1)
    query = c3.select_slider("Query token (the one asking)", list(range(T)), key=HeadSteps.QUERY,
                             format_func=lambda i: f"{i}: {labels[i]}")
    keep(HeadSteps.FOCUS, lambda v: v in stepwise.STEPS, "softmax")
    focus = st.pills("Highlight a step", list(stepwise.STEPS), key=HeadSteps.FOCUS,
                     format_func=lambda s: f"{list(stepwise.STEPS).index(s) + 1}. {stepwise.STEPS[s][0]}")
    return layer, head, query, focus or ""


def step_box(names: list[str], focus: str, body):
    """Steps of the computation: their lines of code and their numbers; the highlighted one stands out."""
    order = list(stepwise.STEPS)
    numbers = [order.index(n) + 1 for n in names]
    span = f"{numbers[0]}" if len(numbers) == 1 else f"{numbers[0]}–{numbers[-1]}"
    chosen = focus in names
    with st.container(border=chosen, key=HeadSteps.box(names[0])):
        st.markdown(f"#### {'👉 ' if chosen else ''}{span}. {', '.join(stepwise.STEPS[n][0] for n in names)}")
        st.code("\n".join(stepwise.STEPS[n][1] for n in names), language="python")
        body()


def matches(value, hook: str, reference) -> str:
    """How far a shown number is from the model's own recorded activation."""
    diff = float((value - reference).abs().max())
    return f"equals the model's own `{hook}` (largest difference {diff:.1e})"


def chart(fig, key):
    st.plotly_chart(fig, theme=None, width="stretch", key=key)


layer, head, query, focus = choose()
s = stepwise.head_steps(model, cache, layer, head, query)
seen = labels[: s.visible]
row_names = [f"{i}:{label}" for i, label in enumerate(labels)]
C, hs = s.n_embd, s.head_size
shapes = s.shapes()
st.caption(f"Layer {layer}, head {head}; the query is token {query} ({labels[query]!r}), which may look at "
           f"tokens 0–{query}. n_embd = {C}, head_size = {hs}.")
hook = f"blocks.{layer}.attn"

def layernormed():
    chart(viz.vector_strip(s.x[: s.visible], seen, f"x: the LayerNorm'd residual stream, {s.visible} tokens"),
          HeadSteps.chart("input"))
    st.caption("LayerNorm gives every row mean 0 and spread 1 (then its learned scale and shift).")


def qkv():
    chart(viz.vector_strip(s.q[None], [labels[query]], f"q of token {query}: W_q {shapes['W_q']}"),
          HeadSteps.chart("q"))
    b, c = st.columns(2)
    with b:
        chart(viz.vector_strip(s.k[: s.visible], seen, f"k: W_k {shapes['W_k']}"), HeadSteps.chart("k"))
    with c:
        chart(viz.vector_strip(s.v[: s.visible], seen, f"v: W_v {shapes['W_v']}"), HeadSteps.chart("v"))
    st.caption(f"Three Linear layers map each {C}-number row to {hs} numbers; q "
               + matches(s.q, f"{hook}.q", cache[f"{hook}.q"][0, head, query]) + ".")


def scores_table():
    score_steps = ["dots", "scaled", "masked", "softmax"]
    frame = pd.DataFrame({"key token": row_names, **{stepwise.STEPS[n][0]: getattr(s, a).numpy() for n, a in
                          zip(score_steps, ["dots", "scaled", "masked", "pattern_row"])}})
    styled = frame.style.format(precision=4)
    if focus in score_steps:
        styled = styled.set_properties(subset=[stepwise.STEPS[focus][0]], **{"background-color": "#FBE3B3"})
    st.dataframe(styled, hide_index=True)
    st.caption(f"÷√{hs} = ÷{math.sqrt(hs):.2f} keeps the scores' spread near 1, so the softmax stays soft. "
               "Scores " + matches(s.masked[: s.visible], f"{hook}.scores", cache[f"{hook}.scores"][0, head, query,
                                   : s.visible]) + "; the softmax " + matches(s.pattern_row, f"{hook}.pattern",
                                   cache[f"{hook}.pattern"][0, head, query])
               + ": the row the Attention page draws.")


def weighted():
    chart(viz.vector_strip(s.z[None], [labels[query]], "out = Σ weight × v"), HeadSteps.chart("z"))
    st.caption("Each value row is multiplied by its weight from the softmax and the rows are added up; this "
               + matches(s.z, f"{hook}.z", cache[f"{hook}.z"][0, head, query]) + ".")


def concatenated():
    chart(viz.vector_strip(s.concat[None], [labels[query]], f"all {cfg.n_head} heads side by side (this head outlined)",
                           highlight_cols=(head * hs, (head + 1) * hs)), HeadSteps.chart("concat"))


def projected():
    chart(viz.vector_strip(s.attn_out[None], [labels[query]], f"proj {shapes['W_o']}"), HeadSteps.chart("proj"))
    st.caption("This " + matches(s.attn_out, f"{hook}.out", cache[f"{hook}.out"][0, query]) + ".")


def added():
    stream = torch.stack([s.resid_pre, s.attn_out, s.resid_mid])
    chart(viz.vector_strip(stream, ["stream before", "+ attention", "= stream after"],
                           f"the residual stream at token {query}"), HeadSteps.chart("residual"))
    st.caption("The block's MLP reads the stream after; it " + matches(
        s.resid_mid, f"blocks.{layer}.resid_mid", cache[f"blocks.{layer}.resid_mid"][0, query]) + ".")


for names, body in [(["input"], layernormed), (["qkv"], qkv), (["dots", "scaled", "masked", "softmax"], scores_table),
                    (["weighted"], weighted), (["concat"], concatenated), (["proj"], projected),
                    (["residual"], added)]:
    step_box(names, focus, body)
