"""Which models a session can inspect: checkpoints on disk and the runs trained in this session.

Checkpoint files are read once per server (`st.cache_resource` holds their bytes, read-only);
every session builds its own model from them, because inspection attaches hooks to the model
and two students must never share one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import streamlit as st

from gptviz import limits, memory
from gptviz.checkpoints import CHECKPOINT_DIR, Checkpoint, list_checkpoints, load_checkpoint
from gptviz.errors import GptvizError
from gptviz.model import GPT
from gptviz.runs import checkpoint_meta
from gptviz.tokenizers import Tokenizer

from . import state

DEFAULT_CHECKPOINT = "shakespeare-char"
INDUCTION_CHECKPOINT = "induction-shakespeare-char"  # the bundled model with an induction head (docs/induction.md)


class ModelKey(NamedTuple):
    """Which model the picker means; its text form ("run:3") is the picker's option and widget value."""

    kind: str  # CKPT, RUN or UP
    name: str

    CKPT = "ckpt"  # a checkpoint file on the server
    RUN = "run"  # a run trained in this tab (name: the run's id)
    UP = "up"  # a file the student opened

    @classmethod
    def parse(cls, text: str) -> "ModelKey":
        kind, sep, name = str(text).partition(":")
        if not sep or kind not in (cls.CKPT, cls.RUN, cls.UP):
            raise KeyError(f"not a model key: {text!r}")
        return cls(kind, name)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass
class ModelEntry:
    key: str  # str(ModelKey)
    label: str
    model: GPT
    tokenizer: Tokenizer
    corpus: str  # where its training text came from, for default prompts
    meta: dict = field(default_factory=dict)
    snapshots: dict = field(default_factory=dict)
    step: int | None = None  # a training-timeline snapshot's step; None: the model as training left it


_identities = itertools.count(1)


def identity(model) -> int:
    """A number no other model object of this server ever gets: memo keys use it, because id() is reused
    after garbage collection (a deleted model's captures would be shown for a new one)."""
    token = model.__dict__.get("_gptviz_identity")
    if token is None:
        token = model.__dict__["_gptviz_identity"] = next(_identities)
    return token


@st.cache_resource(show_spinner=False, max_entries=32)
def _checkpoint_bytes(path: str, mtime: float) -> bytes:
    return Path(path).read_bytes()


def checkpoint_dir() -> Path:
    return CHECKPOINT_DIR


def _checkpoint_choices() -> dict[str, str]:
    paths = list_checkpoints(checkpoint_dir())
    paths.sort(key=lambda p: (p.stem != DEFAULT_CHECKPOINT, p.stem))  # the bundled default first
    return {str(ModelKey(ModelKey.CKPT, p.stem)): f"💾 {p.stem}" for p in paths}


def _run_choices() -> dict[str, str]:
    return {str(ModelKey(ModelKey.RUN, str(run.id))): f"🧪 {run.name}"
            for run in state.runs().values() if run.trainer.done}


def _upload_choices() -> dict[str, str]:
    return {str(ModelKey(ModelKey.UP, name)): f"📂 {name}" for name in state.uploaded_models()}


def choices() -> dict[str, str]:
    """key -> label of every model this session can inspect."""
    return {**_run_choices(), **_upload_choices(), **_checkpoint_choices()}


OPEN_FACTOR = 3  # a file's bytes, its tensors and the float32 model built from them, while it opens


def _load_checkpoint(name: str) -> Checkpoint:
    """This tab's own model of a server checkpoint; at most limits.OPENED_PER_TAB are kept, the least
    recently used is dropped (it is rebuilt from the file when picked again)."""
    path = checkpoint_dir() / f"{name}.safetensors"
    mtime = path.stat().st_mtime
    loaded = st.session_state[state.LOADED]
    if name not in loaded or loaded[name][0] != mtime:
        loaded.pop(name, None)
        while len(loaded) >= limits.OPENED_PER_TAB:
            loaded.pop(next(iter(loaded)))
        memory.check(OPEN_FACTOR * path.stat().st_size, f"opening {name}",
                     "Try again in a minute, or delete a model you no longer need (🗑️ in the sidebar).")
        loaded[name] = (mtime, load_checkpoint(_checkpoint_bytes(str(path), mtime)))
    loaded[name] = loaded.pop(name)  # most recently used last
    return loaded[name][1]


def entry(key: str) -> ModelEntry:
    """The model behind a picker key (raises GptvizError when it cannot be loaded)."""
    kind, name = ModelKey.parse(key)
    if kind == ModelKey.RUN:
        run = state.runs()[int(name)]
        t = run.trainer
        meta = checkpoint_meta(t, run.corpus, run.preset, run.name, settings=run.settings)
        return ModelEntry(key, f"🧪 {run.name}", t.model, run.tokenizer, run.corpus, meta, t.snapshots)
    ck = state.uploaded_models()[name] if kind == ModelKey.UP else _load_checkpoint(name)
    return ModelEntry(key, f"💾 {name}", ck.model, ck.tokenizer, ck.meta.get("corpus", ""), ck.meta, ck.snapshots)


PICKER_FITS = 24  # characters of a name that the sidebar's picker shows at 1280x720


def picker():
    """The sidebar model picker, shared by every page (created after st.navigation, see app.py)."""
    box = st.sidebar.container()  # the picker shows above the uploader but is filled after it
    uploader()
    options = choices()
    for run in state.runs().values():  # a run that just finished becomes the model to inspect
        if run.trainer.done and not run.announced:
            run.announced = True
            st.session_state[state.MODEL] = str(ModelKey(ModelKey.RUN, str(run.id)))
    if state.get(state.MODEL) not in options:
        st.session_state[state.MODEL] = next(iter(options), None)
    # persist_state: a run that ends in an error draws no widget, and the unpersisted ones lose their value
    box.selectbox("Model to inspect", list(options), format_func=options.get, key=state.MODEL,
                  persist_state="session",
                  help="Checkpoints on the server (💾), files you opened (📂) and runs you trained in this tab (🧪).")
    picked = state.tab().model = st.session_state[state.MODEL]  # a reload of this tab picks it again
    if picked is not None and len(options[picked]) > PICKER_FITS:  # the box cuts it: say it in full
        box.caption(options[picked])
    if picked is not None and ModelKey.parse(picked).kind != ModelKey.CKPT:
        box.button("🗑️ Delete this model", key=state.DELETE_MODEL, on_click=delete, args=(picked,),
                   help="Remove this model from this tab (checkpoints you saved stay on the server).")


def delete(key: str):
    """on_click of Delete: the run or opened file leaves this tab for good."""
    kind, name = ModelKey.parse(key)
    if kind == ModelKey.RUN:
        state.runs().pop(int(name), None)
    elif kind == ModelKey.UP:
        state.uploaded_models().pop(name, None)
    st.session_state[state.MODEL] = None  # the picker falls back to the first model left


@st.cache_resource(show_spinner=False)
def server_upload_limit() -> int:
    """The server's upload limit, set by the app itself: a config.toml in another working directory (or
    none: Streamlit's 200 MB) must not decide it. Read on every upload request, so it holds from now on.
    The first page of the server also logs its memory budget (gptviz.memory)."""
    from streamlit import config

    config.set_option("server.maxUploadSize", limits.CHECKPOINT_MAX_MB, "gptviz.limits")
    memory.budget()
    return limits.CHECKPOINT_MAX_MB


def uploader():
    """Open a checkpoint file from the student's computer: it joins this session's models only."""
    upload = st.sidebar.file_uploader(f"Open a checkpoint (.safetensors, up to {server_upload_limit()} MB)",
                                      type=["safetensors"], key=state.MODEL_UPLOAD,
                                      max_upload_size=limits.CHECKPOINT_MAX_MB)
    if upload is None or upload.file_id == st.session_state.get(state.MODEL_UPLOAD_ID):
        return
    st.session_state[state.MODEL_UPLOAD_ID] = upload.file_id
    name = Path(upload.name).stem
    try:
        if name not in state.uploaded_models() and len(state.uploaded_models()) >= limits.UPLOADS_PER_TAB:
            raise GptvizError(f"This tab already has {limits.UPLOADS_PER_TAB} files open: delete one you no longer "
                              "need (🗑️ under the model picker) to open another.")
        memory.check(OPEN_FACTOR * upload.size, "opening this file",
                     "Try again in a minute, or delete a model you no longer need (🗑️ in the sidebar).")
        ck = load_checkpoint(upload.getvalue())
    except GptvizError as e:
        st.sidebar.error(f"{upload.name}: {e}", icon="⚠️")
        return
    state.uploaded_models()[name] = ck
    st.session_state[state.MODEL] = str(ModelKey(ModelKey.UP, name))



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
