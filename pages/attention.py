"""Attention: every head at once, the head detectors, one head up close, and attention for generated tokens."""

import html

import streamlit as st

from gptviz import analysis, detectors, viz
from ui import classroom, state
from ui.attention import follow_newest, generate_tokens, on_cell_click, own_generated, repeat_prompt
from ui.common import (capture, clamp, fit_prompt, head_scores, inspected, intro, keep, last_figure,
                       prompt_ids)
from ui.entry import require_app
from ui.models import identity
from ui.phases import phase_change
from ui.state import Attention


def header():
    st.title("Attention")
    intro("Each head of each layer decides, for every token, how much to look at each earlier token: one row of "
          "a pattern is one token's attention and adds up to 1. Type your own prompt and look for heads that "
          "watch the previous token, the start of a word or the first token; then let the model write a few "
          "tokens and step through them.")


def no_attention_note():
    st.info("This model is a bigram model: it has no attention layers, so each token predicts the next one "
            "from itself alone and never looks back. Train a model with attention (for example the "
            "*single head* preset) on the **Train** page, or pick another model in the sidebar.", icon="👀")


def generation(entry, all_ids: list[int], prompt: list[int], owner: tuple) -> list[int]:
    """The 'let the model write' expander; returns the generated tokens shown (up to the step slider).

    `all_ids` is the whole prompt, `prompt` the part of it the model sees next to the tokens it wrote."""
    block = entry.model.config.block_size
    most = block - 1  # at least one prompt token stays in the window
    with st.expander("Let the model write: attention for generated tokens", expanded=bool(st.session_state[Attention.GENERATED])):
        if most < 1:
            st.info(f"This model's window holds {block} token: there is no room to write.")
        else:
            c1, c2, c3 = st.columns(3)
            clamp(Attention.N_NEW, 1, most, min(20, most))
            n_new = c1.number_input(f"Tokens to write (1–{most})", min_value=1, max_value=most, step=1,
                                    key=Attention.N_NEW, persist_state="session",
                                    help=f"The model sees at most {block} tokens: a longer prompt is cut from the "
                                         "start to leave room for the new ones.")
            st.session_state.setdefault(Attention.TEMPERATURE, 1.0)
            c2.slider("Temperature", 0.0, 2.0, step=0.1, key=Attention.TEMPERATURE, persist_state="session",
                      help="0 always takes the most likely token; higher values take more risks.")
            st.session_state.setdefault(Attention.SEED, 1337)
            c3.number_input("Random seed", min_value=0, max_value=2**31 - 1, step=1, key=Attention.SEED,
                            persist_state="session", help="The same seed gives the same tokens.")
            st.button(f"Generate {int(n_new)} tokens", key=Attention.GENERATE, icon="✍️", on_click=generate_tokens,
                      args=(entry.model, all_ids, owner))
            if Attention.GENERATE_ERROR in st.session_state:
                st.error(st.session_state.pop(Attention.GENERATE_ERROR), icon="⚠️")
        generated = st.session_state[Attention.GENERATED]
        if not generated:
            return []
        clamp(Attention.STEP, 0, len(generated), len(generated))
        step = st.slider("Step through the generated tokens", 0, len(generated), key=Attention.STEP,
                         on_change=follow_newest, args=(len(prompt),),
                         help="0 shows the prompt alone. The model reads the prompt and the first tokens it wrote; "
                              "the newest one is the query row highlighted below.")
    return generated[:step]


def repeat_button(entry, ids: list[int]):
    block = entry.model.config.block_size
    st.button("Repeat the prompt", key=Attention.REPEAT, icon="🔁", on_click=repeat_prompt,
              args=(entry.tokenizer, ids, block), disabled=block < 2,
              help=f"Appends a copy of the prompt (its last {block // 2} tokens twice, when it is longer: both "
                   "copies fit the window). A head that jumps from each token of the copy to the token after its "
                   "first occurrence draws a stripe below the diagonal: an induction head.")


def token_strip(tok, prompt: list[int], shown: list[int]):
    st.html(viz.token_html(tok, prompt))
    generated = st.session_state[Attention.GENERATED]
    if generated:
        st.caption(f"…then the model wrote ({len(shown)} of {len(generated)} tokens shown):")
        if shown:
            st.html(viz.token_html(tok, shown))
    st.caption(f"{len(prompt) + len(shown)} tokens; hover a token for its id.")


def every_head(entry, patterns, labels, view, scores):
    cfg = entry.model.config
    st.subheader(f"All {cfg.n_layer * cfg.n_head} heads at once")
    st.caption("Rows are queries (the token looking), columns are keys (the tokens looked at); bright means a large "
               "weight. Everything right of the diagonal is empty: a token cannot see the future. A bright line just "
               "below the diagonal is a *previous token* head; a bright first column is a head resting on the first "
               "token.")
    badges = detectors.label_heads(scores)  # e.g. "prev", "sink", "induction"
    grid = last_figure(Attention.GRID_MEMO, (view, tuple(badges.items())),
                       lambda: viz.attention_grid(patterns, labels, detector_badges=badges))
    st.plotly_chart(grid, theme=None, width="stretch", key=Attention.GRID_CHART)
    st.download_button("Download this grid (HTML)", data=lambda: viz.figure_to_html(grid),
                       file_name="attention-grid.html", mime="text/html", key=Attention.DOWNLOAD,
                       on_click="ignore", icon="⬇️",
                       help="An interactive page that opens offline (about 5 MB: plotly.js is inside).")


def detector_table(cfg, scores):
    with st.expander("Head detectors: what is each head doing?"):
        st.markdown("\n".join(f"- **{d.badge}** — {d.caption}" for d in detectors.REGISTRY.values()))
        st.caption(f"Scores from 0 to 1, measured on this model: {detectors.measured_on()}. A badge on the grid "
                   f"marks a score of {detectors.DEFAULT_THRESHOLD} or more. Induction heads need two layers: "
                   "train a 1-layer and a 2-layer model and compare.")
        st.dataframe({"head": [f"L{l} H{h}" for l in range(cfg.n_layer) for h in range(cfg.n_head)],
                      **{name: [round(float(v), 2) for v in scores[name].flatten()] for name in detectors.REGISTRY}},
                     hide_index=True, key=Attention.DETECTORS)


@st.fragment
def head_up_close(patterns, labels, view):
    """Picking a head or a cell reruns only this part: the grid above is not sent again."""
    n_layer, n_head, T = patterns.shape[0], patterns.shape[1], patterns.shape[2]
    st.subheader("One head up close")
    c1, c2 = st.columns(2)
    keep(Attention.LAYER, lambda v: v in range(n_layer), 0)
    layer = c1.selectbox("Layer", list(range(n_layer)), format_func=lambda i: f"layer {i}", key=Attention.LAYER,
                         persist_state="session")
    keep(Attention.HEAD, lambda v: v in range(n_head), 0)
    head = c2.selectbox("Head", list(range(n_head)), format_func=lambda i: f"head {i}", key=Attention.HEAD,
                        persist_state="session")
    positions = list(range(T))
    name = lambda i: f"{i}: {labels[i]}"  # noqa: E731
    keep(Attention.QUERY, lambda v: v in positions, T - 1)
    keep(Attention.KEY, lambda v: v in positions, 0)
    query = c1.select_slider("Query token (the one looking)", positions, format_func=name, key=Attention.QUERY,
                             persist_state="session")
    key = c2.select_slider("Key token (the one looked at)", positions, format_func=name, key=Attention.KEY,
                           persist_state="session")

    pattern = patterns[layer, head]
    left, right = st.columns([1, 1])
    with left:
        st.caption(f"Layer {layer}, head {head}. Click a cell to pick its query (row) and key (column).")
        chart = last_figure(Attention.HEAD_MEMO, (view, layer, head, query, key),
                            lambda: viz.attention_head_chart(pattern, labels, query=query, key=key))
        st.vega_lite_chart(chart, on_select=on_cell_click, selection_mode="cell", key=Attention.CELL, theme=None)
    with right:
        q_label, k_label = html.escape(labels[query], quote=False), html.escape(labels[key], quote=False)
        st.plotly_chart(viz.attention_row_bars(pattern[query], labels, f"Where does query {query}:{q_label} look?",
                                               highlight=key, height=250), theme=None, width="stretch",
                        key=Attention.ROW_CHART)
        st.plotly_chart(viz.attention_row_bars(pattern[:, key], labels, f"Who looks at key {key}:{k_label}?",
                                               highlight=query, height=250), theme=None, width="stretch",
                        key=Attention.COLUMN_CHART)
        st.caption("The first chart is one row of the pattern (it adds up to 1); the second is one column: "
                   "only tokens at or after the key can look at it.")


def main():
    require_app()
    header()
    entry = inspected("attention")  # the one place the model is chosen: every view below reads it
    model, tok = entry.model, entry.tokenizer
    if model.config.n_layer == 0:
        no_attention_note()
        st.stop()

    all_ids = prompt_ids(entry, page="attention", replace_key=Attention.REPLACE, fit=False)
    repeat_button(entry, all_ids)
    owner = (state.get(state.MODEL), tuple(all_ids))  # the model at any timeline step keeps the tokens it wrote
    generated = own_generated(owner)
    prompt = fit_prompt(entry, all_ids, room=len(generated))  # the window holds the prompt and the new tokens
    shown = generation(entry, all_ids, prompt, owner)
    ids = prompt + shown
    labels = [tok.label(i) for i in ids]
    token_strip(tok, prompt, shown)

    _, cache = capture(entry, ids)
    patterns = analysis.attention_for(cache, model.config.n_layer)  # (n_layer, n_head, T, T)
    view = (entry.key, identity(model), tuple(ids))  # what every figure below depends on, besides its own pickers
    scores = head_scores(entry)
    every_head(entry, patterns, labels, view, scores)
    classroom.head_question(model.config.n_layer, model.config.n_head, scores["previous_token"],
                            state.get(state.MODEL), state.get(state.PROMPT))  # in a class: predict, then reveal
    detector_table(model.config, scores)
    head_up_close(patterns, labels, view)
    phase_change(entry)


main()
