"""Two models side by side on one prompt: loss curves, every attention head, the next token."""

import streamlit as st

from gptviz import analysis, viz
from gptviz.errors import GptvizError
from gptviz.generate import next_token_probs
from ui import models, timeline
from ui.common import capture, encode_prompt, intro, prompt_input, student_errors
from ui.compare import loss_curves, shown_steps, start_step
from ui.entry import require_app
from ui.models import ModelEntry
from ui.state import Compare


def header():
    st.title("Compare two models")
    intro("Put two models side by side on the same prompt: their loss curves, every attention head, and what "
          "each would write next. Try the bigram against the GPT from the ladder, one model with and without "
          "LayerNorm — or one model against itself earlier in its training.")


def pick_models(options: dict, columns) -> tuple[list[ModelEntry], bool]:
    """Models A and B, and whether they are one model (stops with a hint when there is nothing to compare)."""
    keys = list(options)
    left = columns[0].selectbox("Model A", keys, format_func=options.get, key=Compare.A, persist_state="session")
    right = columns[1].selectbox("Model B", keys, index=min(1, len(keys) - 1), format_func=options.get,
                                 key=Compare.B, persist_state="session")
    with student_errors():
        chosen = [models.entry(left), models.entry(right)]
    same = left == right
    if same and len(timeline.steps(chosen[0])) < 2:
        st.info("Both sides show the same model, and it kept no training snapshots to compare it with. "
                + ("Pick another model above." if len(keys) > 1 else
                   "There is only one model so far: train another on the **Train** page (or run the ladder)."))
        st.stop()
    return chosen, same


def pick_steps(chosen: list[ModelEntry], same: bool, columns) -> list[ModelEntry]:
    """Each side may look at its model earlier in its training."""
    pair = []
    for column, entry, side in zip(columns, chosen, "ab"):
        with column:
            pair.append(timeline.pick(entry, page=f"compare_{side}", start=start_step(entry, same, side),
                                      label=f"Model {side.upper()}: training step"))
    return pair


def curves_chart(chosen: list[ModelEntry], pair: list[ModelEntry], same: bool):
    curves = loss_curves(chosen[:2 - same])
    if any(c["val_loss"] for c in curves):
        st.plotly_chart(viz.loss_chart(curves, chosen[0].tokenizer.vocab_size, best_val_marker=True,
                                       title="Loss curves", step_marks=shown_steps(pair)), theme=None,
                        key=Compare.LOSS)


def side_view(entry: ModelEntry, side: str, text: str, temperature: float):
    """One model on the prompt: its heads and its next token (each side may fail on its own)."""
    st.markdown(f"**{entry.label}**")
    try:
        ids = encode_prompt(entry, text)
    except GptvizError as e:  # a char model and a character it never saw
        st.error(str(e), icon="⚠️")
        return
    logits, cache = capture(entry, ids)
    labels = [entry.tokenizer.label(i) for i in ids]
    if entry.model.config.n_layer:
        st.plotly_chart(viz.attention_grid(analysis.attention_for(cache, entry.model.config.n_layer), labels),
                        theme=None, key=Compare.grid(side))
    else:
        st.caption("A bigram model has no attention heads.")
    probs = next_token_probs(logits[0, -1], temperature)
    st.plotly_chart(viz.next_token_bars(probs, entry.tokenizer.label, k=15), theme=None, key=Compare.bars(side))


def main():
    require_app()
    header()
    options = models.choices()
    if not options:
        st.info("There is no model yet: train one on the **Train** page.")
        return
    top = st.columns(2)
    chosen, same = pick_models(options, top)
    pair = pick_steps(chosen, same, top)
    curves_chart(chosen, pair, same)
    text = prompt_input(pair[0], page="compare")
    temperature = st.slider("temperature", 0.0, 2.0, 1.0, 0.05, key=Compare.TEMPERATURE, persist_state="session")
    for column, entry, side in zip(st.columns(2), pair, "ab"):
        with column:
            side_view(entry, side, text, temperature)


main()
