"""Every st.session_state key the app uses, with its default, in one place.

Pages read and write session state only through these names, so no page invents its own spelling.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import streamlit as st

# data: which text and tokenizer the student chose on the Data page
CORPUS = "corpus"  # a bundled corpus name, or UPLOAD
UPLOAD = "upload"
UPLOADED_TEXT = "uploaded_text"  # the decoded text of the last good upload
UPLOADED_NAME = "uploaded_name"
UPLOADED_ID = "uploaded_id"  # the uploader's file id: a new upload replaces the text
TOKENIZER = "tokenizer_kind"  # "char", "gpt2" or "bpe"
BPE_VOCAB = "bpe_vocab"

# models: the runs trained in this session and the model every inspection page shows
RUNS = "runs"  # run id -> Run
MODEL = "model_key"  # key of the selected model (see ui.models); also the picker widget's key
UPLOADED_MODELS = "uploaded_models"  # name -> Checkpoint opened from the student's own file
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
    st.session_state.setdefault(RUNS, {})
    st.session_state.setdefault(LOADED, {})
    st.session_state.setdefault(UPLOADED_MODELS, {})


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


def runs() -> dict[int, Run]:
    return st.session_state[RUNS]
