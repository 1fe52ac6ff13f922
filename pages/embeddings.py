"""Embeddings: tokens as points (PCA), position similarity, and a token's nearest neighbours."""

import html
from collections import OrderedDict

import streamlit as st

from gptviz import analysis, viz
from gptviz.data import CORPORA, corpus_text
from ui.common import inspected, intro, keep
from ui.entry import require_app
from ui.state import Embeddings

# Keys of this page's widgets and state (all start with "embeddings_").
BIG_VOCAB = 1000  # above this many tokens, only a subset is plotted
COLOURS = {"class": "kind of character", "frequency": "frequency in the training text"}


def header():
    st.title("Embeddings")
    intro("The model's first step turns every token into a vector it learned, and every position into another one. "
          "Squashed to 2 or 3 dimensions, tokens the model uses alike end up close together: look for vowels, "
          "capitals and punctuation in their own corners, then ask which tokens are a letter's nearest neighbours.")


def corpus_counts(entry, vocab):
    """How often each token occurs in the model's training text, or None when that text is not bundled."""
    if entry.corpus not in CORPORA:
        return None
    memo: OrderedDict = st.session_state.setdefault(Embeddings.COUNTS, OrderedDict())
    key = (entry.corpus, id(entry.tokenizer), vocab)
    if key not in memo:
        with st.spinner(f"Counting the tokens of {entry.corpus}…"):
            memo[key] = analysis.token_counts(entry.tokenizer.encode(corpus_text(entry.corpus)), vocab)
        while len(memo) > 4:
            memo.popitem(last=False)
    memo.move_to_end(key)
    return memo[key]


def plotted_tokens(entry, vocab, counts, column) -> list[int]:
    """Every token of a small vocabulary; a slider's worth of the most frequent ones of a big one."""
    if vocab <= BIG_VOCAB:
        if counts is None or not (counts == 0).any():
            return list(range(vocab))
        st.session_state.setdefault(Embeddings.OCCURRING, True)
        if column.toggle("Only tokens in the text", key=Embeddings.OCCURRING, persist_state="session",
                         help="Byte tokens that never occur in the training text never moved from where they "
                              "started: they pile up in one blob."):
            return [i for i in range(vocab) if counts[i] > 0]
        return list(range(vocab))
    keep(Embeddings.TOP_N, lambda v: isinstance(v, int) and 100 <= v <= min(vocab, 5000), 500)
    top_n = column.slider("Tokens to plot", 100, min(vocab, 5000), step=100, key=Embeddings.TOP_N, persist_state="session",
                          help="Thousands of points hide each other: the plot shows a part of the vocabulary.")
    shown = [] if counts is None else [i for i, _ in analysis.top_tokens(counts, top_n)]
    if shown:
        subset_note = f"the {len(shown)} most frequent tokens in {entry.corpus}"
    else:
        shown = list(range(top_n))
        subset_note = f"the first {top_n} token ids"
    st.caption(f"This vocabulary has {vocab:,} tokens; the plot shows {subset_note} (PCA of those tokens only).")
    return shown


def token_points(entry, wte, counts) -> list[int]:
    """The token scatter with its projection and colour pickers; returns the ids plotted."""
    st.subheader("Token embeddings")
    tok, vocab = entry.tokenizer, wte.shape[0]
    c1, c2, c3 = st.columns([1, 2, 1])
    st.session_state.setdefault(Embeddings.DIMS, 2)
    dims = c1.radio("Projection", [2, 3], format_func=lambda k: f"{k}-D", key=Embeddings.DIMS, persist_state="session",
                    horizontal=True, help="PCA keeps the directions along which the embeddings differ most.")
    if counts is not None:
        st.session_state.setdefault(Embeddings.COLOUR, "class")
        colour = c2.radio("Colour by", list(COLOURS), format_func=COLOURS.get, key=Embeddings.COLOUR, persist_state="session",
                          horizontal=True)
    else:
        colour = "class"
        c2.caption(f"Coloured by kind of character: this model's training text ({entry.corpus or 'unknown'}) is not "
                   "a bundled corpus, so its token frequencies are not known here.")
    shown = plotted_tokens(entry, vocab, counts, c3)

    labels = [tok.label(i) for i in shown]
    coords, explained = analysis.pca(wte[shown], k=dims)
    if colour == "frequency":
        colour_by, colour_title = counts[shown].tolist(), "count"
    else:
        colour_by, colour_title = [analysis.char_class(label) for label in labels], "class"
    fig = viz.embedding_scatter(coords, labels, colour_by, explained=explained, ids=shown, colour_title=colour_title,
                                title=f"{len(shown)} token embeddings ({wte.shape[1]} numbers each), {dims}-D PCA")
    st.plotly_chart(fig, theme=None, width="stretch", key=Embeddings.TOKENS_CHART)
    shares = [f"{100 * float(r):.0f}%" for r in explained]
    st.caption(f"The {dims} axes keep {100 * float(explained.sum()):.0f}% of the embeddings' variance "
               f"({' + '.join(shares)}); the rest is squashed flat, so two points can look close and still differ. "
               "Hover a point for its token.")
    return shown


def positions(model):
    st.subheader("Position embeddings")
    if model.wpe is None:
        st.info("This model has no learned position embeddings (pos_embd is off): without them, attention "
                "cannot tell *where* a token is, only what it is.", icon="📍")
        return
    wpe = model.wpe.weight.detach()
    sim = analysis.cosine_similarity_matrix(wpe)
    st.plotly_chart(viz.similarity_heatmap(sim, [str(i) for i in range(len(wpe))]), theme=None, width="stretch",
                    key=Embeddings.POSITIONS_CHART)
    st.caption("Each square compares two positions' vectors: 1 (red) is the same direction, 0 unrelated. The "
               "diagonal is always 1. After training, a band along it shows that neighbouring positions got "
               "similar vectors, so the model knows roughly where a token sits; a fresh model shows only the "
               "diagonal.")


def neighbours(tok, wte, shown):
    st.subheader("Nearest neighbours")
    default = next((i for i in shown if tok.label(i) == "e"), None)
    if default is None:
        default = next((i for i in shown if analysis.char_class(tok.label(i)) == "lowercase"), shown[0])
    keep(Embeddings.TOKEN, lambda v: v in shown, default)
    token = st.selectbox("Token", shown, format_func=lambda i: f"{tok.label(i)}   (id {i})", key=Embeddings.TOKEN,
                         persist_state="session", help="Type to search.")
    st.session_state.setdefault(Embeddings.K, 10)
    k = st.slider("How many neighbours", 3, 30, key=Embeddings.K, persist_state="session")
    found = analysis.nearest_neighbours(wte, token, k=k)
    title = f"Closest to “{html.escape(tok.label(token), quote=False)}” (cosine)"
    st.plotly_chart(viz.neighbours_bars([(tok.label(i), cos) for i, cos in found], title=title),
                    theme=None, width="stretch", key=Embeddings.NEIGHBOURS_CHART)
    st.caption("Cosine similarity compares directions in all the embedding's dimensions, not just the plotted "
               "ones. Does a lowercase letter sit next to its capital, or next to other vowels?")


def main():
    require_app()
    header()
    entry = inspected("embeddings")  # the one place the model is chosen: every view below reads it
    wte = entry.model.wte.weight.detach()
    counts = corpus_counts(entry, wte.shape[0])
    shown = token_points(entry, wte, counts)
    left, right = st.columns(2)
    with left:
        positions(entry.model)
    with right:
        neighbours(entry.tokenizer, wte, shown)


main()
