"""Data & tokens: pick a text and a tokenizer, see the text cut into tokens, and watch BPE learn."""

import streamlit as st

from gptviz import analysis, viz
from gptviz.data import MAX_TEXT_BYTES, MB
from gptviz.tokenizers import BPE_MAX_VOCAB, BPE_MIN_VOCAB
from ui import data, state
from ui.common import intro, student_errors
from ui.entry import require_app


def header():
    st.title("Data & tokens")
    intro("A language model never sees letters: it sees token ids. Pick a text and a tokenizer, then look at "
          "how the text is cut into tokens. Characters give a tiny vocabulary and long sequences; BPE merges "
          "frequent pairs into bigger tokens, so the same text needs fewer of them.")


def choices():
    """The text and tokenizer pickers (and the uploader when 'my own text' is picked)."""
    left, right = st.columns([1, 1])
    with left:
        st.radio("Text to learn from", list(data.CORPUS_LABELS), format_func=data.CORPUS_LABELS.get,
                 key=state.CORPUS, persist_state="session")
        if state.get(state.CORPUS) == state.UPLOAD:
            upload = st.file_uploader("Upload a plain-text file (UTF-8, up to 10 MB)", type=["txt"],
                                      max_upload_size=MAX_TEXT_BYTES // MB,
                                      key=state.Data.UPLOAD)
            error = data.take_upload(upload)
            if error:
                st.error(error, icon="⚠️")
            if state.get(state.UPLOADED_NAME):
                st.caption(f"Using **{state.get(state.UPLOADED_NAME)}**.")
    with right:
        st.radio("Tokenizer", list(data.TOKENIZER_LABELS), format_func=data.TOKENIZER_LABELS.get,
                 key=state.TOKENIZER, persist_state="session")
        if state.get(state.TOKENIZER) == "bpe":
            st.slider("BPE vocabulary size", BPE_MIN_VOCAB, BPE_MAX_VOCAB, step=64, key=state.BPE_VOCAB,
                      persist_state="session", help="256 byte tokens plus one token per learned merge.")


def numbers(tok, token_data, text_len):
    a, b, c, d = st.columns(4)
    a.metric("Characters", f"{text_len:,}")
    b.metric("Tokens", f"{token_data.num_tokens:,}")
    c.metric("Vocabulary", f"{tok.vocab_size:,}")
    d.metric("Characters per token", f"{text_len / token_data.num_tokens:.2f}")


def cut_text(tok, token_data):
    st.subheader("The text, cut into tokens")
    st.caption("Each coloured span is one token; hover to see its id.")
    if tok.kind != "char":
        st.caption("A token such as `<0xC3>` is one byte. BPE starts from the 256 possible bytes of UTF-8 text, in "
                   "which a letter beyond plain English takes two to four bytes (`ï` is `<0xC3><0xAF>`): until a "
                   "merge joins them, each byte is a token of its own.")
    st.html(f"<div style='max-height:260px;overflow-y:auto;font-family:monospace;line-height:1.6'>"
            f"{viz.token_html(tok, token_data.tokens[:600].tolist())}</div>")


def own_sentence(tok):
    with st.expander("Try your own sentence"):
        sample = st.text_input("Sentence", "The quick brown fox jumps over the lazy dog.", key=state.Data.SENTENCE,
                               persist_state="session")
        with student_errors():
            ids = tok.encode(sample, unknown="replace")
        st.html(viz.token_html(tok, ids))
        st.caption(f"{len(sample)} characters → {len(ids)} tokens: {ids[:40]}{' …' if len(ids) > 40 else ''}")


def frequent_tokens(tok, token_data):
    counts = analysis.token_counts(token_data.tokens, tok.vocab_size)
    top = analysis.top_tokens(counts, 20)
    st.plotly_chart(viz.token_frequency_chart([(tok.label(i), n) for i, n in top]), theme=None)


def bpe_replay(tok, text):
    st.subheader("Watch BPE learn, one merge at a time")
    st.caption("Training BPE repeatedly merges the most frequent pair of neighbouring tokens into a new token. "
               "Slide to replay the merges on a sentence.")
    data.start_replay(tok, text)
    sentence = st.text_input("Sentence to replay on", key=state.Data.REPLAY_SENTENCE)
    if not tok.merges:  # a slider from 0 to 0 is an error in Streamlit
        st.info("This text taught BPE no merge: no pair of neighbouring bytes occurs twice. Try a longer text.")
        return
    n = st.slider("Merges applied", 0, len(tok.merges), key=state.Data.REPLAY_N)
    replayed = tok.replay(sentence, n, unknown="replace")  # a typed odd character shows as U+FFFD, not an error
    st.html(viz.token_html(tok, replayed))
    st.caption(f"{len(sentence.encode())} bytes → {len(replayed)} tokens after {n} merges.")
    if n:
        a_id, b_id = tok.merges[n - 1]
        st.markdown(f"Merge #{n}: `{tok.label(a_id)}` + `{tok.label(b_id)}` → `{tok.label(256 + n - 1)}`")


def main():
    require_app()
    header()
    choices()
    with student_errors():
        chosen = data.chosen_data()
    if chosen is None:
        st.info("Upload a .txt file to continue, or pick a bundled text.")
        st.stop()
    _, token_data = chosen
    tok, text = token_data.tokenizer, data.chosen_text()[1]
    numbers(tok, token_data, len(text))
    cut_text(tok, token_data)
    own_sentence(tok)
    frequent_tokens(tok, token_data)
    if tok.kind == "bpe":
        bpe_replay(tok, text)


main()
