import html

import streamlit as st

from gptviz import analysis, detectors, viz
from gptviz.errors import GptvizError
from gptviz.generate import generate
from ui import models, timeline
from ui.common import capture, encode_prompt, head_scores, intro, prompt_input, student_errors
from ui.entry import require_app

require_app()
st.title("Attention")
intro("Each head of each layer decides, for every token, how much to look at each earlier token: one row of "
      "a pattern is one token's attention and adds up to 1. Type your own prompt and look for heads that "
      "watch the previous token, the start of a word or the first token; then let the model write a few "
      "tokens and step through them.")

# Keys of this page's widgets and state (all start with "attention_").
REPLACE = "attention_replace_unknown"
N_NEW, TEMPERATURE, SEED = "attention_n_new", "attention_temperature", "attention_seed"
GENERATED, GENERATED_FOR, STEP = "attention_generated", "attention_generated_for", "attention_step"
GENERATE_ERROR = "attention_generate_error"
LAYER, HEAD, CELL = "attention_layer", "attention_head", "attention_cell"
QUERY, KEY = "attention_query", "attention_key"

# The one place the model is chosen: every view below reads `entry` (and `model`, `tok` from it).
entry = models.current()
if entry is None:
    st.stop()
entry = timeline.pick(entry, page="attention")
model, tok = entry.model, entry.tokenizer
cfg = model.config

if cfg.n_layer == 0:
    st.info("This model is a bigram model: it has no attention layers, so each token predicts the next one "
            "from itself alone and never looks back. Train a model with attention (for example the "
            "*single head* preset) on the **Train** page, or pick another model in the sidebar.", icon="👀")
    st.stop()


def _keep(key, valid, default):
    """Put a valid value in a widget's state before the widget is drawn (its options depend on the prompt)."""
    if key not in st.session_state or not valid(st.session_state[key]):
        st.session_state[key] = default


def _last(name, key, make):
    """The figure made for `key` last time, or a new one: reruns that change nothing it shows skip building it."""
    memo = st.session_state.get(name)
    if memo is None or memo[0] != key:
        memo = st.session_state[name] = (key, make())
    return memo[1]


def _clamp(key, low, high, default):
    value = st.session_state.get(key, default)
    try:
        value = min(max(value, low), high)
    except TypeError:
        value = default
    st.session_state[key] = value


# ----------------------------------------------------------------------------- the text the model reads

text = prompt_input(entry, page="attention")
replace = False
if tok.kind == "char":
    replace = st.checkbox("Replace characters the model never saw", key=REPLACE, persist_state="session",
                          help=f"Characters outside the model's vocabulary become {tok.replacement!r}.")
with student_errors():
    prompt_ids = encode_prompt(entry, text, replace_unknown=replace)

# Generated tokens belong to one model and one prompt: anything else clears them.
owner = (entry.key, id(model), tuple(prompt_ids))
if st.session_state.get(GENERATED_FOR) != owner:
    st.session_state[GENERATED] = []
    st.session_state[GENERATED_FOR] = owner


def _generate(model, prompt_ids, owner):
    """The Generate button's callback: it runs before the page, so the new tokens show in this very run."""
    try:
        new = generate(model, prompt_ids, int(st.session_state[N_NEW]),
                       temperature=float(st.session_state[TEMPERATURE]), seed=int(st.session_state[SEED]))
    except GptvizError as e:
        st.session_state[GENERATE_ERROR] = str(e)
        return
    st.session_state[GENERATED], st.session_state[GENERATED_FOR] = new, owner
    st.session_state[STEP] = len(new)
    st.session_state[QUERY] = len(prompt_ids) + len(new) - 1  # the newest token asks


def _follow_newest(prompt_length):
    """Moving the step slider makes the newest token the query."""
    st.session_state[QUERY] = prompt_length + st.session_state[STEP] - 1


room = cfg.block_size - len(prompt_ids)
with st.expander("Let the model write: attention for generated tokens", expanded=bool(st.session_state[GENERATED])):
    if room < 1:
        st.info(f"The prompt already fills the model's window of {cfg.block_size} tokens: shorten it to "
                "leave room for new tokens.")
    else:
        c1, c2, c3 = st.columns(3)
        _clamp(N_NEW, 1, room, min(20, room))
        n_new = c1.number_input(f"Tokens to write (1–{room})", min_value=1, max_value=room, step=1, key=N_NEW,
                                persist_state="session",
                                help=f"The model sees at most {cfg.block_size} tokens, prompt included.")
        st.session_state.setdefault(TEMPERATURE, 1.0)
        c2.slider("Temperature", 0.0, 2.0, step=0.1, key=TEMPERATURE, persist_state="session",
                  help="0 always takes the most likely token; higher values take more risks.")
        st.session_state.setdefault(SEED, 1337)
        c3.number_input("Random seed", min_value=0, max_value=2**31 - 1, step=1, key=SEED, persist_state="session",
                        help="The same seed gives the same tokens.")
        st.button(f"Generate {int(n_new)} tokens", key="attention_generate", icon="✍️", on_click=_generate,
                  args=(model, prompt_ids, owner))
        if GENERATE_ERROR in st.session_state:
            st.error(st.session_state.pop(GENERATE_ERROR), icon="⚠️")
    generated = st.session_state[GENERATED]
    step = 0
    if generated:
        _clamp(STEP, 0, len(generated), len(generated))
        step = st.slider("Step through the generated tokens", 0, len(generated), key=STEP,
                         on_change=_follow_newest, args=(len(prompt_ids),),
                         help="0 shows the prompt alone. The model reads the prompt and the first tokens it wrote; "
                              "the newest one is the query row highlighted below.")

ids = prompt_ids + generated[:step]
labels = [tok.label(i) for i in ids]
T = len(ids)

st.html(viz.token_html(tok, prompt_ids))
if generated:
    st.caption(f"…then the model wrote ({step} of {len(generated)} tokens shown):")
    if step:
        st.html(viz.token_html(tok, generated[:step]))
st.caption(f"{T} tokens; hover a token for its id.")

_, cache = capture(entry, ids)
patterns = analysis.attention_for(cache, cfg.n_layer)  # (n_layer, n_head, T, T)

# ----------------------------------------------------------------------------- every head at once

st.subheader(f"All {cfg.n_layer * cfg.n_head} heads at once")
st.caption("Rows are queries (the token looking), columns are keys (the tokens looked at); bright means a large "
           "weight. Everything right of the diagonal is empty: a token cannot see the future. A bright line just "
           "below the diagonal is a *previous token* head; a bright first column is a head resting on the first token.")
view = (entry.key, id(model), tuple(ids))  # what every figure below depends on, besides its own pickers
scores = head_scores(entry)
badges = detectors.label_heads(scores)  # e.g. "prev", "sink", "induction"
grid = _last("attention_grid_figure", (view, tuple(badges.items())),
             lambda: viz.attention_grid(patterns, labels, detector_badges=badges))
st.plotly_chart(grid, theme=None, width="stretch", key="attention_grid_chart")
st.download_button("Download this grid (HTML)", data=lambda: viz.figure_to_html(grid),
                   file_name="attention-grid.html", mime="text/html", key="attention_download", on_click="ignore",
                   icon="⬇️", help="An interactive page that opens offline (about 5 MB: plotly.js is inside).")

with st.expander("Head detectors: what is each head doing?"):
    st.markdown("\n".join(f"- **{detectors.BADGES[name]}** — {text}" for name, text in detectors.DETECTORS.items()))
    st.caption("Scores from 0 to 1, measured on this model: previous-token and first-token on its own training "
               "text, duplicate and induction on random tokens repeated twice. A badge on the grid marks a "
               "score of 0.4 or more. Induction heads need two layers: train a 1-layer and a 2-layer model "
               "and compare.")
    st.dataframe({"head": [f"L{l} H{h}" for l in range(cfg.n_layer) for h in range(cfg.n_head)],
                  **{name: [round(float(v), 2) for v in scores[name].flatten()] for name in detectors.DETECTORS}},
                 hide_index=True, key="attention_detectors")


# ----------------------------------------------------------------------------- one head up close


def _cells(event) -> list[tuple[int, int]]:
    """(query, key) pairs of a click on the head chart, read defensively from the chart's selection state."""
    try:
        selection = event["selection"] if isinstance(event, dict) else getattr(event, "selection", None)
        cells = selection.get("cell") if hasattr(selection, "get") else None
    except (KeyError, TypeError):
        return []
    if isinstance(cells, dict):  # some versions give {"query": [..], "key": [..]}
        q, k = cells.get("query"), cells.get("key")
        cells = [{"query": a, "key": b} for a, b in zip(q, k)] if isinstance(q, list) and isinstance(k, list) \
            else [cells]
    out = []
    for cell in cells or []:
        try:
            out.append((int(float(cell["query"])), int(float(cell["key"]))))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _on_click():
    cells = _cells(st.session_state.get(CELL))
    if cells:
        st.session_state[QUERY], st.session_state[KEY] = cells[-1]


@st.fragment
def head_up_close(patterns, labels, view):
    """Picking a head or a cell reruns only this part: the grid above is not sent again."""
    n_layer, n_head, T = patterns.shape[0], patterns.shape[1], patterns.shape[2]
    st.subheader("One head up close")
    c1, c2 = st.columns(2)
    _keep(LAYER, lambda v: v in range(n_layer), 0)
    layer = c1.selectbox("Layer", list(range(n_layer)), format_func=lambda i: f"layer {i}", key=LAYER,
                         persist_state="session")
    _keep(HEAD, lambda v: v in range(n_head), 0)
    head = c2.selectbox("Head", list(range(n_head)), format_func=lambda i: f"head {i}", key=HEAD,
                        persist_state="session")
    positions = list(range(T))
    name = lambda i: f"{i}: {labels[i]}"  # noqa: E731
    _keep(QUERY, lambda v: v in positions, T - 1)
    _keep(KEY, lambda v: v in positions, 0)
    query = c1.select_slider("Query token (the one looking)", positions, format_func=name, key=QUERY,
                             persist_state="session")
    key = c2.select_slider("Key token (the one looked at)", positions, format_func=name, key=KEY,
                           persist_state="session")

    pattern = patterns[layer, head]
    left, right = st.columns([1, 1])
    with left:
        st.caption(f"Layer {layer}, head {head}. Click a cell to pick its query (row) and key (column).")
        chart = _last("attention_head_figure", (view, layer, head, query, key),
                      lambda: viz.attention_head_chart(pattern, labels, query=query, key=key))
        st.vega_lite_chart(chart, on_select=_on_click, selection_mode="cell", key=CELL, theme=None)
    with right:
        q_label, k_label = html.escape(labels[query], quote=False), html.escape(labels[key], quote=False)
        st.plotly_chart(viz.attention_row_bars(pattern[query], labels, f"Where does query {query}:{q_label} look?",
                                               highlight=key, height=250), theme=None, width="stretch",
                        key="attention_row_chart")
        st.plotly_chart(viz.attention_row_bars(pattern[:, key], labels, f"Who looks at key {key}:{k_label}?",
                                               highlight=query, height=250), theme=None, width="stretch",
                        key="attention_column_chart")
        st.caption("The first chart is one row of the pattern (it adds up to 1); the second is one column: "
                   "only tokens at or after the key can look at it.")


head_up_close(patterns, labels, view)
