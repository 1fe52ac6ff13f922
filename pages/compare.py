import streamlit as st

from gptviz import analysis, viz
from gptviz.errors import GptvizError
from gptviz.generate import next_token_probs
from ui import models, timeline
from ui.common import capture, encode_prompt, intro, prompt_input, student_errors
from ui.entry import require_app
from ui.state import Compare

require_app()
st.title("Compare two models")
intro("Put two models side by side on the same prompt: their loss curves, every attention head, and what "
      "each would write next. Try the bigram against the GPT from the ladder, one model with and without "
      "LayerNorm — or one model against itself earlier in its training.")

options = models.choices()
if not options:
    st.info("There is no model yet: train one on the **Train** page.")
    st.stop()
keys = list(options)
top = st.columns(2)
left_key = top[0].selectbox("Model A", keys, format_func=options.get, key=Compare.A, persist_state="session")
right_key = top[1].selectbox("Model B", keys, index=min(1, len(keys) - 1), format_func=options.get, key=Compare.B,
                             persist_state="session")
with student_errors():
    chosen = [models.entry(left_key), models.entry(right_key)]
same = left_key == right_key
if same and len(timeline.steps(chosen[0])) < 2:
    st.info("Both sides show the same model, and it kept no training snapshots to compare it with. "
            + ("Pick another model above." if len(keys) > 1 else
               "There is only one model so far: train another on the **Train** page (or run the ladder)."))
    st.stop()

pair = []
for column, entry, side in zip(top, chosen, "ab"):
    with column:  # each side may look at its model earlier in training; B starts halfway when both are one
        steps = timeline.steps(entry)
        start = steps[(len(steps) - 1) // 2] if same and side == "b" else None
        pair.append(timeline.pick(entry, page=f"compare_{side}", start=start,
                                  label=f"Model {side.upper()}: training step"))

curves = [{"name": e.label, **{k: e.meta.get("history", {}).get(k, []) for k in
                               ("step", "train_loss", "eval_step", "val_loss")}} for e in chosen[:2 - same]]
shown = {side.upper(): timeline.final_step(e) if e.step is None else e.step
         for side, e in zip("ab", pair)}  # the step each side shows, marked on the curves
if any(c["val_loss"] for c in curves):
    st.plotly_chart(viz.loss_chart(curves, chosen[0].tokenizer.vocab_size, best_val_marker=True,
                                   title="Loss curves", step_marks=shown), theme=None, key=Compare.LOSS)

text = prompt_input(pair[0], page="compare")
temperature = st.slider("temperature", 0.0, 2.0, 1.0, 0.05, key=Compare.TEMPERATURE, persist_state="session")
for column, entry, side in zip(st.columns(2), pair, "ab"):
    with column:
        st.markdown(f"**{entry.label}**")
        try:
            ids = encode_prompt(entry, text)
        except GptvizError as e:  # each side may fail on its own (a char model and an unseen character)
            st.error(str(e), icon="⚠️")
            continue
        logits, cache = capture(entry, ids)
        labels = [entry.tokenizer.label(i) for i in ids]
        if entry.model.config.n_layer:
            st.plotly_chart(viz.attention_grid(analysis.attention_for(cache, entry.model.config.n_layer), labels),
                            theme=None, key=Compare.grid(side))
        else:
            st.caption("A bigram model has no attention heads.")
        probs = next_token_probs(logits[0, -1], temperature)
        st.plotly_chart(viz.next_token_bars(probs, entry.tokenizer.label, k=15), theme=None,
                        key=Compare.bars(side))
