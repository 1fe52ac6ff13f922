"""The text a model's neurons are read on (its validation split), scanned once per model fingerprint."""

from __future__ import annotations

import hashlib

import streamlit as st
import torch

from gptviz import neurons
from gptviz.data import CORPORA, TokenData, corpus_text
from gptviz.errors import GptvizError

from . import state
from .models import ModelEntry


def _own_text(entry: ModelEntry) -> str | None:
    """The model's training text when the server has it: a bundled corpus or this session's upload."""
    if entry.corpus in CORPORA:
        return corpus_text(entry.corpus)
    if entry.corpus and entry.corpus == state.get(state.UPLOADED_NAME):
        return state.get(state.UPLOADED_TEXT)
    return None


@st.cache_resource(show_spinner=False, max_entries=16)
def _scan(fingerprint: str, text_digest: str, _model, _tokens: torch.Tensor) -> neurons.NeuronIndex:
    # keyed by the weights' and the text's hashes: read-only, so every session with this model shares it
    return neurons.scan(_model, _tokens)


def validation_tokens(entry: ModelEntry) -> torch.Tensor | None:
    """The validation split of the model's own text in its own tokens (at most neurons.MAX_TOKENS of it)."""
    text = _own_text(entry)
    if text is None:
        return None
    memo = st.session_state.setdefault(state.Neurons.TOKENS, {})
    key = (entry.corpus, hashlib.sha256(text.encode()).hexdigest()[:16], entry.tokenizer.kind,
           entry.tokenizer.vocab_size)
    if key not in memo:
        try:
            memo.clear()
            memo[key] = TokenData(text, entry.tokenizer).val[: neurons.MAX_TOKENS]
        except GptvizError:  # a text the tokenizer cannot read
            return None
    return memo[key]


def index(entry: ModelEntry, tokens: torch.Tensor) -> neurons.NeuronIndex:
    digest = hashlib.sha256(tokens.numpy().tobytes()).hexdigest()[:16]
    return _scan(neurons.fingerprint(entry.model), digest, entry.model, tokens)


def keep_choice(n_layer: int, n_neurons: int, strongest: int | None = None):
    """A remembered layer or neuron this model does not have goes back to the first layer / the strongest neuron."""
    if st.session_state.get(state.Neurons.LAYER) not in range(n_layer):
        st.session_state[state.Neurons.LAYER] = 0
    if strongest is not None and st.session_state.get(state.Neurons.NEURON) not in range(n_neurons):
        st.session_state[state.Neurons.NEURON] = strongest


def on_bar_click(top: list):
    """A click on one of the prompt's strongest neurons picks it."""
    points = (st.session_state.get(state.Neurons.BARS) or {}).get("selection", {}).get("points", [])
    if points and points[0].get("point_index") is not None:
        st.session_state[state.Neurons.NEURON] = top[points[0]["point_index"]][0]
