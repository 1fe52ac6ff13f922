"""Small pieces every page uses: the intro line, student-facing errors, the prompt, the capture."""

from __future__ import annotations

import contextlib
import hashlib
from collections import OrderedDict

import streamlit as st
import torch

from gptviz import detectors
from gptviz.data import CORPORA, corpus_text
from gptviz.errors import GptvizError
from gptviz.generate import fit_to_window

from . import models, state, timeline
from .models import ModelEntry, identity

FALLBACK_PROMPT = "ROMEO:\nBut soft, what light through yonder window breaks?"


def intro(text: str):
    """Two or three sentences for students: what they see here and what to try."""
    st.caption(text)


@contextlib.contextmanager
def student_errors():
    """Show a GptvizError as a message for the student and stop this run; the session keeps everything."""
    try:
        yield
    except GptvizError as e:
        st.error(str(e), icon="⚠️")
        st.stop()


def default_prompt(model: ModelEntry) -> str:
    """A line from the model's own training text: its characters are in the vocabulary."""
    if model.corpus in CORPORA:
        text = corpus_text(model.corpus)
        val = text[int(len(text) * 0.9):]  # a line the model did not train on
        for line in val.splitlines():
            if 30 <= len(line) <= 60:
                return line
    return FALLBACK_PROMPT


def prompt_input(model: ModelEntry, page: str, label: str = "Prompt") -> str:
    """A prompt box whose text follows the student from page to page."""
    key = state.prompt_widget(page)
    if state.get(state.PROMPT) is None:
        state.put(state.PROMPT, default_prompt(model))
    st.session_state[key] = state.get(state.PROMPT)  # each page has its own widget; the text is shared
    st.text_area(label, key=key, height=80, on_change=lambda: state.put(state.PROMPT, st.session_state[key]))
    return state.get(state.PROMPT)


def tokenize_prompt(model: ModelEntry, text: str, replace_unknown: bool = False) -> list[int]:
    """Every token id of the prompt (GptvizError for an empty prompt or characters the model never saw)."""
    if not text:
        raise GptvizError("The prompt is empty: type a few characters.")
    tok = model.tokenizer
    ids = tok.encode(text, unknown="replace" if replace_unknown else "error")
    if not ids:
        raise GptvizError("The prompt gives no tokens: type a few characters.")
    return ids


def fit_prompt(model: ModelEntry, ids: list[int], room: int = 0) -> list[int]:
    """The prompt's last tokens that fit the model's window (leaving `room` for new ones), saying so when cut."""
    block = model.model.config.block_size
    fitted = fit_to_window(ids, block, room)
    if len(fitted) < len(ids):  # one note for every page: the student sees what the model sees
        st.info(f"The prompt has {len(ids)} tokens; this model sees at most {block} (its block_size)"
                + (f", {room} of them for the tokens it writes" if room else "")
                + f", so only the last {len(fitted)} are used.", icon="✂️")
    return fitted


def encode_prompt(model: ModelEntry, text: str, replace_unknown: bool = False, room: int = 0) -> list[int]:
    """Token ids of the prompt, cut to the model's window (and saying so)."""
    return fit_prompt(model, tokenize_prompt(model, text, replace_unknown), room)




def capture(model: ModelEntry, ids: list[int]):
    """run_with_cache, remembered per session for the last few (model, prompt) pairs."""
    memo: OrderedDict = st.session_state.setdefault(state.CAPTURES, OrderedDict())
    key = (model.key, identity(model.model), tuple(ids))
    if key not in memo:
        memo[key] = model.model.run_with_cache(torch.tensor([ids]))
        while len(memo) > 8:
            memo.popitem(last=False)
    memo.move_to_end(key)
    return memo[key]


def fingerprint(model: ModelEntry) -> str:
    """A hash of the weights, once per model object and session: equal weights give equal keys in every session."""
    memo: OrderedDict = st.session_state.setdefault(state.FINGERPRINTS, OrderedDict())
    key = (model.key, identity(model.model))
    if key not in memo:
        digest = hashlib.sha1()
        for name, tensor in model.model.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        memo[key] = digest.hexdigest()
        while len(memo) > 8:
            memo.popitem(last=False)
    return memo[key]


def detector_tokens(corpus: str, tokenizer, prompt: str) -> torch.Tensor | None:
    """The real text head detectors read: the end of the model's corpus (else the prompt), as token ids."""
    text = corpus_text(corpus)[-20_000:] if corpus in CORPORA else prompt
    try:
        return torch.tensor(tokenizer.encode(text))
    except GptvizError:  # a corpus the tokenizer cannot read: random sequences only
        return None


@st.cache_resource(max_entries=32, show_spinner="Finding out what each head does…")
def _shared_head_scores(weights: str, corpus: str, _model, _tokenizer, prompt: str) -> dict:
    # read-only tensors, shared by every session that looks at the same weights (the bundled model, say)
    return detectors.head_scores(_model, tokens=detector_tokens(corpus, _tokenizer, prompt))


def head_scores(model: ModelEntry) -> dict:
    """Detector scores of every head (previous token, sink, duplicate, induction), once per set of weights."""
    return _shared_head_scores(fingerprint(model), model.corpus, model.model, model.tokenizer, default_prompt(model))


# ----------------------------------------------------------------------------- widget helpers shared by the pages


def keep(key, valid, default):
    """Put a valid value in a widget's state before the widget is drawn (its options depend on model and prompt)."""
    if key not in st.session_state or not valid(st.session_state[key]):
        st.session_state[key] = default


def clamp(key, low, high, default):
    """Keep a number widget's remembered value inside its current range."""
    value = st.session_state.get(key, default)
    try:
        value = min(max(value, low), high)
    except TypeError:
        value = default
    st.session_state[key] = value


def last_figure(name, key, make):
    """The figure made for `key` last time, or a new one: reruns that change nothing it shows skip building it."""
    memo = st.session_state.get(name)
    if memo is None or memo[0] != key:
        memo = st.session_state[name] = (key, make())
    return memo[1]


def replace_unknown_box(model: ModelEntry, key: str) -> bool:
    """A 'replace unknown characters' checkbox for character models; False (and nothing drawn) for others."""
    tok = model.tokenizer
    if not tok.closed_vocabulary:  # every text has ids: nothing to replace
        return False
    return st.checkbox("Replace characters the model never saw", key=key, persist_state="session",
                       help=f"Characters outside the model's vocabulary become {tok.replacement!r}.")


def prompt_ids(model: ModelEntry, page: str, replace_key: str | None = None, fit: bool = True) -> list[int]:
    """The shared prompt box, the replace box and the prompt's token ids (stops the run with a message if unusable).

    The ids are cut to the model's window, with the note, unless `fit` is False (the page fits them itself)."""
    text = prompt_input(model, page=page)
    replace = replace_unknown_box(model, key=replace_key or f"{page}_replace")
    with student_errors():
        return encode_prompt(model, text, replace) if fit else tokenize_prompt(model, text, replace)


def inspected(page: str) -> ModelEntry:
    """The model an inspection page shows (at the training step its timeline slider picks); stops if there is none."""
    entry = models.current()
    if entry is None:
        st.stop()
    return timeline.pick(entry, page=page)
