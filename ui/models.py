"""Which models a session can inspect: checkpoints on disk and the runs trained in this session.

Checkpoint files are read once per server (`st.cache_resource` holds their bytes, read-only);
every session builds its own model from them, because inspection attaches hooks to the model
and two students must never share one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from gptviz.checkpoints import CHECKPOINT_DIR, Checkpoint, list_checkpoints, load_checkpoint
from gptviz.errors import GptvizError
from gptviz.model import GPT
from gptviz.tokenizers import Tokenizer

from . import state

DEFAULT_CHECKPOINT = "shakespeare-char"


@dataclass
class ModelEntry:
    key: str  # "ckpt:<name>" or "run:<id>"
    label: str
    model: GPT
    tokenizer: Tokenizer
    corpus: str  # where its training text came from, for default prompts
    meta: dict = field(default_factory=dict)
    snapshots: dict = field(default_factory=dict)
    step: int | None = None  # a training-timeline snapshot's step; None: the model as training left it


@st.cache_resource(show_spinner=False, max_entries=32)
def _checkpoint_bytes(path: str, mtime: float) -> bytes:
    return Path(path).read_bytes()


def checkpoint_dir() -> Path:
    return CHECKPOINT_DIR


def _checkpoint_choices() -> dict[str, str]:
    paths = list_checkpoints(checkpoint_dir())
    paths.sort(key=lambda p: (p.stem != DEFAULT_CHECKPOINT, p.stem))  # the bundled default first
    return {f"ckpt:{p.stem}": f"💾 {p.stem}" for p in paths}


def _run_choices() -> dict[str, str]:
    return {f"run:{run.id}": f"🧪 {run.name}" for run in state.runs().values() if run.trainer.done}


def _upload_choices() -> dict[str, str]:
    return {f"up:{name}": f"📂 {name}" for name in st.session_state[state.UPLOADED_MODELS]}


def choices() -> dict[str, str]:
    """key -> label of every model this session can inspect."""
    return {**_run_choices(), **_upload_choices(), **_checkpoint_choices()}


def _load_checkpoint(name: str) -> Checkpoint:
    path = checkpoint_dir() / f"{name}.safetensors"
    mtime = path.stat().st_mtime
    loaded = st.session_state[state.LOADED]
    if name not in loaded or loaded[name][0] != mtime:
        loaded[name] = (mtime, load_checkpoint(_checkpoint_bytes(str(path), mtime)))
    return loaded[name][1]


def entry(key: str) -> ModelEntry:
    """The model behind a picker key (raises GptvizError when it cannot be loaded)."""
    kind, _, name = key.partition(":")
    if kind == "run":
        run = state.runs()[int(name)]
        t = run.trainer
        meta = {"history": t.history, "train_config": t.cfg.to_dict(), "corpus": run.corpus, "preset": run.preset}
        return ModelEntry(key, f"🧪 {run.name}", t.model, run.tokenizer, run.corpus, meta, t.snapshots)
    ck = st.session_state[state.UPLOADED_MODELS][name] if kind == "up" else _load_checkpoint(name)
    return ModelEntry(key, f"💾 {name}", ck.model, ck.tokenizer, ck.meta.get("corpus", ""), ck.meta, ck.snapshots)


def picker():
    """The sidebar model picker, shared by every page (created after st.navigation, see app.py)."""
    box = st.sidebar.container()  # the picker shows above the uploader but is filled after it
    uploader()
    options = choices()
    for run in state.runs().values():  # a run that just finished becomes the model to inspect
        if run.trainer.done and not run.announced:
            run.announced = True
            st.session_state[state.MODEL] = f"run:{run.id}"
    if state.get(state.MODEL) not in options:
        st.session_state[state.MODEL] = next(iter(options), None)
    box.selectbox("Model to inspect", list(options), format_func=options.get, key=state.MODEL,
                  help="Checkpoints on the server (💾), files you opened (📂) and runs you trained in this session (🧪).")


def uploader():
    """Open a checkpoint file from the student's computer: it joins this session's models only."""
    upload = st.sidebar.file_uploader("Open a checkpoint (.safetensors)", type=["safetensors"], key="model_upload")
    if upload is None or upload.file_id == st.session_state.get(_UPLOAD_ID):
        return
    st.session_state[_UPLOAD_ID] = upload.file_id
    try:
        ck = load_checkpoint(upload.getvalue())
    except GptvizError as e:
        st.sidebar.error(f"{upload.name}: {e}", icon="⚠️")
        return
    name = Path(upload.name).stem
    st.session_state[state.UPLOADED_MODELS][name] = ck
    st.session_state[state.MODEL] = f"up:{name}"


_UPLOAD_ID = "model_upload_id"


def current() -> ModelEntry | None:
    """The model the inspection pages show, or None (with a message) when there is none."""
    key = state.get(state.MODEL)
    if key is None:
        st.info("There is no model yet: train one on the **Train** page.")
        return None
    try:
        return entry(key)
    except (GptvizError, KeyError, FileNotFoundError) as e:
        st.error(f"This model cannot be opened: {e}")
        return None
