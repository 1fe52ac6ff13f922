"""The Train page's state: slider settings, starting runs, and the server-wide training queue."""

from __future__ import annotations

import os

import streamlit as st
import torch

from gptviz import budget
from gptviz.backends import Backend
from gptviz.bench import matmul_peak_gflops
from gptviz.checkpoints import checkpoint_path, free_name, save_checkpoint
from gptviz.errors import GptvizError
from gptviz.model import PRESETS, GPTConfig, preset_config
from gptviz.train import TrainConfig

from . import data, models, state
from .state import Train
from .state import train_setting as key

MODEL_FIELDS = ("n_layer", "n_head", "n_embd", "block_size", "dropout", "pos_embd", "mlp", "residual", "layernorm")
DEFAULT_PRESET = "gpt"
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 3e-2, 1e-1, 1.0]  # the slider's stops
ABANDON_AFTER_S = 120  # a run nobody has watched this long stops (a Wi-Fi blip is shorter)


def preset_values(preset: str) -> dict:
    cfg = preset_config(preset, vocab_size=65)  # vocab comes from the data; the rest from the preset
    return {f: getattr(cfg, f) for f in MODEL_FIELDS}


def init_defaults():
    t = TrainConfig()
    defaults = {"preset": DEFAULT_PRESET, **preset_values(DEFAULT_PRESET), "batch_size": t.batch_size,
                "learning_rate": t.learning_rate, "max_iters": t.max_iters, "eval_interval": t.eval_interval,
                "seed": t.seed}
    for name, value in defaults.items():
        st.session_state.setdefault(key(name), _from_link(key(name), value))


def _from_link(name: str, default):
    """A shared link's setting (a query parameter) when it is valid, else the default."""
    text = st.query_params.get(name)
    if text is None:
        return default
    try:
        if isinstance(default, bool):
            return {"true": True, "false": False}[text.lower()]
        return type(default)(text)
    except (KeyError, ValueError):
        return default


def apply_preset():
    """on_change of the preset picker: move the model sliders to the preset's values."""
    for name, value in preset_values(st.session_state[key("preset")]).items():
        st.session_state[key(name)] = value


def head_choices(n_embd: int) -> list[int]:
    """Only head counts that divide n_embd: every head gets an equal slice."""
    return [h for h in range(1, 17) if n_embd % h == 0]


def model_config(vocab_size: int) -> GPTConfig:
    values = {f: st.session_state[key(f)] for f in MODEL_FIELDS}
    return GPTConfig(vocab_size=vocab_size, **values)


def train_config() -> TrainConfig:
    iters = st.session_state[key("max_iters")]
    return TrainConfig(max_iters=iters, batch_size=st.session_state[key("batch_size")],
                       learning_rate=st.session_state[key("learning_rate")], eval_interval=min(st.session_state[key("eval_interval")], iters),
                       seed=int(st.session_state[key("seed")]))


@st.cache_resource(show_spinner=False)
def job_queue() -> Backend:
    """One queue for the whole server: at most GPTVIZ_MAX_TRAININGS (default: CPU cores) train at once, in
    worker processes, threads or on a Ray cluster (GPTVIZ_TRAINING_BACKEND, GPTVIZ_RAY_ADDRESS)."""
    return Backend.from_env()


@st.cache_resource(show_spinner=False)
def configure_torch() -> int:
    """Threads per torch op: the cores shared by the trainings that may run at once. More threads than
    cores make every op wait for the others (a tiny forward took 65 ms instead of 1.3 ms under load)."""
    threads = int(os.environ.get("GPTVIZ_TORCH_THREADS", 0)) or max(1, (os.cpu_count() or 1) // job_queue().max_running)
    torch.set_num_threads(threads)
    return threads


@st.cache_resource(show_spinner=False)
def peak_flops() -> float:
    return matmul_peak_gflops(1024, reps=5, best=True) * 1e9  # best of 5: a busy moment must not stick


def latest_batch() -> list[state.Run]:
    """The runs started by the last click of Train (one run) or of the ladder (one per preset)."""
    runs = list(state.runs().values())
    return [r for r in runs if r.batch == runs[-1].batch] if runs else []


def _new_runs(presets: list[str] | None):
    """Queue one training per preset (None: the sliders as they are); identical requests share one."""
    st.session_state[Train.ERROR] = None
    try:
        chosen = data.chosen_data()
        if chosen is None:
            raise GptvizError("Choose a text on the Data page first (or upload one).")
        corpus, token_data = chosen
        vocab, cfg = token_data.tokenizer.vocab_size, train_config()
        block = st.session_state[key("block_size")]
        configs = {p: preset_config(p, vocab, block) for p in presets} if presets else \
            {st.session_state[key("preset")]: model_config(vocab)}
        for config in configs.values():
            budget.check_fits(budget.estimate(config, cfg))
        trainers = {p: job_queue().submit(c, cfg, token_data, ABANDON_AFTER_S) for p, c in configs.items()}
    except GptvizError as e:
        st.session_state[Train.ERROR] = str(e)
        return
    batch = max((r.batch for r in state.runs().values()), default=0) + 1
    for preset, trainer in trainers.items():
        n = len(state.runs()) + 1
        label = f"ladder: {preset}" if presets else preset
        run = state.Run(name=f"run {n}: {label} on {corpus} ({token_data.tokenizer.kind})", trainer=trainer,
                        tokenizer=token_data.tokenizer, corpus=corpus, preset=preset, batch=batch)
        state.runs()[run.id] = run


def start():
    """on_click of Train."""
    _new_runs(None)


def lower_rate(lr: float) -> float | None:
    """The slider's highest rate at least 3x below `lr`: what to try after a run blew up."""
    return max((v for v in LEARNING_RATES if v <= lr / 3), default=None)


def retry_lower(lr: float):
    """on_click of 'Train again at ...': the same settings with that learning rate."""
    st.session_state[key("learning_rate")] = lr
    start()


def start_ladder():
    """on_click of 'Run the ladder': every preset with the same data, steps, batch, learning rate and seed."""
    _new_runs(list(PRESETS))


def pause(runs: list[state.Run]):
    for r in runs:
        r.trainer.pause()


def resume(runs: list[state.Run]):
    for r in runs:
        r.trainer.resume()


def stop(runs: list[state.Run]):
    for r in runs:
        if not r.trainer.done:
            job_queue().cancel(r.trainer)


def save(run: state.Run):
    """on_click of Save: write the run as a checkpoint under the name typed by the student."""
    name = st.session_state[Train.SAVE_NAME].strip()
    try:
        path = checkpoint_path(name, models.checkpoint_dir())
        if path.stem == models.DEFAULT_CHECKPOINT:
            raise GptvizError(f"{name!r} is the bundled model's name; choose another one.")
        if path.exists() and run.saved_as != path.stem:  # only a run's own checkpoint is ever replaced
            raise GptvizError(f"There is already a checkpoint called {path.stem!r} on this server (perhaps a "
                              f"classmate's, or an earlier run of yours). Choose another name, such as "
                              f"{free_name(path.stem, path.parent)!r}.")
        t = run.trainer
        save_checkpoint(path, t.model, run.tokenizer, run_meta(run), t.snapshots)
    except GptvizError as e:
        st.session_state[Train.SAVED] = ("error", str(e))
        return
    run.saved_as = path.stem
    st.session_state[Train.SAVED] = ("ok", f"Saved as {path.name}: it is in the model picker for everyone on this server.")


def sidebar_status():
    """On every page while this tab trains: progress in the sidebar, and the heartbeat that keeps the tab's
    runs alive (when the tab closes the fragment stops, and so, after a grace period, do its runs; a
    reload of the tab adopts them before that, see ui.store)."""
    active = [r for r in state.runs().values() if not r.trainer.done]
    if not active:
        return

    @st.fragment(run_every=2)
    def status():
        state.heartbeat()
        for run in active:
            t = run.trainer
            st.progress(min(t.step / t.cfg.max_iters, 1.0), text=f"🏋️ {run.name}: {t.status}, step {t.step}")
        if any(run.trainer.done for run in active):
            st.rerun()  # a full run: the picker offers the finished model

    with st.sidebar:
        status()


def run_meta(run: state.Run) -> dict:
    """What a checkpoint remembers about the run besides its weights."""
    t = run.trainer
    return {"corpus": run.corpus, "preset": run.preset, "train_config": t.cfg.to_dict(), "history": t.history,
            "elapsed_s": t.elapsed_s, "status": t.status}


def summary(run: state.Run) -> dict:
    """One row of the results table."""
    t, h = run.trainer, run.trainer.history
    best = min(range(len(h["val_loss"])), key=h["val_loss"].__getitem__) if h["val_loss"] else None
    return {"run": run.name, "parameters": t.model.num_params(),
            "val loss": round(h["val_loss"][-1], 3) if h["val_loss"] else None,
            "best val loss": round(h["val_loss"][best], 3) if best is not None else None,
            "at step": h["eval_step"][best] if best is not None else None,
            "steps": t.step, "seconds": round(t.elapsed_s, 1), "status": t.status}
