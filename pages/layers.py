"""Inside the layers: the logit lens, the size of the residual stream, and what silencing heads does."""

import streamlit as st
import torch
from torch.nn import functional as F

from gptviz import analysis, viz
from ui.common import capture, inspected, intro, prompt_ids
from ui.entry import require_app
from ui.layers import head_name, keep_known_heads, lens_sentence, md, position_for
from ui.state import Layers

LENS_K = 5  # guesses per layer in the logit lens
N_BARS = 10  # bars in the before / after ablation charts


def header():
    st.title("Inside the layers")
    intro(
        "Each block adds its contribution to one running vector per token, the residual stream; the final "
        "LayerNorm and unembedding turn it into next-token scores. The logit lens applies that last step after "
        "every block, so you see the guess form layer by layer. Pick a position, watch the answer climb to #1, "
        "then silence attention heads and see how much the prediction and the loss change."
    )


def logit_lens(entry, cache, labels):
    st.subheader("Logit lens: the guess after each block")
    T = len(labels)
    position_for(T)
    position = st.select_slider("Position", options=list(range(T)), key=Layers.POSITION, persist_state="session",
                                format_func=lambda i: f"{i}: {labels[i]}",
                                help="The lens shows what the model predicts right after this token.")
    table = analysis.logit_lens_table(entry.model, cache, entry.tokenizer, position=position, k=LENS_K)
    st.plotly_chart(viz.logit_lens_chart(table), theme=None, width="stretch", key=Layers.LENS)
    st.markdown(lens_sentence(table, entry.model.config.n_layer))
    if position < T - 1:
        st.caption(f"Reading '{md(labels[position])}' at position {position}; the prompt actually continues with "
                   f"'{md(labels[position + 1])}'.")


def residual_sizes(cache, labels, n_layer):
    st.subheader("How big the residual stream gets")
    st.caption("The length (L2 norm) of each token's vector after each block: blocks add to it rather than replace "
               "it, so it usually grows with depth.")
    norms = analysis.residual_norms(cache, n_layer)
    st.plotly_chart(viz.residual_norm_heatmap(norms, labels, analysis.layer_names(n_layer)), theme=None,
                    width="stretch", key=Layers.NORMS)


def ablation(entry, ids):
    st.subheader("Silence attention heads")
    model, tok = entry.model, entry.tokenizer
    n_layer, n_head = model.config.n_layer, model.config.n_head
    if n_layer == 0:
        st.info("This is a bigram model: it has no attention heads to silence. Each prediction comes from a lookup "
                "table of the current token alone, so the lens and the norms above have a single row.")
        return
    st.caption("The bars are the prediction after the whole prompt; the loss averages over every position of it. "
               "A head can matter for this one prediction and little for the whole prompt, or the other way round.")
    all_heads = [(layer, head) for layer in range(n_layer) for head in range(n_head)]
    options = [head_name(h) for h in all_heads]
    keep_known_heads(options)
    chosen = st.multiselect(
        "Heads to silence", options, key=Layers.ABLATE, persist_state="session", placeholder="No ablation",
        help="L1 H2 is head 2 of block 1 (counting from 0, like the rows of the lens). A silenced head's output "
             "is set to zero, so it adds nothing to the residual stream.",
    )
    if not chosen:
        logits, _ = capture(entry, ids)
        st.plotly_chart(viz.next_token_bars(F.softmax(logits[0, -1].float(), dim=-1), tok.label, k=N_BARS,
                                            title="Next token with all heads"),
                        theme=None, width="stretch", key=Layers.BARS_BEFORE)
        st.caption("Pick one or more heads above to see what the prediction looks like without them.")
        return

    # plain forward passes, not `capture`: its memo must only ever hold clean runs
    heads = [all_heads[options.index(name)] for name in chosen]
    effect = analysis.ablation_effect(model, torch.tensor([ids]), heads, targets=analysis.prompt_targets(ids))
    ablation_metrics(effect)
    b1, b2 = st.columns(2)
    with b1:
        st.plotly_chart(viz.next_token_bars(effect["probs_before"], tok.label, k=N_BARS, title="All heads"),
                        theme=None, width="stretch", key=Layers.BARS_BEFORE)
    with b2:
        st.plotly_chart(viz.next_token_bars(effect["probs_after"], tok.label, k=N_BARS,
                                            title="Without " + ", ".join(chosen)),
                        theme=None, width="stretch", key=Layers.BARS_AFTER)


def ablation_metrics(effect):
    k1, k2, k3 = st.columns(3)
    kl = effect["kl"]
    k1.metric("KL(before ‖ after)", f"{kl:.4f} nats" if kl >= 1e-3 or kl == 0 else f"{kl:.1e} nats",
              help="How far the next-token distribution moved: 0 means the heads changed nothing here.")
    if effect["loss_before"] is None:
        k2.caption("The loss on the prompt needs at least two tokens.")
        return
    k2.metric("Loss on the prompt, all heads", f"{effect['loss_before']:.3f}")
    k3.metric("Loss on the prompt, heads silenced", f"{effect['loss_after']:.3f}",
              f"{effect['loss_after'] - effect['loss_before']:+.3f}", delta_color="inverse",
              help="Cross-entropy of predicting each prompt token from the ones before it (lower is better).")


def main():
    require_app()
    header()
    entry = inspected("layers")  # the one place the model is chosen: every view below reads it
    ids = prompt_ids(entry, page="layers")
    labels = [entry.tokenizer.label(i) for i in ids]
    _, cache = capture(entry, ids)
    logit_lens(entry, cache, labels)
    residual_sizes(cache, labels, entry.model.config.n_layer)
    ablation(entry, ids)


main()
