import streamlit as st

from gptviz import analysis, budget, viz
from gptviz.checkpoints import free_name, to_bytes
from gptviz.model import PRESET_TITLES, PRESETS
from ui import data, models, state, training
from ui.common import intro, student_errors
from ui.entry import require_app
from ui.state import Train
from ui.training import key

require_app()
st.title("Train")
intro("Choose a step of the lecture's ladder, move the sliders, press **Train** and watch the loss fall. "
      "The dashed line is a random guess: a model that learned nothing scores ln(vocabulary size). "
      f"Everything you train stays with this browser tab, a reload included, for {state.tabs().ttl / 3600:g} "
      "hours (save or download a model you want to keep); open it on the inspection pages.")


def duration(seconds: float) -> str:
    return f"~{seconds:.0f} s" if seconds < 120 else f"~{seconds / 60:.1f} min"


training.init_defaults()
with student_errors():
    chosen = data.chosen_data()
if chosen is None:
    st.warning("Choose a text on the **Data & tokens** page first (or upload one).")
    st.stop()
corpus, token_data = chosen
vocab = token_data.tokenizer.vocab_size
st.caption(f"Text: **{corpus}** · {data.TOKENIZER_LABELS[token_data.tokenizer.kind]} · vocabulary {vocab:,} · "
           f"{token_data.num_tokens:,} tokens (change them on the Data & tokens page)")

st.selectbox("Preset (the lecture's ladder)", list(PRESETS), format_func=PRESET_TITLES.get, key=key("preset"),
             on_change=training.apply_preset, persist_state="session")

model_col, train_col = st.columns(2)
with model_col:
    st.markdown("**Model**")
    st.slider("n_layer (blocks)", 0, 8, key=key("n_layer"), persist_state="session", bind="query-params",
              help="0 gives a bigram model: no attention at all.")
    st.select_slider("n_embd (embedding width)", [16, 32, 48, 64, 96, 128, 192, 256], key=key("n_embd"),
                     persist_state="session", bind="query-params")
    heads = training.head_choices(st.session_state[key("n_embd")])
    if st.session_state[key("n_head")] not in heads:  # keep n_head valid when n_embd changes
        st.session_state[key("n_head")] = max(h for h in heads if h <= max(st.session_state[key("n_head")], 1))
    st.select_slider("n_head (heads per block)", heads, key=key("n_head"), persist_state="session",
                     bind="query-params", help="Only values that divide n_embd: each head gets n_embd / n_head dimensions.")
    st.select_slider("block_size (context length)", [8, 16, 32, 64, 128, 256], key=key("block_size"),
                     persist_state="session", bind="query-params")
    st.slider("dropout", 0.0, 0.5, step=0.05, key=key("dropout"), persist_state="session", bind="query-params")
    with st.expander("Switch parts of the model on and off"):
        st.toggle("position embeddings", key=key("pos_embd"), persist_state="session", bind="query-params")
        st.toggle("MLP after attention", key=key("mlp"), persist_state="session", bind="query-params")
        st.toggle("residual connections", key=key("residual"), persist_state="session", bind="query-params")
        st.toggle("LayerNorm", key=key("layernorm"), persist_state="session", bind="query-params")
with train_col:
    st.markdown("**Training**")
    st.select_slider("batch_size", [4, 8, 12, 16, 24, 32, 48, 64], key=key("batch_size"), persist_state="session", bind="query-params")
    st.select_slider("learning_rate (peak)", training.LEARNING_RATES,
                     key=key("learning_rate"), format_func=lambda v: f"{v:g}", persist_state="session", bind="query-params",
                     help="Warm-up, then cosine decay to a tenth of it. Too high and the loss explodes.")
    st.slider("iterations", 20, 5000, step=20, key=key("max_iters"), persist_state="session", bind="query-params")
    st.slider("eval_interval", 10, 500, step=10, key=key("eval_interval"), persist_state="session", bind="query-params",
              help="How often to measure the loss on held-out text (and print a sample).")
    st.number_input("seed", 0, 2**31 - 1, key=key("seed"), persist_state="session", bind="query-params",
                    help="The same seed gives the same initial weights and batches: runs you can compare.")

with student_errors():
    config = training.model_config(vocab)
    cfg = training.train_config()
est = budget.estimate(config, cfg, training.peak_flops())
a, b, c = st.columns(3)
a.metric("Parameters", f"{est.params:,}")
b.metric("Estimated time", duration(est.seconds),
         help=f"For a server as busy as a classroom's (a quiet one is faster); {duration(est.eval_seconds)} of it "
              "measures the loss on held-out text and writes a sample (fewer evaluations: a larger eval_interval).")
c.metric("Memory", f"~{est.memory_mb:,.0f} MB")

batch = training.latest_batch()
run = batch[-1] if batch else None  # the run Save and Download act on
active = any(not r.trainer.done for r in batch)
buttons = st.columns([1, 1, 1, 2, 2])
buttons[0].button("Train", type="primary", on_click=training.start, disabled=active, key=Train.START)
if active:
    paused = all(r.trainer.status == "paused" for r in batch if not r.trainer.done)
    buttons[1].button("Resume" if paused else "Pause", key=Train.PAUSE, args=(batch,),
                      on_click=training.resume if paused else training.pause)
    buttons[2].button("Stop", key=Train.STOP, on_click=training.stop, args=(batch,))
buttons[4].button("Run the whole ladder", key=Train.LADDER, on_click=training.start_ladder, disabled=active,
                  help="Bigram → single head → multi-head → blocks → GPT on this text, each with these training "
                       "settings: the lecture's results table, live.")
if st.session_state.get(Train.ERROR):
    st.error(st.session_state[Train.ERROR], icon="⚠️")
st.caption("🔗 The address bar holds these settings: share the link and everyone opens this configuration.")


def run_curves(r: state.Run) -> dict:
    h = r.trainer.history
    return {"name": r.name, "step": h["step"], "train_loss": h["train_loss"], "eval_step": h["eval_step"],
            "val_loss": h["val_loss"]}


def progress(r: state.Run):
    t = r.trainer
    if t.status == "queued":
        ahead = training.job_queue().position(t)
        if ahead is None:  # just taken out of the line
            st.info(f"{r.name}: starting…")
        else:
            n = training.job_queue().max_running
            st.info(f"{r.name}: queued, {ahead} ahead — the server trains {n} model{'s' * (n > 1)} at a time; "
                    "yours starts when one finishes.")
        return
    eta = f" · ETA {t.eta_s:.0f} s" if t.eta_s and not t.done else ""
    st.progress(min(t.step / t.cfg.max_iters, 1.0), text=f"{r.name} — {t.status} · step {t.step}/"
                f"{t.cfg.max_iters} · {t.tokens_per_sec:,.0f} tokens/s{eta}")
    if getattr(t, "students", 1) > 1:  # identical requests share one training (gptviz/shared.py)
        st.caption(f"🤝 Trained once for {t.students} students: everyone who asked for exactly these settings "
                   "watches the same training.")


@st.fragment(run_every=1.0 if active else None)
def live_view():
    """Redrawn every second while training; moving other widgets does not touch the runs."""
    if not batch:
        return
    for r in batch:
        progress(r)
    st.plotly_chart(viz.loss_chart([run_curves(r) for r in batch], run.tokenizer.vocab_size, best_val_marker=True),
                    theme=None, key=Train.LIVE_CHART)
    t = run.trainer
    for hint in analysis.loss_hints(t.history, run.tokenizer.vocab_size, t.cfg.warmup_iters):
        st.info(hint, icon="💡")
    if t.history["samples"]:
        st.markdown(f"**{run.name}: sample at step {t.history['eval_step'][-1]}**")
        st.code(t.history["samples"][-1], language=None)
    if all(r.trainer.done for r in batch):
        for r in batch:
            (st.error if r.trainer.status in ("diverged", "error") else st.success)(f"{r.name}: {r.trainer.message}")
        if active:  # it ended since the page was drawn: a full rerun switches polling off
            st.rerun()


live_view()

# outside the fragment: a click must redraw the whole page, which then shows the new run
if run is not None and not active and run.trainer.status == "diverged" and len(batch) == 1:
    lower = training.lower_rate(run.trainer.cfg.learning_rate)
    if lower:
        st.button(f"Train again at learning rate {lower:g}", key=Train.RETRY, icon="🔁",
                  on_click=training.retry_lower, args=(lower,))

if run is not None and not active and run.trainer.status != "error":
    st.session_state.setdefault(Train.SAVE_NAME, free_name(f"{run.preset}-{corpus.split('.')[0]}",
                                                             models.checkpoint_dir()))
    name_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
    name_col.text_input(f"Save {run.name} as", key=Train.SAVE_NAME,
                        help="Letters, digits, '-', '_' and '.'; saved in the checkpoints/ folder.")
    button_col.button("Save checkpoint", key=Train.SAVE, on_click=training.save, args=(run,))
    t = run.trainer
    st.download_button("Download this model (.safetensors)", key=Train.DOWNLOAD, file_name=f"{run.preset}.safetensors",
                       data=lambda: to_bytes(t.model, run.tokenizer, training.run_meta(run), t.snapshots),
                       help="One file: weights, settings, tokenizer, loss history and timeline snapshots. "
                            "Open it with the sidebar's uploader or `python -m gptviz sample --checkpoint FILE`.")
    saved = st.session_state.get(Train.SAVED)
    if saved:
        (st.success if saved[0] == "ok" else st.error)(saved[1])

finished_runs = [r for r in state.runs().values() if r.trainer.done]
if len(finished_runs) > 1:
    st.subheader("Compare your runs")
    if not active and batch and st.session_state.get(Train.COMPARE_BATCH) != batch[-1].batch:
        # a finished batch (a ladder, or a single run) is what the student wants to compare first
        st.session_state[Train.COMPARE_BATCH] = batch[-1].batch
        st.session_state[Train.COMPARE] = [r.id for r in (batch if len(batch) > 1 else finished_runs[-3:])]
    chosen_ids = st.multiselect("Runs", [r.id for r in finished_runs],
                                format_func={r.id: r.name for r in finished_runs}.get, key=Train.COMPARE)
    picked = [state.runs()[i] for i in chosen_ids]
    if picked:
        st.plotly_chart(viz.loss_chart([run_curves(r) for r in picked], picked[0].tokenizer.vocab_size,
                                       best_val_marker=True, title="Loss of your runs"), theme=None)
        st.dataframe([training.summary(r) for r in picked], hide_index=True, key=Train.SUMMARY)
