"""The class together: this tab's seat in a class, the callbacks of the Class page, the sidebar's follow switch
and push button, and the questions on the Next token and Attention pages (engine: gptviz.classroom).

A tab's seat lives on its server-side Tab (gptviz.sessions), so a reload keeps the class; the teacher's link
(?class=CODE&teacher=SECRET) gives the teacher's rights back in any tab.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import streamlit as st
from streamlit.errors import StreamlitAPIException

from gptviz import classroom as cr
from gptviz import viz
from gptviz.classroom import Classroom, ClassroomError
from gptviz.tokenizers import visible
from gptviz.train import Status

from . import models, state
from .common import keep
from .state import Attention, HeadSteps
from .state import Classroom as K

PAGE = "pages/classroom.py"
REFRESH_S = 1.0  # the board's and the followers' polling: a push reaches a student within ~1-2 s
FOLLOWED = ((Attention.LAYER, "layer"), (Attention.HEAD, "head"), (Attention.QUERY, "query"),
            (HeadSteps.LAYER, "layer"), (HeadSteps.HEAD, "head"), (HeadSteps.QUERY, "query"))


@dataclass
class Seat:
    """This tab in a class: as a student (secret None) or as its teacher."""

    code: str
    student: str  # an id of this seat alone, never the tab's token
    name: str
    secret: str | None = None
    applied: int = 0  # the last pushed version this tab applied
    follow: bool = True  # the sidebar's Follow the teacher (kept here: a page switch or reload keeps it)
    pending: tuple | None = None  # (page, version) of a push this page could not follow by itself (Train)
    tries: int = 0  # times the newest push was applied without showing yet (see follow_teacher)
    posted: dict = field(default_factory=dict)  # run id -> board entry id (None: not on the board)
    answers: dict = field(default_factory=dict)  # question id -> this student's answer


@st.cache_resource(show_spinner=False)
def room() -> Classroom:
    """Every class on this server (memory only: a server restart ends them)."""
    return Classroom()


def seat() -> Seat | None:
    """This tab's seat, or None; a seat in a class that has ended is let go."""
    s = state.tab().seat
    if s is not None and room().find(s.code) is None:
        state.tab().seat = None
        st.session_state[K.ERROR] = f"Class {s.code} has ended."
        return None
    return s


def teacher(s: Seat | None) -> bool:
    return s is not None and s.secret is not None and room().is_teacher(s.code, s.secret)


def spaced(code: str) -> str:
    return f"{code[:3]} {code[3:]}"


def _fail(e: ClassroomError):
    st.session_state[K.ERROR] = str(e)


# ---- joining and leaving ---------------------------------------------------------------------------

def start():
    """on_click of Start a class."""
    try:
        code, secret = room().open()
    except ClassroomError as e:
        return _fail(e)
    state.tab().seat = Seat(code, secrets.token_hex(8), "teacher", secret)
    st.session_state[K.ERROR] = None


def join():
    """on_click of Join: the typed code and display name."""
    student = secrets.token_hex(8)
    try:
        r = room().join(st.session_state.get(K.CODE), student, st.session_state.get(K.NAME))
    except ClassroomError as e:
        return _fail(e)
    s = Seat(r.code, student, r.students[student])
    s.posted = {run.id: None for run in state.runs().values()}  # runs from before the class stay off the board
    state.tab().seat = s
    st.session_state[K.ERROR] = None


def from_link():
    """The Class page's link: ?class=CODE fills in the code; with &teacher=SECRET this tab teaches that class."""
    code, secret = st.query_params.get("class"), st.query_params.get("teacher")
    if code and K.CODE not in st.session_state:
        st.session_state[K.CODE] = str(code)[:3 * cr.CODE_LENGTH]
    if secret and state.tab().seat is None and room().is_teacher(code, secret):
        state.tab().seat = Seat(room().find(code).code, secrets.token_hex(8), "teacher", str(secret))


def leave():
    s = state.tab().seat
    if s is not None:
        room().leave(s.code, s.student)
    state.tab().seat = None


def end():
    s = state.tab().seat
    try:
        room().end(s.code, s.secret)
    except ClassroomError as e:
        return _fail(e)
    state.tab().seat = None


def teacher_link(s: Seat) -> str:
    """The link that gives the teacher's rights (keep it private)."""
    query = urlencode({"class": s.code, "teacher": s.secret})
    return f"{base_url()}/classroom?{query}"


def student_link(s: Seat) -> str:
    return f"{base_url()}/classroom?{urlencode({'class': s.code})}"


def base_url() -> str:
    parts = urlsplit(st.context.url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""


# ---- the board -------------------------------------------------------------------------------------

def val_loss(run) -> float | None:
    h = run.trainer.history
    return h["val_loss"][-1] if run.trainer.status == Status.FINISHED and h["val_loss"] else None


def post_finished(s: Seat):
    """Put this tab's runs that finished since the last look on the board (when the student lets them)."""
    for run in list(state.runs().values()):
        if run.id in s.posted or not run.trainer.done:
            continue
        s.posted[run.id] = None
        if st.session_state.get(K.POST, True) and val_loss(run) is not None:
            post(s, run)


def post(s: Seat, run):
    try:
        s.posted[run.id] = room().post(s.code, s.student, s.name, run.settings, val_loss(run),
                                       run.trainer.model.num_params(), run.trainer.elapsed_s)
    except ClassroomError as e:
        _fail(e)


def my_runs_changed():
    """on_change of 'My runs on the board': post the ones ticked, take back the ones unticked."""
    s, wanted = seat(), set(st.session_state.get(K.MINE) or [])
    for run_id, entry in list(s.posted.items()):
        run = state.runs().get(run_id)
        if run_id in wanted and entry is None and run is not None and val_loss(run) is not None:
            post(s, run)
        elif run_id not in wanted and entry is not None:
            room().withdraw(s.code, s.student, entry)
            s.posted[run_id] = None


def group_changed():
    s = seat()
    try:
        room().group(s.code, s.secret, st.session_state[K.GROUP_BY])
    except ClassroomError as e:
        _fail(e)


def hide(shown: bool):
    """on_click of Hide / Show for the run picked in the teacher's list."""
    s = seat()
    try:
        room().hide(s.code, s.secret, st.session_state.get(K.HIDE), hidden=not shown)
    except ClassroomError as e:
        _fail(e)


def clear():
    s = seat()
    try:
        room().clear(s.code, s.secret)
    except ClassroomError as e:
        _fail(e)


# ---- follow me ---------------------------------------------------------------------------------------

def page_name(page) -> str:
    """The url path of st.navigation's current page ('' is the default page: the lesson)."""
    return getattr(page, "url_path", "") or "lesson"


def push(page: str):
    """on_click of Push to class: this page, model, prompt and layer/head/query go to every follower."""
    s = seat()
    model = state.get(state.MODEL)
    shareable = model if model and models.ModelKey.parse(model).kind == models.ModelKey.CKPT else None
    picks = {name: st.session_state.get(key) for key, name in FOLLOWED[:3]}
    if page == "head_steps":
        picks = {name: st.session_state.get(key) for key, name in FOLLOWED[3:]}
    try:
        version = room().push(s.code, s.secret, page=page, model=shareable, prompt=state.get(state.PROMPT), **picks)
    except ClassroomError as e:
        return _fail(e)
    st.session_state[K.PUSHED] = (version, shareable is not None or model is None)


def follow_teacher(page: str):
    """Before the sidebar's widgets (app.py): apply what the teacher pushed last, once per push; the
    student's own runs and settings stay as they are."""
    from_link()
    s = seat()
    if s is None or s.secret is not None or not s.follow:
        return
    f = room().following(s.code)
    if f.version <= s.applied or (s.pending == (f.page, f.version) and page != f.page):
        return  # nothing new, or it waits for the student to open the teacher's page (the sidebar's link)
    if _shown(f, page) or s.tries >= MAX_TRIES:
        s.applied, s.pending, s.tries = f.version, None, 0
        return
    s.tries += 1  # applied below; the follower's next poll checks that the page drew it, else applies it again
    if f.model is not None and f.model in models.choices():
        st.session_state[state.MODEL] = state.tab().model = f.model  # the tab's too: a reload keeps it
        for run in state.runs().values():  # the push wins over the picker's switch to a run just finished
            run.announced = run.announced or run.trainer.done
    if f.prompt:
        state.put(state.PROMPT, f.prompt)
    for key, name in FOLLOWED:
        if getattr(f, name) is not None:
            st.session_state[key] = getattr(f, name)
    s.pending = None
    if f.page is not None and f.page != page:
        try:
            st.switch_page(f"pages/{f.page}.py")
        except StreamlitAPIException:  # the Train page's sliders are bound to its link: it cannot be left so;
            s.applied, s.pending = f.version - 1, (f.page, f.version)  # applied again once the student opens it


PAGE_KEYS = {"attention": "attention_", "head_steps": "steps_"}  # url path -> the prefix of its FOLLOWED keys
MAX_TRIES = 3  # a push the page cannot show (a head the model lacks) is given up after this many reruns


def _shown(f, page: str) -> bool:
    """Whether the last run drew the push: its page, model and that page's own selection. A page's first run
    after a switch can still hold the student's previous model for a moment, and clamp the head to it."""
    if f.page is not None and f.page != page or f.model is not None and st.session_state.get(state.MODEL) != f.model:
        return False
    own = [(k, n) for k, n in FOLLOWED if k.startswith(PAGE_KEYS.get(page, "-"))]
    return all(getattr(f, n) is None or st.session_state.get(k) == getattr(f, n) for k, n in own)


def sidebar(page: str):
    """In a class: who and where, the teacher's push button or the student's follow switch (after the picker)."""
    s = seat()
    if s is None:
        return
    post_finished(s)
    box = st.sidebar.container(border=True)
    if teacher(s):
        box.markdown(f"🏫 **Class {spaced(s.code)}** · teacher")
        box.button("📣 Push this view to the class", key=K.PUSH, on_click=push, args=(page,), width="stretch",
                   help="Every student who follows you gets this page, model, prompt and layer/head.")
        pushed = st.session_state.get(K.PUSHED)
        if pushed:
            box.caption(f"Pushed (#{pushed[0]})." + ("" if pushed[1] else " Your own runs stay on your screen: "
                                                      "save the run to push its model."))
        return
    box.markdown(f"🏫 **Class {spaced(s.code)}** · {s.name}")
    if s.pending is not None and s.follow:
        box.page_link(f"pages/{s.pending[0]}.py", label="Open the teacher's page", icon="📣")
    st.session_state[K.FOLLOW] = s.follow
    box.toggle("Follow the teacher", key=K.FOLLOW, on_change=_follow_changed, args=(s,),
               help="Open what the teacher pushes. Your runs and settings stay; switch off to explore alone.")
    if s.follow:
        with st.sidebar:
            _watch(s)


def _follow_changed(s: Seat):
    s.follow = bool(st.session_state[K.FOLLOW])  # on again: the teacher's latest push applies at once


@st.fragment(run_every=REFRESH_S)
def _watch(s: Seat):
    """A follower looks for a new push every second; a new one reruns the whole app, which applies it."""
    version = room().following(s.code).version if room().find(s.code) is not None else 0
    if version > s.applied and (s.pending is None or version > s.pending[1]):
        st.rerun(scope="app")


# ---- questions ------------------------------------------------------------------------------------------

def open_question(kind: str):
    """The newest question of this kind, while a class is on (None otherwise)."""
    s = seat()
    q = room().question(s.code) if s is not None else None
    return (s, q) if q is not None and q.kind == kind else (s, None)


def ask_token(prompt: str, model: str | None, choices: list, page: str):
    """on_click of the teacher's Ask: 'which token comes next?', and the class follows to this prompt."""
    s = seat()
    try:
        room().ask(s.code, s.secret, cr.TOKEN, prompt, model=model, choices=choices)
        push(page)
    except ClassroomError as e:
        _fail(e)


def ask_head(prompt: str, model: str | None, grid: tuple[int, int], scores: list, page: str):
    s = seat()
    try:
        room().ask(s.code, s.secret, cr.HEAD, prompt, model=model, grid=grid, scores=scores)
        push(page)
    except ClassroomError as e:
        _fail(e)


def reveal(question: int):
    s = seat()
    try:
        room().reveal(s.code, s.secret, question)
    except ClassroomError as e:
        _fail(e)


def give_answer(question: int, answer: str | None):
    s = seat()
    if not answer:
        st.session_state[K.ERROR] = "Pick a token or type one first."
        return
    if len(answer) > cr.MAX_ANSWER:
        st.session_state[K.ERROR] = f"An answer is at most {cr.MAX_ANSWER} characters."
        return
    try:
        if room().answer(s.code, s.student, question, answer):
            s.answers[question] = answer
            st.session_state[K.ERROR] = None
        else:
            st.session_state[K.ERROR] = "The teacher has already revealed the answer."
    except ClassroomError as e:
        _fail(e)


def submit_token(question: int):
    """on_click of Submit on the Next token page: a typed character wins over the picked token."""
    typed = st.session_state.get(K.TYPED) or ""
    give_answer(question, typed if typed else st.session_state.get(K.ANSWER))


def submit_head(question: int):
    give_answer(question, cr.head_label(st.session_state.get(K.LAYER, 0), st.session_state.get(K.HEAD, 0)))


def head_of_click(event) -> tuple[int, int] | None:
    """(layer, head) of a click on the head-picker grid, read defensively from the chart's selection."""
    try:
        selection = event["selection"] if isinstance(event, dict) else getattr(event, "selection", None)
        cells = selection.get("cell") if hasattr(selection, "get") else None
        cell = cells[-1] if isinstance(cells, list) and cells else cells
        return int(float(cell["layer"])), int(float(cell["head"]))
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def on_grid_click(question: int):
    picked = head_of_click(st.session_state.get(K.GRID_PICK))
    if picked is not None:
        give_answer(question, cr.head_label(*picked))


def error():
    """The message of the last class action, once."""
    message = st.session_state.pop(K.ERROR, None)
    if message:
        st.warning(message, icon="🏫")


def top_choices(tok, probs, k: int = cr.MAX_CHOICES) -> list[tuple[str, float]]:
    """The model's k most likely next tokens as (text, probability): what a guess is compared with."""
    order = probs.argsort(descending=True)[:k].tolist()
    return [(tok.decode([i])[:cr.MAX_ANSWER], float(probs[i])) for i in order]


def shown(answer: str) -> str:
    return visible(answer)  # a space or a newline must be visible: ␣, ⏎


def token_question(tok, raw, model_key: str | None, prompt: str) -> bool:
    """Predict, then reveal, on the Next token page. True while this student must guess before seeing the bars."""
    s, q = open_question(cr.TOKEN)
    if s is None:
        return False
    error()
    with st.container(border=True):
        if teacher(s):
            _teacher_controls(s, q, "Ask the class: which token comes next?", ask_token,
                              (prompt, model_key, top_choices(tok, raw), "next_token"))
            if q is not None and q.revealed:
                _chart(viz.token_reveal_chart(q.choices, q.counts()))
            return False
        if q is None:
            return False
        mine = s.answers.get(q.id)
        if q.revealed:
            st.markdown(f"**❓ Which token comes next after …{_tail(q.prompt)}?** Your guess: "
                        f"`{shown(mine) if mine else 'none'}`")
            _chart(viz.token_reveal_chart(q.choices, q.counts(), mine=mine))
            return False
        if mine is not None:
            st.info(f"Your guess: `{shown(mine)}`. Now compare it with the bars; the teacher will reveal what the "
                    "class guessed.", icon="❓")
            _await_reveal(s.code, q.id)
            return False
        st.markdown(f"**❓ Predict first: which token comes next after …{_tail(q.prompt)}?**")
        c1, c2, c3 = st.columns([3, 2, 1], vertical_alignment="bottom")
        c1.selectbox("Pick a token", sorted({lab for lab, _ in q.choices}), format_func=shown, key=K.ANSWER)
        c2.text_input("…or type it", max_chars=cr.MAX_ANSWER, key=K.TYPED)
        c3.button("Submit", key=K.SUBMIT, on_click=submit_token, args=(q.id,), type="primary")
        st.caption("The bars show once you have answered.")
        return True


def _tail(prompt: str, n: int = 40) -> str:
    return f"`{prompt[-n:]!r}`"


def _chart(fig):
    st.plotly_chart(fig, theme=None, width="stretch", key=K.REVEAL_CHART)


def _teacher_controls(s: Seat, q, ask_label: str, on_ask, args: tuple):
    st.markdown("**❓ Predict, then reveal**")
    c1, c2, c3 = st.columns([3, 2, 1], vertical_alignment="center")
    c1.button(ask_label, key=K.ASK, on_click=on_ask, args=args, icon="❓",
              help="Opens the question for the class and pushes this page, model and prompt to the followers.")
    if q is None:
        return
    with c2:
        _answered(s.code, q.id)
    c3.button("Reveal", key=K.REVEAL, on_click=reveal, args=(q.id,), disabled=q.revealed, type="primary")


@st.fragment(run_every=REFRESH_S)
def _answered(code: str, question: int):
    """The teacher's count of answers, live."""
    q = room().question(code) if room().find(code) else None
    if q is not None and q.id == question:
        st.markdown(f"**{len(q.answers)}** of {len(room().students(code))} answered")


@st.fragment(run_every=REFRESH_S)
def _await_reveal(code: str, question: int):
    """A student who has answered waits for the reveal: it redraws the page when it comes."""
    q = room().question(code) if room().find(code) else None
    if q is None or q.id != question or q.revealed:
        st.rerun(scope="app")


def head_counts(q) -> list[list[int]]:
    n_layer, n_head = q.grid
    counts = [[0] * n_head for _ in range(n_layer)]
    for answer, n in q.counts().items():
        picked = cr.parse_head(answer)
        if picked and picked[0] < n_layer and picked[1] < n_head:
            counts[picked[0]][picked[1]] += n
    return counts


def head_question(n_layer: int, n_head: int, scores, model_key: str | None, prompt: str):
    """'Which head is the previous-token head?' on the Attention page: click a cell or pick layer and head."""
    s, q = open_question(cr.HEAD)
    if s is None:
        return
    error()
    with st.container(border=True):
        if teacher(s):
            _teacher_controls(s, q, "Ask the class: which head is the previous-token head?", ask_head,
                              (prompt, model_key, (n_layer, n_head), scores.tolist(), "attention"))
            if q is not None and q.revealed:
                _chart(viz.head_reveal_chart(head_counts(q), q.scores))
            return
        if q is None:
            return
        mine = cr.parse_head(s.answers.get(q.id))
        if q.revealed:
            st.markdown(f"**❓ Which head is the previous-token head?** Your pick: "
                        f"`{cr.head_label(*mine) if mine else 'none'}`")
            _chart(viz.head_reveal_chart(head_counts(q), q.scores, mine=mine))
            return
        _head_picker(s, q, mine)


def _head_picker(s: Seat, q, mine):
    n_layer, n_head = q.grid
    st.markdown("**❓ Which head is the previous-token head?** Look at the grid above, then click a cell here "
                "(or pick a layer and a head).")
    st.vega_lite_chart(viz.head_picker_spec(n_layer, n_head, mine), on_select=lambda: on_grid_click(q.id),
                       selection_mode="cell", key=K.GRID_PICK, theme=None)
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    keep(K.LAYER, lambda v: v in range(n_layer), 0)  # a question about a smaller model than the last one
    keep(K.HEAD, lambda v: v in range(n_head), 0)
    c1.selectbox("Layer", list(range(n_layer)), format_func=lambda i: f"layer {i}", key=K.LAYER)
    c2.selectbox("Head", list(range(n_head)), format_func=lambda i: f"head {i}", key=K.HEAD)
    c3.button("Submit", key=K.SUBMIT, on_click=submit_head, args=(q.id,), type="primary")
    if mine is not None:
        st.caption(f"Your pick: {cr.head_label(*mine)} (you can change it until the teacher reveals).")
        _await_reveal(s.code, q.id)
