import streamlit as st

from gptviz import analysis, budget, runs, viz
from gptviz.checkpoints import to_bytes
from gptviz.limits import TRAIN
from gptviz.model import PRESET_TITLES, PRESETS
from gptviz.train import Status
from ui import data, notebook, state, training
from ui.common import intro, student_errors
from ui.entry import require_app
from ui.state import Train
from ui.state import train_setting as key

SEED_MAX = int(TRAIN["seed"].high)


def _range(name: str) -> dict:
    """A slider's bounds and step from the one list of the page's ranges (gptviz.limits.TRAIN); by keyword,
    since st.slider's fourth positional argument is its value, not its step."""
    r = TRAIN[name]
    return dict(min_value=r.low, max_value=r.high, step=r.step)


def header():
    st.title("Train")
    intro("Choose a step of the lecture's ladder, move the sliders, press **Train** and watch the loss fall. "
          "The dashed line is a random guess: a model that learned nothing scores ln(vocabulary size). "
          f"Everything you train stays with this browser tab, a reload included, for {state.tabs().ttl / 3600:g} "
          "hours (save or download a model you want to keep); open it on the inspection pages.")


def text_caption():
    """The text and tokenizer chosen on the Data page (stops the page when there is none)."""
    with student_errors():
        chosen = data.chosen_data()
    if chosen is None:
        st.warning("Choose a text on the **Data & tokens** page first (or upload one).")
        st.stop()
    corpus, token_data = chosen
    tok = token_data.tokenizer
    st.caption(f"Text: **{corpus}** · {data.TOKENIZER_LABELS[tok.kind]} · vocabulary {tok.vocab_size:,} · "
               f"{token_data.num_tokens:,} tokens (change them on the Data & tokens page)")
    return tok.vocab_size


def model_sliders():
    st.markdown("**Model**")
    st.slider("n_layer (blocks)", **_range("n_layer"), key=key("n_layer"), persist_state="session", bind="query-params",
              help="0 gives a bigram model: no attention at all.")
    st.select_slider("n_embd (embedding width)", TRAIN["n_embd"].options, key=key("n_embd"),
                     persist_state="session", bind="query-params")
    st.select_slider("n_head (heads per block)", training.keep_head_valid(), key=key("n_head"),
                     persist_state="session", bind="query-params",
                     help="Only values that divide n_embd: each head gets n_embd / n_head dimensions.")
    st.select_slider("block_size (context length)", TRAIN["block_size"].options, key=key("block_size"),
                     persist_state="session", bind="query-params")
    st.slider("dropout", **_range("dropout"), key=key("dropout"), persist_state="session", bind="query-params")
    with st.expander("Switch parts of the model on and off"):
        st.toggle("position embeddings", key=key("pos_embd"), persist_state="session", bind="query-params")
        st.toggle("MLP after attention", key=key("mlp"), persist_state="session", bind="query-params")
        st.toggle("residual connections", key=key("residual"), persist_state="session", bind="query-params")
        st.toggle("LayerNorm", key=key("layernorm"), persist_state="session", bind="query-params")


def training_sliders():
    st.markdown("**Training**")
    st.select_slider("batch_size", TRAIN["batch_size"].options, key=key("batch_size"), persist_state="session",
                     bind="query-params")
    st.select_slider("learning_rate (peak)", training.LEARNING_RATES,
                     key=key("learning_rate"), format_func=lambda v: f"{v:g}", persist_state="session",
                     bind="query-params",
                     help="Warm-up, then cosine decay to a tenth of it. Too high and the loss explodes.")
    st.slider("iterations", **_range("max_iters"), key=key("max_iters"), persist_state="session", bind="query-params")
    st.slider("eval_interval", **_range("eval_interval"), key=key("eval_interval"), persist_state="session",
              bind="query-params", help="How often to measure the loss on held-out text (and print a sample).")
    # a number out of range turns red and Enter does nothing: the label says the range
    st.number_input(f"seed (0 to {SEED_MAX:,})", 0, SEED_MAX, key=key("seed"), persist_state="session",
                    bind="query-params",
                    help=f"A whole number from 0 to {SEED_MAX:,}. The same seed gives the same initial weights "
                         "and batches: runs you can compare.")


def estimate(vocab: int):
    with student_errors():
        config, cfg = training.model_config(vocab), training.train_config()
    est = budget.estimate(config, cfg, training.peak_flops())
    a, b, c = st.columns(3)
    a.metric("Parameters", f"{est.params:,}")
    b.metric("Estimated time", training.duration(est.seconds),
             help=f"For a server as busy as a classroom's (a quiet one is faster); "
                  f"{training.duration(est.eval_seconds)} of it measures the loss on held-out text and writes a "
                  "sample (fewer evaluations: a larger eval_interval).")
    c.metric("Memory", f"~{est.memory_mb:,.0f} MB")


def controls(batch: list[state.Run], active: bool):
    buttons = st.columns([1, 1, 1, 2, 2])
    buttons[0].button("Train", type="primary", on_click=training.start, disabled=active, key=Train.START)
    if active:
        paused = all(r.trainer.status == Status.PAUSED for r in batch if not r.trainer.done)
        buttons[1].button("Resume" if paused else "Pause", key=Train.PAUSE, args=(batch,),
                          on_click=training.resume if paused else training.pause)
        buttons[2].button("Stop", key=Train.STOP, on_click=training.stop, args=(batch,))
    buttons[3].button("Repeat with two more seeds", key=Train.SEEDS, icon="🎲", on_click=training.repeat_seeds,
                      args=(batch,), disabled=active or not batch,
                      help="Trains the last run (or the whole ladder) again with two other seeds: the table and "
                           "the chart then show the seeds' spread, so you can tell an effect from luck.")
    buttons[4].button("Run the whole ladder", key=Train.LADDER, on_click=training.start_ladder, disabled=active,
                      help="Bigram → single head → multi-head → blocks → GPT on this text, each with these training "
                           "settings: the lecture's results table, live.")
    if st.session_state.get(Train.ERROR):
        st.error(st.session_state[Train.ERROR], icon="⚠️")
    st.caption("🔗 The address bar holds these settings: share the link and everyone opens this configuration.")


def live_view(batch: list[state.Run], active: bool):
    @st.fragment(run_every=1.0 if active else None)
    def view():
        """Redrawn every second while training; moving other widgets does not touch the runs."""
        run = batch[-1]
        for r in batch:
            if r.trainer.status == Status.QUEUED:
                st.info(training.queued_text(r))
            else:
                st.progress(min(r.trainer.step / r.trainer.cfg.max_iters, 1.0), text=training.progress_text(r))
            if training.shared_text(r):  # identical requests share one training (gptviz/shared.py)
                st.caption(training.shared_text(r))
        st.plotly_chart(viz.loss_chart([training.curves(r) for r in batch], run.tokenizer.vocab_size,
                                       best_val_marker=True), theme=None, key=Train.LIVE_CHART)
        t = run.trainer
        for hint in analysis.loss_hints(t.history, run.tokenizer.vocab_size, t.cfg.warmup_iters):
            st.info(hint, icon="💡")
        if t.history["samples"]:
            st.markdown(f"**{run.name}: sample at step {t.history['eval_step'][-1]}**")
            st.code(t.history["samples"][-1], language=None)
        if all(r.trainer.done for r in batch):
            for r in batch:
                ok = r.trainer.status not in (Status.DIVERGED, Status.ERROR)
                (st.success if ok else st.error)(f"{r.name}: {r.trainer.message}")
            if active:  # it ended since the page was drawn: a full rerun switches polling off
                st.rerun()

    if batch:
        view()


def retry(run: state.Run):
    """Outside the live view: a click must redraw the whole page, which then shows the new run."""
    lower = training.lower_rate(run.trainer.cfg.learning_rate)
    if lower:
        st.button(f"Train again at learning rate {lower:g}", key=Train.RETRY, icon="🔁",
                  on_click=training.retry_lower, args=(lower,))


def save_and_download(run: state.Run):
    training.default_save_name(run)
    name_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
    name_col.text_input(f"Save {run.name} as", key=Train.SAVE_NAME,
                        help="Letters, digits, '-', '_' and '.'; saved in the checkpoints/ folder.")
    button_col.button("Save checkpoint", key=Train.SAVE, on_click=training.save, args=(run,))
    t = run.trainer
    st.download_button("Download this model (.safetensors)", key=Train.DOWNLOAD,
                       file_name=f"{training.file_stem(run)}.safetensors",
                       data=lambda: to_bytes(t.model, run.tokenizer, training.meta(run), t.snapshots),
                       help="One file: weights, settings, tokenizer, loss history and timeline snapshots. "
                            "Open it with the sidebar's uploader or `python -m gptviz sample --checkpoint FILE`.")
    saved = st.session_state.get(Train.SAVED)
    if saved:
        (st.success if saved[0] == "ok" else st.error)(saved[1])


def runs_notebook(batch: list[state.Run]):
    """The lab notebook: the runs' curves, a table of what differs and what it did, and a verdict."""
    done = notebook.finished()
    if len(done) < 2:
        return
    st.subheader("Compare your runs")
    notebook.choose_default(batch)
    names = {r.id: r.name for r in done}
    chosen = st.multiselect("Runs", list(names), format_func=names.get, key=Train.COMPARE,
                            persist_state="session")
    groups = notebook.groups_of([state.runs()[i] for i in chosen])
    if not groups:
        return
    st.plotly_chart(viz.loss_chart(notebook.chart_curves(groups), state.runs()[chosen[0]].tokenizer.vocab_size,
                                   best_val_marker=True, title="Loss of your runs"), theme=None,
                    key=Train.COMPARE_CHART)
    st.caption("One row per run (a run repeated with other seeds: one row, val loss as mean ± half the seeds' "
               "range). A column for every setting that differs; highlighted where it differs from the first row.")
    st.dataframe(notebook.table(groups), hide_index=True, key=Train.SUMMARY)
    if len(groups) > 1:
        options = notebook.verdict_picks(groups)
        a, b = st.columns(2)
        a.selectbox("Compare", list(options), format_func=options.get, key=Train.VERDICT_A, persist_state="session")
        b.selectbox("with", list(options), format_func=options.get, key=Train.VERDICT_B, persist_state="session")
        by_id = {g.first.group: g for g in groups}
        st.info(runs.verdict(by_id[st.session_state[Train.VERDICT_A]], by_id[st.session_state[Train.VERDICT_B]]),
                icon="⚖️")


def link_notes():
    """A link's out-of-range settings were moved to the nearest allowed value: say so."""
    notes = training.clamp_link()
    if notes:
        st.session_state[Train.LINK_NOTES] = notes
    for note in st.session_state.get(Train.LINK_NOTES, []):
        st.info(note, icon="🔗")


require_app()
header()
link_notes()
training.init_defaults()
vocab = text_caption()
st.selectbox("Preset (the lecture's ladder)", list(PRESETS), format_func=PRESET_TITLES.get, key=key("preset"),
             on_change=training.apply_preset, persist_state="session")
if training.preset_note():
    st.info(training.preset_note(), icon="🧲")
model_col, train_col = st.columns(2)
with model_col:
    model_sliders()
with train_col:
    training_sliders()
estimate(vocab)

batch = training.latest_batch()
run = batch[-1] if batch else None  # the run Save and Download act on
active = any(not r.trainer.done for r in batch)
controls(batch, active)
live_view(batch, active)
if run is not None and not active and run.trainer.status == Status.DIVERGED and len(batch) == 1:
    retry(run)
if run is not None and not active and run.trainer.status != Status.ERROR:
    save_and_download(run)
runs_notebook(batch)
