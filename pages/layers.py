"""Inside the layers: the logit lens, the size of the residual stream, and what silencing heads does."""

import re

import streamlit as st
import torch
from torch.nn import functional as F

from gptviz import analysis, viz
from ui import models, timeline
from ui.common import capture, encode_prompt, intro, prompt_input, student_errors
from ui.entry import require_app

require_app()
st.title("Inside the layers")
intro(
    "Each block adds its contribution to one running vector per token, the residual stream; the final "
    "LayerNorm and unembedding turn it into next-token scores. The logit lens applies that last step after "
    "every block, so you see the guess form layer by layer. Pick a position, watch the answer climb to #1, "
    "then silence attention heads and see how much the prediction and the loss change."
)

LENS_K = 5  # guesses per layer in the logit lens
N_BARS = 10  # bars in the before / after ablation charts
LENS_FOR = "layers_position_for"  # the prompt length the position slider was last drawn for

entry = models.current()
if entry is None:
    st.stop()
entry = timeline.pick(entry, page="layers")
# Every view below reads this one model (a training-step slider would swap `entry` here).
model, tok = entry.model, entry.tokenizer
n_layer, n_head = model.config.n_layer, model.config.n_head

prompt = prompt_input(entry, page="layers")
replace = False
if tok.kind == "char":
    replace = st.checkbox("Replace characters the model never saw", key="layers_replace", persist_state="session",
                          help=f"Unknown characters become {tok.replacement!r} instead of stopping here.")
with student_errors():
    ids = encode_prompt(entry, prompt, replace_unknown=replace)
T = len(ids)
labels = [tok.label(i) for i in ids]
_, cache = capture(entry, ids)

# --- the logit lens ----------------------------------------------------------------------------------
st.subheader("Logit lens: the guess after each block")
if st.session_state.get(LENS_FOR) != T or st.session_state.get("layers_position") not in range(T):
    st.session_state["layers_position"] = T - 1  # a new prompt length: back to the last position
st.session_state[LENS_FOR] = T
position = st.select_slider("Position", options=list(range(T)), key="layers_position", persist_state="session",
                            format_func=lambda i: f"{i}: {labels[i]}",
                            help="The lens shows what the model predicts right after this token.")
table = analysis.logit_lens_table(model, cache, tok, position=position, k=LENS_K)
st.plotly_chart(viz.logit_lens_chart(table), theme=None, width="stretch", key="layers_lens")



def md(text: str) -> str:
    """A token label inside Markdown: '*', '_', '$' and friends shown as typed."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|$<>~])", r"\\\1", text)


answer = f"'{md(table['answer_label'])}'"
first = table["first_layer_top1"]
row = table["layers"][first] if first is not None else None
if first is None:
    sentence = f"The final answer {answer} never ranks #1 before the end."
elif first == 0:
    sentence = (f"The final answer **{answer}** is already #1 at **{row}**, before any block: "
                "the current token alone suggests it, like a bigram model.")
elif first == n_layer:
    sentence = f"The final answer **{answer}** becomes #1 only after **{row}**, the last block."
else:
    later = n_layer - first
    sentence = (f"The final answer **{answer}** is already #1 after **{row}**; the {later} "
                f"block{'s' if later > 1 else ''} after it only make it surer "
                f"({table['answer_prob'][first]:.0%} → {table['answer_prob'][-1]:.0%}).")
st.markdown(sentence)
if position < T - 1:
    st.caption(f"Reading '{md(labels[position])}' at position {position}; the prompt actually continues with "
               f"'{md(labels[position + 1])}'.")

# --- the size of the residual stream ---------------------------------------------------------------
st.subheader("How big the residual stream gets")
st.caption("The length (L2 norm) of each token's vector after each block: blocks add to it rather than replace it, "
           "so it usually grows with depth.")
norms = analysis.residual_norms(cache, n_layer)
st.plotly_chart(viz.residual_norm_heatmap(norms, labels, analysis.layer_names(n_layer)), theme=None,
                width="stretch", key="layers_norms")

# --- ablation ---------------------------------------------------------------------------------------------
st.subheader("Silence attention heads")


def head_name(head: tuple[int, int]) -> str:
    return f"L{head[0]} H{head[1]}"


@torch.no_grad()
def ablation_effect(heads: list[tuple[int, int]]) -> dict:
    """Like analysis.head_ablation_effect, for several heads at once; the loss is on the prompt itself.

    Plain forward passes, not `capture`: its memo must only ever hold clean runs.
    """
    idx = torch.tensor([ids])
    targets = torch.tensor([ids[1:] + [-100]]) if T > 1 else None  # -100: the last token has no target
    was_training = model.training
    model.eval()
    try:
        logits, loss = model(idx, targets)
        with model.ablate_heads(heads):
            logits_ab, loss_ab = model(idx, targets)
    finally:
        model.train(was_training)
    logp = F.log_softmax(logits[0, -1].float(), dim=-1)
    logq = F.log_softmax(logits_ab[0, -1].float(), dim=-1)
    kl = F.kl_div(logq, logp, log_target=True, reduction="sum")
    return {"probs_before": logp.exp(), "probs_after": logq.exp(), "kl": max(float(kl), 0.0),
            "loss_before": None if loss is None else float(loss),
            "loss_after": None if loss_ab is None else float(loss_ab)}


def ablation_view():
    st.caption("The bars are the prediction after the whole prompt; the loss averages over every position of it. "
               "A head can matter for this one prediction and little for the whole prompt, or the other way round.")
    all_heads = [(layer, head) for layer in range(n_layer) for head in range(n_head)]
    options = [head_name(h) for h in all_heads]
    remembered = st.session_state.get("layers_ablate") or []
    if any(name not in options for name in remembered):  # heads of a bigger model picked earlier
        st.session_state["layers_ablate"] = [name for name in remembered if name in options]
    chosen = st.multiselect(
        "Heads to silence", options, key="layers_ablate", persist_state="session", placeholder="No ablation",
        help="L1 H2 is head 2 of block 1 (counting from 0, like the rows of the lens). A silenced head's output "
             "is set to zero, so it adds nothing to the residual stream.",
    )
    if not chosen:
        logits, _ = capture(entry, ids)
        st.plotly_chart(viz.next_token_bars(F.softmax(logits[0, -1].float(), dim=-1), tok.label, k=N_BARS,
                                            title="Next token with all heads"),
                        theme=None, width="stretch", key="layers_bars_before")
        st.caption("Pick one or more heads above to see what the prediction looks like without them.")
        return

    effect = ablation_effect([all_heads[options.index(name)] for name in chosen])
    k1, k2, k3 = st.columns(3)
    kl = effect["kl"]
    k1.metric("KL(before ‖ after)", f"{kl:.4f} nats" if kl >= 1e-3 or kl == 0 else f"{kl:.1e} nats",
              help="How far the next-token distribution moved: 0 means the heads changed nothing here.")
    if effect["loss_before"] is not None:
        k2.metric("Loss on the prompt, all heads", f"{effect['loss_before']:.3f}")
        k3.metric("Loss on the prompt, heads silenced", f"{effect['loss_after']:.3f}",
                  f"{effect['loss_after'] - effect['loss_before']:+.3f}", delta_color="inverse",
                  help="Cross-entropy of predicting each prompt token from the ones before it (lower is better).")
    else:
        k2.caption("The loss on the prompt needs at least two tokens.")
    b1, b2 = st.columns(2)
    with b1:
        st.plotly_chart(viz.next_token_bars(effect["probs_before"], tok.label, k=N_BARS, title="All heads"),
                        theme=None, width="stretch", key="layers_bars_before")
    with b2:
        st.plotly_chart(viz.next_token_bars(effect["probs_after"], tok.label, k=N_BARS,
                                            title="Without " + ", ".join(chosen)),
                        theme=None, width="stretch", key="layers_bars_after")


if n_layer == 0:
    st.info("This is a bigram model: it has no attention heads to silence. Each prediction comes from a lookup "
            "table of the current token alone, so the lens and the norms above have a single row.")
else:
    ablation_view()
