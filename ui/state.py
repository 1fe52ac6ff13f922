"""Every st.session_state key the app uses, with its default, in one place.

Pages and ui/ modules read and write session state only through these names (widget keys included), so no
page invents its own spelling; each page's keys start with its name. tests/test_state_keys.py checks that no
other file spells a key.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
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
MODEL_UPLOAD = "model_upload"  # the sidebar's uploader of checkpoint files
MODEL_UPLOAD_ID = "model_upload_id"  # the uploader's file id last opened: a new file replaces it
CAPTURES = "captures"  # (model, prompt) -> activation cache, this session's memo (ui.common)
FINGERPRINTS = "model_fingerprints"  # (model key, model object) -> hash of its weights, this session's memo
# (ui.common: head-detector scores are shared by every session that looks at the same weights)
TIMELINE_MODELS = "timeline_models"  # this session's models rebuilt from snapshots (ui.timeline)
TIMELINE = "timeline_steps"  # page -> (model key, step): where each page's training-step slider stands


def prompt_widget(page: str) -> str:
    """Each page's own prompt box (the text itself is shared: PROMPT)."""
    return f"prompt_{page}"


def timeline_widget(page: str) -> str:
    """Each page's training-step slider."""
    return f"{page}_timeline"


def train_setting(name: str) -> str:
    """A Train page slider's key, train_<setting>: also its query parameter in a shared link."""
    return f"train_{name}"


class Data:
    """The Data & tokens page."""
    UPLOAD = "data_upload"
    SENTENCE = "data_sentence"
    REPLAY_SENTENCE = "data_replay_sentence"
    REPLAY_N = "data_replay_n"
    REPLAY_FOR = "data_replay_for"  # the tokenizer the replay widgets were last set for


class Train:
    """The Train page (ui.training)."""
    ERROR = "train_error"  # a message from the last Start click
    SAVED = "train_saved"  # ("ok" | "error", message) from the last Save click
    START, PAUSE, STOP, LADDER, RETRY = "train_start", "train_pause", "train_stop", "train_ladder", "train_retry"
    LIVE_CHART = "train_live_chart"
    SAVE_NAME, SAVE, DOWNLOAD = "train_save_name", "train_save", "train_download"
    COMPARE, COMPARE_BATCH = "train_compare", "train_compare_batch"  # the runs compared; the batch that chose them
    SUMMARY = "train_summary"
    SAVE_NAME_FOR = "train_save_name_for"  # the run whose name the save box was last filled with
    SEEDS = "train_seeds"  # the button that repeats the last runs with two more seeds
    COMPARE_CHART = "train_compare_chart"
    VERDICT_A, VERDICT_B = "train_verdict_a", "train_verdict_b"  # the two rows (seed groups) the verdict compares
    LINK_NOTES = "train_link_notes"  # what a shared link asked for outside the page's ranges, and what was used


class Attention:
    """The Attention page (ui.attention)."""
    REPLACE = "attention_replace_unknown"
    N_NEW, TEMPERATURE, SEED = "attention_n_new", "attention_temperature", "attention_seed"
    GENERATED, GENERATED_FOR, STEP = "attention_generated", "attention_generated_for", "attention_step"
    GENERATE_ERROR = "attention_generate_error"
    LAYER, HEAD, CELL = "attention_layer", "attention_head", "attention_cell"
    QUERY, KEY = "attention_query", "attention_key"
    GRID_MEMO, HEAD_MEMO = "attention_grid_figure", "attention_head_figure"
    GENERATE, DOWNLOAD, DETECTORS = "attention_generate", "attention_download", "attention_detectors"
    GRID_CHART, ROW_CHART, COLUMN_CHART = "attention_grid_chart", "attention_row_chart", "attention_column_chart"
    REPEAT = "attention_repeat"  # the button that appends a copy of the prompt
    # the training timeline's phase change: its figures (memo) and charts
    PHASE_MEMO = "attention_phase_figures"
    PHASE_HEADS, PHASE_LOSS, PHASE_ICL = "attention_phase_heads", "attention_phase_loss", "attention_phase_icl"


class Embeddings:
    """The Embeddings page."""
    DIMS, COLOUR, TOP_N = "embeddings_dims", "embeddings_colour", "embeddings_top_n"
    TOKEN, K = "embeddings_token", "embeddings_k"
    OCCURRING = "embeddings_occurring"  # plot only the tokens that occur in the training text
    COUNTS = "embeddings_counts"  # (corpus, tokenizer, vocab) -> token counts, this session's own memo
    TOKENS_CHART = "embeddings_tokens_chart"
    POSITIONS_CHART = "embeddings_positions_chart"
    NEIGHBOURS_CHART = "embeddings_neighbours_chart"


class NextToken:
    """The Next token page (ui.next_token)."""
    UNDO = "next_token_undo"  # [(prompt before, prompt after)] of the tokens appended here, newest last
    SAMPLE = "next_token_sample"  # the last "Sample N tokens" result, for the prompt it was made from
    REQUEST = "next_token_request"  # a sampling button's request, served by the next script run
    BARS, PICK, TOP_K = "next_token_bars", "next_token_pick", "next_token_top_k"
    TEMPERATURE, TOP_P, SEED = "next_token_temperature", "next_token_top_p", "next_token_seed"
    COMPARE, RAW_BARS = "next_token_compare", "next_token_raw_bars"
    APPEND, SAMPLE_ONE, SAMPLE_MANY = "next_token_append", "next_token_sample_one", "next_token_sample_many"
    UNDO_BUTTON = "next_token_undo_button"


class Layers:
    """The Inside-the-layers page (ui.layers)."""
    POSITION = "layers_position"
    POSITION_FOR = "layers_position_for"  # the prompt length the position slider was last drawn for
    ABLATE = "layers_ablate"
    LENS, NORMS = "layers_lens", "layers_norms"
    BARS_BEFORE, BARS_AFTER = "layers_bars_before", "layers_bars_after"


class Compare:
    """The Compare page."""
    A, B = "compare_a", "compare_b"
    LOSS, TEMPERATURE = "compare_loss", "compare_temperature"

    @staticmethod
    def grid(side: str) -> str:
        return f"compare_grid_{side}"

    @staticmethod
    def bars(side: str) -> str:
        return f"compare_bars_{side}"

# the lesson and its pages: one head step by step, the averaging trick, MLP neurons
LARGE_TEXT = "large_text"  # the projector switch: every page in larger type


class Lesson:
    """The lesson page (ui.lesson)."""
    GO = "lesson_go"  # the page a step's button asked for (its callback cannot switch pages itself)
    DONE = "lesson_done"  # the title of the step whose button was pressed last

    @staticmethod
    def card(n: int) -> str:
        return f"lesson_step_{n}"

    @staticmethod
    def button(n: int) -> str:
        return f"lesson_go_{n}"


class HeadSteps:
    """The One-head-step-by-step page."""
    LAYER, HEAD, QUERY = "steps_layer", "steps_head", "steps_query"
    FOCUS = "steps_focus"  # the step of the head's computation that is highlighted

    @staticmethod
    def box(step: str) -> str:
        return f"steps_box_{step}"

    @staticmethod
    def chart(name: str) -> str:
        return f"steps_{name}_chart"


class Averaging:
    """The averaging-trick page."""
    TOY = "averaging_toy"  # the toy T x C tensor the student edits
    T, C, NEW = "averaging_T", "averaging_C", "averaging_new"
    SEED = "averaging_seed"  # the toy's random seed ("New random numbers" adds one)
    SHAPE = "averaging_shape"  # (T, C, seed) the toy was made for

    @staticmethod
    def editor(T: int, C: int, seed: int) -> str:  # a new shape or seed: a new editor, its edits cleared
        return f"averaging_editor_{T}_{C}_{seed}"

    @staticmethod
    def weights(version: int) -> str:
        return f"averaging_weights_{version}"


class Neurons:
    """The MLP-neurons page (ui.neurons)."""
    LAYER, NEURON, BARS = "neurons_layer", "neurons_neuron", "neurons_bars"
    TOKENS = "neurons_tokens"  # the validation tokens of this session's model, memo

class Classroom:
    """The Class page, the sidebar's follow switch and push button, and the questions (ui.classroom)."""
    START, JOIN, LEAVE, END = "classroom_start", "classroom_join", "classroom_leave", "classroom_end"
    CODE, NAME = "classroom_code", "classroom_name"  # what the student types to join
    ERROR = "classroom_error"  # a message from the last click
    GROUP_BY, HIDE, HIDE_BUTTON, SHOW_BUTTON = "classroom_group_by", "classroom_hide", "classroom_hide_button", "classroom_show_button"
    CLEAR, CSV, CHART, TABLE, GROUPS = "classroom_clear", "classroom_csv", "classroom_chart", "classroom_table", "classroom_groups"
    POST, MINE = "classroom_post", "classroom_mine"  # post finished runs (default on); my runs on the board
    FOLLOW, PUSH, PUSHED = "classroom_follow", "classroom_push", "classroom_pushed"
    ASK, REVEAL, ANSWER, SUBMIT = "classroom_ask", "classroom_reveal", "classroom_answer", "classroom_submit"
    TYPED = "classroom_typed"  # a character typed as the guess
    GRID_PICK, LAYER, HEAD = "classroom_grid_pick", "classroom_layer", "classroom_head"
    REVEAL_CHART = "classroom_reveal_chart"


DEFAULTS = {
    CORPUS: "tinyshakespeare",
    UPLOADED_TEXT: None,
    UPLOADED_NAME: None,
    UPLOADED_ID: None,
    TOKENIZER: "char",
    BPE_VOCAB: 512,
    MODEL: None,
    PROMPT: None,
    LARGE_TEXT: False,
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
    settings: dict = field(default_factory=dict)  # gptviz.runs.settings_of: what the name and the table show
    colour: str = "#0072B2"  # one per run, kept on every chart it appears in
    data: object = None  # gptviz.data.TokenData it trained on: a repeat with other seeds uses the same text
    group: int | None = None  # runs that differ only in their seed share a group (the first run's id)

    def __post_init__(self):
        if self.group is None:
            self.group = self.id


# What happens to a dropped tab's runs, by who registered it: ui/training stops its trainings (or leaves a
# training others share). A registry, so that this module, which every ui module imports, imports none of them.
ON_TAB_DROP: dict[str, Callable[[Tab], None]] = {}


@st.cache_resource(show_spinner=False)
def tabs() -> TabStore:
    """Every tab's runs on this server (kept GPTVIZ_RUNS_TTL_HOURS after the tab was last seen)."""
    return TabStore(on_drop=_tab_dropped)


def _tab_dropped(tab: Tab):
    for then in list(ON_TAB_DROP.values()):
        then(tab)


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
