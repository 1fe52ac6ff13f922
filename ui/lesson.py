"""The lesson that walks the lecture: its steps (data, in one place) and what a step's button sets up.

A button cannot switch pages from its callback, so the callback sets everything up and leaves the
page to open in state.Lesson.GO; the lesson page switches there on the rerun that follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from . import models, state, training
from .state import HeadSteps, Lesson, Neurons
from .common import head_scores

LESSON_PAGE = "pages/lesson.py"
BUNDLED = f"ckpt:{models.DEFAULT_CHECKPOINT}"
PROMPT = "ROMEO:\nBut soft, what light through yonder window breaks?"
REPEATED = "We are accounted poor citizens.\nWe are accounted poor citizens."  # fits the 64-token window
INDUCTION = f"ckpt:{models.INDUCTION_CHECKPOINT}"
INDUCTION_PROMPT = "We are accountedWe are accounted"  # two copies fill the model's 32-token window


@dataclass(frozen=True)
class Step:
    title: str
    text: str  # two or three sentences of the lecture
    look_for: str
    page: str  # the page file the button opens
    button: str
    settings: dict = field(default_factory=dict)  # session-state key -> value, set before the page opens
    preset: str | None = None  # a Train-page preset to load
    head: str | None = None  # a detector: open the model's strongest head of that kind
    head_widgets: tuple[str, str] = (HeadSteps.LAYER, HeadSteps.HEAD)  # the page's layer and head pickers


STEPS: list[Step] = [
    Step("The text as numbers",
         "A language model never sees letters, only token ids. With a character tokenizer, tiny Shakespeare "
         "becomes a list of numbers from 0 to 64, one per character.",
         "Hover a token for its id. How many different tokens (the vocabulary) does the text have?",
         "pages/data.py", "Open Data & tokens with Shakespeare, characters",
         {state.CORPUS: "tinyshakespeare", state.TOKENIZER: "char"}),
    Step("A bigram, and what it cannot know",
         "The simplest model is a table: the current token alone predicts the next one. It learns which "
         "letter tends to follow which, but it cannot know anything that came earlier.",
         "Press **Train**: the loss falls from the random guess ln(65) ≈ 4.17 to about 2.5 and stops there. "
         "The sample has English-looking letter pairs but no words.",
         "pages/train.py", "Load the bigram preset on Train",
         {state.CORPUS: "tinyshakespeare", state.TOKENIZER: "char"}, preset="bigram"),
    Step("Averaging the past",
         "To use the past, each token can take the average of itself and every token before it. The "
         "lecture writes this four ways: a loop, a matrix product with a lower-triangular matrix, a "
         "softmax of masked zeros — and then learned scores instead of zeros.",
         "Edit the toy numbers: versions 1–3 stay equal; version 4 weighs the past unevenly.",
         "pages/averaging.py", "Open the averaging trick"),
    Step("One head",
         "Self-attention replaces the fixed average with learned weights: every token sends a query, every "
         "earlier token a key and a value, and q·k decides how much of each value to take.",
         "Move the query through the prompt and follow the numbers: the softmax is the pattern's row, the "
         "weighted sum is the head's output. This head mostly looks one token back.",
         "pages/head_steps.py", "Open the bundled model's previous-token head, step by step",
         {state.MODEL: BUNDLED, state.PROMPT: PROMPT}, head="previous_token"),
    Step("Many heads",
         "Several smaller heads side by side can each look for something different; their outputs are "
         "concatenated and projected back into the residual stream.",
         "In the grid, find heads that watch the previous token (a bright line under the diagonal) and heads "
         "resting on the first token (a bright first column).",
         "pages/attention.py", "Open every head of the bundled model",
         {state.MODEL: BUNDLED, state.PROMPT: PROMPT}),
    Step("Blocks, residuals and LayerNorm",
         "A block is attention (communication) followed by an MLP (computation). Residual connections and "
         "LayerNorm let such blocks stack deep and still train.",
         "Train the *blocks* preset, then switch off *residual connections* or *LayerNorm* under the model "
         "sliders and train again: the loss falls slower or blows up.",
         "pages/train.py", "Load the blocks preset on Train",
         {state.CORPUS: "tinyshakespeare", state.TOKENIZER: "char"}, preset="blocks"),
    Step("What the MLP neurons fire on",
         "Each block's MLP has 4 × n_embd neurons. Some fire on one character, some on the end of a word or "
         "a line; their top contexts in the text show what each one detects.",
         "Pick a neuron from the bars and read its top contexts: the highlighted token is where it fired.",
         "pages/neurons.py", "Open the bundled model's neurons",
         {state.MODEL: BUNDLED, state.PROMPT: PROMPT, Neurons.LAYER: 0}),
    Step("The full GPT and what its heads learned",
         "Four wider blocks make nanoGPT's CPU 'baby' GPT, the bundled model. Head detectors measure what "
         "each head does: previous-token heads, attention sinks, and induction heads, which continue a "
         "pattern seen earlier in the prompt.",
         "The grid's badges name the heads with a clear job; its strongest previous-token head is up close. "
         "The prompt repeats a line, yet no head jumps back to the first copy: open *Head detectors* — the "
         "induction column stays near 0. A short run on plain Shakespeare does not grow an induction head; "
         "the next step shows one that did.",
         "pages/attention.py", "Open the bundled GPT on a repeated line",
         {state.MODEL: BUNDLED, state.PROMPT: REPEATED}, head="previous_token",
         head_widgets=(state.Attention.LAYER, state.Attention.HEAD)),
    Step("An induction head forms",
         "Trained on text where every chunk is said twice, a two-layer model with one head a layer learns to "
         "copy: the previous-token head in layer 0 writes 'the token before me' into each position, and the "
         "induction head in layer 1 "
         "looks for the token after the previous copy of the current one. It forms suddenly — a phase change "
         "in the loss — and from then on the model predicts a repeated sequence from the prompt itself "
         "(in-context learning).",
         "Up close is the induction head: in the repeated line each token looks at the token after its first "
         "copy, a stripe below the diagonal. Layer 0's head, the one feeding it, looks mostly one token back "
         "(the *previous_token* column under *Head detectors*). At the bottom, the timeline charts show the "
         "induction score jumping and the loss dropping at the same step; slide the training step back before "
         "it and the stripe is gone. To grow one yourself: the *induction* preset on the Train page (about a "
         "minute).",
         "pages/attention.py", "Open the induction model on a repeated line",
         {state.MODEL: INDUCTION, state.PROMPT: INDUCTION_PROMPT}, head="induction",
         head_widgets=(state.Attention.LAYER, state.Attention.HEAD)),
]


def strongest_head(model_key: str, detector: str) -> tuple[int, int]:
    """(layer, head) of the model's highest-scoring head for a detector."""
    scores = head_scores(models.entry(model_key))[detector]
    best = int(scores.flatten().argmax())
    return divmod(best, scores.shape[1])


def set_up(step: Step):
    """A step button's on_click: settings, preset and head first; the page opens on the next run."""
    for key, value in step.settings.items():
        st.session_state[key] = value
    if step.preset is not None:
        training.init_defaults()
        st.session_state[state.train_setting("preset")] = step.preset
        training.apply_preset()
    if step.head is not None:
        layer, head = strongest_head(step.settings.get(state.MODEL, state.get(state.MODEL)), step.head)
        for key, value in zip(step.head_widgets, (layer, head)):
            st.session_state[key] = value
        st.session_state.pop(HeadSteps.QUERY, None)  # the pages start at the last token
        st.session_state.pop(state.Attention.QUERY, None)
    st.session_state[Lesson.DONE] = step.title
    st.session_state[Lesson.GO] = step.page


def follow():
    """Open the page a step button asked for (call near the top of the lesson page)."""
    page = st.session_state.pop(Lesson.GO, None)
    if page is not None:
        st.switch_page(page)


# Larger type for a projector: the main area and the sidebar are zoomed as a whole, charts included.
_LARGE_CSS = ("<style>[data-testid=stMainBlockContainer], [data-testid=stSidebarContent] {zoom: 1.3;}</style>")


def projector_switch():
    """The sidebar's 'larger text' switch, on every page (created after st.navigation, see app.py)."""
    st.sidebar.toggle("Larger text (projector)", key=state.LARGE_TEXT,
                      help="Everything on the page 30% larger, for a classroom projector.")
    if state.get(state.LARGE_TEXT):
        st.html(_LARGE_CSS)
