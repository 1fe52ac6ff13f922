"""The text and tokenizer chosen on the Data page, tokenized once and shared with the Train page."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import streamlit as st

from gptviz import tokenizers
from gptviz.data import CHUNK_LENGTHS, CORPORA, REPEATED_CORPUS, TokenData, corpus_text, load_text
from gptviz.errors import GptvizError

from . import state

CORPUS_LABELS = {"tinyshakespeare": "Tiny Shakespeare (1.1 MB)", "wizard_of_oz": "Dorothy and the Wizard in Oz (0.2 MB)",
                 REPEATED_CORPUS: "Repeated Shakespeare: chunks of %d–%d characters, each said twice (2.3 MB)" % CHUNK_LENGTHS,
                 state.UPLOAD: "My own text (upload a .txt)"}


class _KindTitles(Mapping):
    """{kind: title} read from the tokenizer registry each time, so a kind registered later appears too."""

    def __getitem__(self, kind: str) -> str:
        return tokenizers.KINDS[kind].title or kind

    def __iter__(self):
        return iter(list(tokenizers.KINDS))

    def __len__(self) -> int:
        return len(tokenizers.KINDS)


TOKENIZER_LABELS = _KindTitles()  # the Data page's choices and the Train page's caption


def chosen_text() -> tuple[str, str] | None:
    """(name, text) of the chosen corpus, or None when 'upload' is chosen but nothing was uploaded."""
    corpus = state.get(state.CORPUS)
    if corpus == state.UPLOAD:
        text = state.get(state.UPLOADED_TEXT)
        return None if text is None else (state.get(state.UPLOADED_NAME), text)
    return corpus, corpus_text(corpus)


@st.cache_resource(show_spinner="Tokenizing the text…", max_entries=8)
def _token_data(digest: str, kind: str, vocab_size: int | None, _text: str) -> TokenData:
    # keyed by the text's hash: read-only, so sessions with the same text may share it
    return TokenData.from_text(_text, kind, vocab_size)


def chosen_data() -> tuple[str, TokenData] | None:
    """(corpus name, tokenized text) for the current choice; raises GptvizError on unusable text."""
    chosen = chosen_text()
    if chosen is None:
        return None
    name, text = chosen
    kind = state.get(state.TOKENIZER)
    wants_size = kind in tokenizers.KINDS and "vocab_size" in tokenizers.KINDS[kind].options
    vocab = state.get(state.BPE_VOCAB) if wants_size else None
    # a bundled text by its name, an upload by its content: an upload *named* like a bundled text is still an upload
    bundled = state.get(state.CORPUS) != state.UPLOAD and name in CORPORA
    digest = f"corpus:{name}" if bundled else "upload:" + hashlib.sha256(text.encode()).hexdigest()
    return name, _token_data(digest, kind, vocab, text)


def take_upload(upload) -> str | None:
    """Keep a newly uploaded file's text (the previous good upload stays if it is unusable); an error or None."""
    if upload is None or upload.file_id == state.get(state.UPLOADED_ID):
        return None
    try:
        text = load_text(upload.getvalue())
    except GptvizError as e:
        return f"{upload.name}: {e}"
    state.put(state.UPLOADED_TEXT, text)
    state.put(state.UPLOADED_NAME, upload.name)
    state.put(state.UPLOADED_ID, upload.file_id)
    return None


REPLAY_SENTENCE, REPLAY_N, REPLAY_FOR = state.Data.REPLAY_SENTENCE, state.Data.REPLAY_N, state.Data.REPLAY_FOR
REPLAY_MERGES = 20  # merges applied when the replay starts


def replay_sentence(tok, text: str) -> str:
    """A line of the text on which the first few merges already join many bytes: the replay shows them at once."""
    lines = [line for line in text[:50_000].splitlines() if 20 <= len(line) <= 80][:300]
    if not lines:
        return text[:80].split("\n")[0] or "hello"
    n = min(len(tok.merges), 5)
    return max(lines, key=lambda line: 1 - len(tok.replay(line, n)) / len(line.encode()))


def start_replay(tok, text: str):
    """A new tokenizer (another text, an upload, another vocabulary size) starts the replay afresh, so that
    its sentence box, its slider and what they show always agree."""
    if st.session_state.get(REPLAY_FOR) != id(tok):
        st.session_state[REPLAY_SENTENCE] = replay_sentence(tok, text)
        st.session_state[REPLAY_N] = min(len(tok.merges), REPLAY_MERGES)
        st.session_state[REPLAY_FOR] = id(tok)
    st.session_state[REPLAY_N] = min(st.session_state[REPLAY_N], len(tok.merges))
