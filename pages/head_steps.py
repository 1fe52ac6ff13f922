"""One attention head of the student's model, computed in front of them for one query token."""

import math

import pandas as pd
import streamlit as st
import torch

from gptviz import stepwise
from gptviz.viz import stepwise as viz
from ui.common import capture, inspected, intro, prompt_ids
from ui.entry import require_app
from ui.head_steps import View, chart, keep_choices, matches, step_title
from ui.state import HeadSteps


def header():
    st.title("One head, step by step")
    intro("Here one head of your model does its work for one token, with the model's own numbers: the query "
          "asks, every earlier token's key answers, the softmax turns the answers into weights, and the weights "
          "mix the values. Move the query through the prompt; click a step to highlight it.")
    st.page_link("pages/averaging.py", label="First: the averaging trick this replaces", icon="⬅️")


def has_attention(n_layer: int) -> bool:
    if n_layer == 0:
        st.info("This model is a bigram model: it has no attention heads. Train one with attention (the *single "
                "head* preset or larger) on the **Train** page, or pick another model in the sidebar.", icon="👀")
    return n_layer > 0


def choose(n_layer: int, n_head: int, labels: list[str]) -> tuple[int, int, int, str]:
    """The layer, head and query token, and the step to highlight."""
    keep_choices(n_layer, n_head, len(labels))
    c1, c2, c3 = st.columns([1, 1, 4])
    layer = c1.selectbox("Layer", range(n_layer), format_func=lambda i: f"layer {i}", key=HeadSteps.LAYER)
    head = c2.selectbox("Head", range(n_head), format_func=lambda i: f"head {i}", key=HeadSteps.HEAD)
    query = c3.select_slider("Query token (the one asking)", list(range(len(labels))), key=HeadSteps.QUERY,
                             format_func=lambda i: f"{i}: {labels[i]}")
    focus = st.pills("Highlight a step", list(stepwise.STEPS), key=HeadSteps.FOCUS,
                     format_func=lambda s: f"{list(stepwise.STEPS).index(s) + 1}. {stepwise.STEPS[s][0]}")
    return layer, head, query, focus or ""


def step_box(names: list[str], view: View, body):
    """Steps of the computation: their lines of code and their numbers; the highlighted one stands out."""
    with st.container(border=view.focus in names, key=HeadSteps.box(names[0])):
        st.markdown(step_title(names, view.focus))
        st.code("\n".join(stepwise.STEPS[n][1] for n in names), language="python")
        body(view)


def layernormed(v: View):
    s = v.steps
    chart(viz.vector_strip(s.x[: s.visible], v.seen, f"x: the LayerNorm'd residual stream, {s.visible} tokens"),
          HeadSteps.chart("input"))
    st.caption("LayerNorm gives every row mean 0 and spread 1 (then its learned scale and shift).")


def qkv(v: View):
    s, shapes, token = v.steps, v.steps.shapes(), v.labels[v.query]
    chart(viz.vector_strip(s.q[None], [token], f"q of token {v.query}: W_q {shapes['W_q']}"), HeadSteps.chart("q"))
    b, c = st.columns(2)
    with b:
        chart(viz.vector_strip(s.k[: s.visible], v.seen, f"k: W_k {shapes['W_k']}"), HeadSteps.chart("k"))
    with c:
        chart(viz.vector_strip(s.v[: s.visible], v.seen, f"v: W_v {shapes['W_v']}"), HeadSteps.chart("v"))
    st.caption(f"Three Linear layers map each {s.n_embd}-number row to {s.head_size} numbers; q "
               + matches(s.q, f"{v.hook}.q", v.cache[f"{v.hook}.q"][0, v.head, v.query]) + ".")


def scores_table(v: View):
    s, hook = v.steps, v.hook
    score_steps = ["dots", "scaled", "masked", "softmax"]
    rows = [f"{i}:{label}" for i, label in enumerate(v.labels)]
    frame = pd.DataFrame({"key token": rows, **{stepwise.STEPS[n][0]: getattr(s, a).numpy() for n, a in
                          zip(score_steps, ["dots", "scaled", "masked", "pattern_row"])}})
    styled = frame.style.format(precision=4)
    if v.focus in score_steps:
        styled = styled.set_properties(subset=[stepwise.STEPS[v.focus][0]], **{"background-color": "#FBE3B3"})
    st.dataframe(styled, hide_index=True)
    scores = v.cache[f"{hook}.scores"][0, v.head, v.query, : s.visible]
    st.caption(f"÷√{s.head_size} = ÷{math.sqrt(s.head_size):.2f} keeps the scores' spread near 1, so the softmax "
               "stays soft. Scores " + matches(s.masked[: s.visible], f"{hook}.scores", scores) + "; the softmax "
               + matches(s.pattern_row, f"{hook}.pattern", v.cache[f"{hook}.pattern"][0, v.head, v.query])
               + ": the row the Attention page draws.")


def weighted(v: View):
    s = v.steps
    chart(viz.vector_strip(s.z[None], [v.labels[v.query]], "out = Σ weight × v"), HeadSteps.chart("z"))
    st.caption("Each value row is multiplied by its weight from the softmax and the rows are added up; this "
               + matches(s.z, f"{v.hook}.z", v.cache[f"{v.hook}.z"][0, v.head, v.query]) + ".")


def concatenated(v: View):
    hs = v.steps.head_size
    chart(viz.vector_strip(v.steps.concat[None], [v.labels[v.query]],
                           f"all {v.n_head} heads side by side (this head outlined)",
                           highlight_cols=(v.head * hs, (v.head + 1) * hs)), HeadSteps.chart("concat"))


def projected(v: View):
    s = v.steps
    chart(viz.vector_strip(s.attn_out[None], [v.labels[v.query]], f"proj {s.shapes()['W_o']}"),
          HeadSteps.chart("proj"))
    st.caption("This " + matches(s.attn_out, f"{v.hook}.out", v.cache[f"{v.hook}.out"][0, v.query]) + ".")


def added(v: View):
    s, name = v.steps, f"blocks.{v.layer}.resid_mid"
    stream = torch.stack([s.resid_pre, s.attn_out, s.resid_mid])
    chart(viz.vector_strip(stream, ["stream before", "+ attention", "= stream after"],
                           f"the residual stream at token {v.query}"), HeadSteps.chart("residual"))
    st.caption("The block's MLP reads the stream after; it "
               + matches(s.resid_mid, name, v.cache[name][0, v.query]) + ".")


STEP_BOXES = [(["input"], layernormed), (["qkv"], qkv), (["dots", "scaled", "masked", "softmax"], scores_table),
              (["weighted"], weighted), (["concat"], concatenated), (["proj"], projected), (["residual"], added)]


def main():
    require_app()
    header()
    entry = inspected("steps")
    cfg = entry.model.config
    if not has_attention(cfg.n_layer):
        return
    ids = prompt_ids(entry, page="steps")
    labels = [entry.tokenizer.label(i) for i in ids]
    _, cache = capture(entry, ids)
    layer, head, query, focus = choose(cfg.n_layer, cfg.n_head, labels)
    steps = stepwise.head_steps(entry.model, cache, layer, head, query)
    st.caption(f"Layer {layer}, head {head}; the query is token {query} ({labels[query]!r}), which may look at "
               f"tokens 0–{query}. n_embd = {steps.n_embd}, head_size = {steps.head_size}.")
    view = View(steps, cache, labels, layer, head, query, focus, cfg.n_head)
    for names, body in STEP_BOXES:
        step_box(names, view, body)


main()
