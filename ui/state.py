"""Every st.session_state key the app uses, with its default, in one place.

Pages read and write session state only through these names, so no page invents its own spelling.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import streamlit as st

from gptviz.sessions import Tab, TabStore

# data: which text and tokenizer the student chose on the Data page
CORPUS = "corpus"  # a bundled corpus name, or UPLOAD
UPLOAD = "upload"
UPLOADED_TEXT = "uploaded_text"  # the decoded text of the last good upload
UPLOADED_NAME = "uploaded_name"
UPLOADED_ID = "uploaded_id"  # the uploader's file id: a new upload replaces the text
TOKENIZER = "tokenizer_kind"  # "char", "gpt2" or "bpe"
BPE_VOCAB = "bpe_vocab"

# models: the runs trained in this tab and the model every inspection page shows
TAB = "tab"  # this tab's gptviz.sessions.Tab: its runs and uploads, kept on the server across a reload
TAB_ASKED = "tab_asked"  # the token the browser last asked to get back (see ui.store)
TAB_WIDGET = "tab_token"  # the component that reads the token from the tab's sessionStorage
MODEL = "model_key"  # key of the selected model (see ui.models); also the picker widget's key
DELETE_MODEL = "delete_model"  # the button that removes the picked run or opened file from this tab
LOADED = "loaded_checkpoints"  # checkpoint path -> (mtime, Checkpoint), this session's own copies
PROMPT = "prompt"  # the prompt shared by the inspection pages

DEFAULTS = {
    CORPUS: "tinyshakespeare",
    UPLOADED_TEXT: None,
    UPLOADED_NAME: None,
    UPLOADED_ID: None,
    TOKENIZER: "char",
    BPE_VOCAB: 512,
    MODEL: None,
    PROMPT: None,
}


def init():
    """Fill in defaults once per session (call at the top of app.py)."""
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)
    st.session_state.setdefault(LOADED, {})
    st.session_state.setdefault(TAB_ASKED, None)
    if TAB not in st.session_state or not tabs().touch(tab()):  # new, or its runs expired
        st.session_state[TAB] = tabs().new()
    heartbeat()


def get(key):
    return st.session_state.get(key, DEFAULTS.get(key))


def put(key, value):
    st.session_state[key] = value


_run_ids = itertools.count(1)


@dataclass
class Run:
    """One training run of this session: the trainer owns the model and its history."""

    name: str
    trainer: object  # gptviz.train.Trainer
    tokenizer: object
    corpus: str
    preset: str
    id: int = field(default_factory=lambda: next(_run_ids))
    batch: int = 0  # runs started by one click (the ladder) share a batch
    saved_as: str | None = None
    announced: bool = False  # has the picker switched to it since it finished?


@st.cache_resource(show_spinner=False)
def tabs() -> TabStore:
    """Every tab's runs on this server (kept GPTVIZ_RUNS_TTL_HOURS after the tab was last seen)."""
    return TabStore(on_drop=lambda tab: [r.trainer.stop() for r in tab.runs.values() if not r.trainer.done])


def tab() -> Tab:
    return st.session_state[TAB]


def heartbeat():
    """This tab is still open: its unfinished runs keep training (see Trainer.abandon_after_s)."""
    tabs().touch(tab())
    for run in tab().runs.values():
        if not run.trainer.done:
            run.trainer.heartbeat()


def runs() -> dict[int, Run]:
    return tab().runs


def uploaded_models() -> dict:
    return tab().uploads
