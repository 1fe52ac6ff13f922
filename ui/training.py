"""The Train page's state: slider settings, starting runs, and the server-wide training queue."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Callable

import streamlit as st
import torch

from gptviz import budget, limits, memory, runs
from gptviz.backends import Backend
from gptviz.bench import matmul_peak_gflops
from gptviz.checkpoints import checkpoint_path, free_name, quota_bytes, save_checkpoint
from gptviz.data import TokenData
from gptviz.errors import GptvizError
from gptviz.experiments import PRESET_NOTES, PRESET_RECIPES, ladder_configs
from gptviz.induction import dense_every
from gptviz.model import GPTConfig, preset_config
from gptviz.runs import next_seeds
from gptviz.train import TrainConfig
from gptviz.viz.style import series_colour

from . import data, models, state
from .state import Train
from .state import train_setting as key

TRAIN_SLIDERS = ("batch_size", "learning_rate", "max_iters", "eval_interval")
MODEL_FIELDS = ("n_layer", "n_head", "n_embd", "block_size", "dropout", "pos_embd", "mlp", "residual", "layernorm")
DEFAULT_PRESET = "gpt"
LEARNING_RATES = list(limits.TRAIN["learning_rate"].options)  # the slider's stops
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


def clamp_link() -> list[str]:
    """A shared link's settings outside the Train page's ranges (typed by hand, or saved before a range
    changed) move to the nearest allowed value: one note per setting moved, instead of a broken page."""
    notes = []
    t = TrainConfig()
    defaults = {**preset_values(DEFAULT_PRESET), "batch_size": t.batch_size, "learning_rate": t.learning_rate,
                "max_iters": t.max_iters, "eval_interval": t.eval_interval, "seed": t.seed}
    for name in limits.TRAIN:
        text = st.query_params.get(key(name))
        if text is None:
            continue
        value = _from_link(key(name), None, type(defaults[name]))
        if value is None:
            del st.query_params[key(name)]
            notes.append(f"The link's {name} ({text[:20]!r}) is not a number: the default is used.")
            continue
        near, moved = limits.clamp(name, value)
        if moved:
            st.query_params[key(name)] = str(near)
            st.session_state.pop(key(name), None)  # the widget takes the corrected link value
            notes.append(f"The link's {name} {text[:20]} is outside what this page allows: {near:g} is used.")
    return notes


def _from_link(name: str, default, kind: type | None = None):
    """A shared link's setting (a query parameter) when it is valid, else the default."""
    text = st.query_params.get(name)
    if text is None:
        return default
    kind = kind or type(default)
    try:
        if kind is bool:
            return {"true": True, "false": False}[text.lower()]
        value = kind(float(text)) if kind is int else kind(text)  # "1e9" or "64.0" for a whole number too
        return value if kind is not float or value == value and abs(value) != float("inf") else default
    except (KeyError, ValueError, OverflowError):
        return default


def apply_preset():
    """on_change of the preset picker: move the model sliders to the preset's values (and, for a preset
    with its own recipe, the training sliders and the text)."""
    preset = st.session_state[key("preset")]
    recipe = PRESET_RECIPES.get(preset, {})
    for name, value in {**preset_values(preset), **recipe}.items():
        if name == "corpus":
            st.session_state[state.CORPUS], st.session_state[state.TOKENIZER] = value, "char"
        elif name in MODEL_FIELDS + TRAIN_SLIDERS:
            st.session_state[key(name)] = value


def preset_note() -> str | None:
    """What the chosen preset needs to be said (its text, how long it takes here)."""
    return PRESET_NOTES.get(st.session_state[key("preset")])


def head_choices(n_embd: int) -> list[int]:
    """Only head counts that divide n_embd: every head gets an equal slice."""
    return [h for h in range(1, int(limits.TRAIN["n_head"].high) + 1) if n_embd % h == 0]


def keep_head_valid() -> list[int]:
    """The head counts n_embd allows; n_head moves to the largest allowed one not above it."""
    heads = head_choices(st.session_state[key("n_embd")])
    if st.session_state[key("n_head")] not in heads:
        st.session_state[key("n_head")] = max(h for h in heads if h <= max(st.session_state[key("n_head")], 1))
    return heads


def duration(seconds: float) -> str:
    return f"~{seconds:.0f} s" if seconds < 120 else f"~{seconds / 60:.1f} min"


def model_config(vocab_size: int) -> GPTConfig:
    values = {f: st.session_state[key(f)] for f in MODEL_FIELDS}
    return GPTConfig(vocab_size=vocab_size, **values)


def train_config() -> TrainConfig:
    iters = st.session_state[key("max_iters")]
    return TrainConfig(max_iters=iters, batch_size=st.session_state[key("batch_size")],
                       learning_rate=st.session_state[key("learning_rate")], eval_interval=min(st.session_state[key("eval_interval")], iters),
                       seed=int(st.session_state[key("seed")]), snapshot_every=_dense_every(iters),
                       weight_decay=PRESET_RECIPES.get(st.session_state[key("preset")], {}).get(
                           "weight_decay", TrainConfig.weight_decay))


def _dense_every(iters: int) -> int:
    """A preset that shows a phase change keeps evenly spaced snapshots (within a memory bound)."""
    every = PRESET_RECIPES.get(st.session_state[key("preset")], {}).get("snapshot_every", 0)
    if not every:
        return 0
    values = {f: st.session_state[key(f)] for f in MODEL_FIELDS}
    return dense_every(GPTConfig(vocab_size=65, **values).num_params(), iters, every)


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
    """The runs started by the last click of Train (one run), of the ladder (one per preset) or of a repeat."""
    runs = list(state.runs().values())
    return [r for r in runs if r.batch == runs[-1].batch] if runs else []


@dataclass
class Spec:
    """One training to start: a model, its budget and its text (and its seed group, for a repeat)."""

    preset: str
    config: GPTConfig
    cfg: TrainConfig
    data: TokenData
    corpus: str
    group: int | None = None


def _chosen() -> tuple[str, TokenData]:
    chosen = data.chosen_data()
    if chosen is None:
        raise GptvizError("Choose a text on the Data page first (or upload one).")
    return chosen


def _from_sliders() -> list[Spec]:
    corpus, token_data = _chosen()
    return [Spec(st.session_state[key("preset")], model_config(token_data.tokenizer.vocab_size), train_config(),
                 token_data, corpus)]


def _ladder() -> list[Spec]:
    corpus, token_data = _chosen()
    configs = ladder_configs(token_data.tokenizer.vocab_size, st.session_state[key("block_size")])
    cfg = train_config()  # one budget for every rung
    return [Spec(p, c, cfg, token_data, corpus) for p, c in configs.items()]


def _repeats(chosen: list[state.Run], extra: int = 2) -> list[Spec]:
    """Each seed group of `chosen` once more with `extra` seeds it has not used: the same model and text."""
    specs, done = [], set()
    for r in chosen:
        if r.group in done:
            continue
        done.add(r.group)
        used = [m.trainer.cfg.seed for m in state.runs().values() if m.group == r.group]
        t = r.trainer
        specs += [Spec(r.preset, replace(t.model.config), replace(t.cfg, seed=s), r.data, r.corpus, r.group)
                  for s in next_seeds(used, extra)]
    return specs


def _launch(make_specs: Callable[[], list[Spec]]):
    """Queue one training per spec (checking each fits in memory first), all in one batch."""
    st.session_state[Train.ERROR] = None
    try:
        specs = make_specs()
        check_room(specs)
        # identical requests (a classmate's same settings, seed and text) share one training
        owner = state.tab().token  # the tab's fair share of the queue (gptviz/jobs.py)
        job_queue().check_room(owner, len(specs))
        trainers = [job_queue().submit(s.config, s.cfg, s.data, ABANDON_AFTER_S, owner) for s in specs]
    except GptvizError as e:
        st.session_state[Train.ERROR] = str(e)
        return
    batch = max((r.batch for r in state.runs().values()), default=0) + 1
    for spec, trainer in zip(specs, trainers):
        settings = runs.settings_of(spec.config, spec.cfg, spec.corpus, spec.data.tokenizer.kind)
        name = runs.unique_name(runs.run_name(spec.preset, settings), (r.name for r in state.runs().values()))
        run = state.Run(name=name, trainer=trainer, tokenizer=spec.data.tokenizer, corpus=spec.corpus,
                        preset=spec.preset, batch=batch, settings=settings, group=spec.group, data=spec.data,
                        colour=series_colour(len(state.runs())))
        state.runs()[run.id] = run


def check_room(specs: list[Spec]):
    """Before anything is queued: each training fits its own limit, the tab its share, the server its budget."""
    if len(state.runs()) + len(specs) > limits.RUNS_PER_TAB:
        raise GptvizError(f"This tab keeps {len(state.runs())} runs, and at most {limits.RUNS_PER_TAB}: delete runs you no "
                          "longer need (🗑️ under the model picker) or save the good ones, then train again.")
    needed = 0
    for s in specs:
        est = budget.estimate(s.config, s.cfg)
        budget.check_fits(est)
        needed += est.memory_bytes + budget.kept_bytes(est.params, s.cfg)
    memory.check(needed, "this training" if len(specs) == 1 else f"these {len(specs)} trainings",
                 "Train a smaller model (n_embd, n_layer, block_size, batch_size) or wait for a classmate's "
                 "training to finish.")


def start():
    """on_click of Train."""
    _launch(_from_sliders)


def start_ladder():
    """on_click of 'Run the ladder': every preset with the same data, steps, batch, learning rate and seed."""
    _launch(_ladder)


def repeat_seeds(runs_: list[state.Run]):
    """on_click of 'Repeat with two more seeds': is a difference more than seed noise?"""
    _launch(lambda: _repeats(runs_))


def lower_rate(lr: float) -> float | None:
    """The slider's highest rate at least 3x below `lr`: what to try after a run blew up."""
    return max((v for v in LEARNING_RATES if v <= lr / 3), default=None)


def retry_lower(lr: float):
    """on_click of 'Train again at ...': the same settings with that learning rate."""
    st.session_state[key("learning_rate")] = lr
    start()


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


state.ON_TAB_DROP["training"] = lambda tab: stop(list(tab.runs.values()))  # a dropped tab's trainings stop


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
        own = run.saved_as == path.stem  # a run's own checkpoint is replaced; any other name must be new
        save_checkpoint(path, t.model, run.tokenizer, meta(run), t.snapshots, overwrite=own, quota=quota_bytes())
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


def meta(run: state.Run) -> dict:
    """What a checkpoint (or the inspection pages) remember about the run besides its weights."""
    return runs.checkpoint_meta(run.trainer, run.corpus, run.preset, run.name, settings=run.settings)


def file_stem(run: state.Run) -> str:
    """The run's name as a file name: the default checkpoint name and the download's."""
    return runs.file_stem(run.name)


def default_save_name(run: state.Run):
    """Fill the checkpoint-name box with the run's name, once per run (the student may edit it)."""
    if st.session_state.get(Train.SAVE_NAME_FOR) != run.id:
        st.session_state[Train.SAVE_NAME_FOR] = run.id
        st.session_state[Train.SAVE_NAME] = free_name(file_stem(run), models.checkpoint_dir())


def curves(run: state.Run) -> dict:
    """A run's loss curves, name and colour, for viz.loss_chart."""
    h = run.trainer.history
    return {"name": run.name, "colour": run.colour, "step": h["step"], "train_loss": h["train_loss"],
            "eval_step": h["eval_step"], "val_loss": h["val_loss"]}


def shared_text(run: state.Run) -> str | None:
    """Said when other students' identical requests share this run's training."""
    n = getattr(run.trainer, "students", 1)
    return (f"🤝 Trained once for {n} students: everyone who asked for exactly these settings watches the same "
            "training.") if n > 1 else None


def progress_text(run: state.Run) -> str:
    t = run.trainer
    eta = f" · ETA {t.eta_s:.0f} s" if t.eta_s and not t.done else ""
    return f"{run.name} — {t.status} · step {t.step}/{t.cfg.max_iters} · {t.tokens_per_sec:,.0f} tokens/s{eta}"


def queued_text(run: state.Run) -> str:
    place = job_queue().ahead(run.trainer)
    if place is None:  # just taken out of the line
        return f"{run.name}: starting…"
    ahead, yours = place
    n = job_queue().max_running
    mine = f" ({yours} of them yours: a tab trains one model at a time)" if yours else ""
    return (f"{run.name}: queued, {ahead} ahead{mine} — the server trains {n} model{'s' * (n > 1)} at a time, "
            "taking the class's tabs in turn; yours starts when its turn comes.")
