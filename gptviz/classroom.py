"""A class on one server: the teacher's board of everyone's runs, what the teacher pushes to the class, and
questions the class answers before the model does.

Pure Python, no Streamlit; every method is safe to call from many sessions' threads at once. A class is
found by a short code that can be read aloud (no 0/O, no 1/I); the teacher's rights come from a secret that
only the teacher's link carries, compared in constant time: the code alone lets a student join, post runs
and answer, never push, hide, clear or ask. Everything is bounded before it is stored (classes, entries,
students, answers, name lengths), and a class whose teacher has been gone for TEACHER_GONE_S is dropped.
All of it lives in server memory: a server restart ends every class.
"""

from __future__ import annotations

import copy
import csv
import hmac
import io
import math
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from .data import CORPORA
from .errors import GptvizError
from .runs import LABELS, SETTINGS, Group, Result, fmt, verdict

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, no 1/I: read aloud or off a projector
CODE_LENGTH = 6  # 32**6 ≈ 1e9 codes
MAX_CLASSES = 40  # on one server at once
MAX_ENTRIES = 300  # runs on one board (30 students x 10 runs)
MAX_STUDENTS = 120  # students (and so answers to one question) per class
MAX_QUESTIONS = 20  # kept per class, newest last
MAX_NAME = 24  # characters of a display name
MAX_TEXT = 500  # characters of a pushed prompt or a question's prompt
MAX_ANSWER = 12  # characters of an answer (a token's label, "L1 H2")
MAX_CHOICES = 64  # tokens a question's reveal lists with the model's probabilities
TEACHER_GONE_S = 3 * 3600.0  # a class whose teacher has not been seen this long ends
OWN_TEXT = "own text"  # what the board says for a run on an uploaded text: never its name or content
PAGES = ("lesson", "averaging", "data", "train", "attention", "head_steps", "embeddings", "next_token",
         "layers", "neurons", "compare", "classroom")  # what a push may name: the app's pages
SETTING_KEYS = tuple(s.key for s in SETTINGS)
TOKEN, HEAD = "token", "head"  # the kinds of question


class ClassroomError(GptvizError):
    """A class that cannot be found, is full, or an action that needs the teacher's link."""


@dataclass
class Entry:
    """One finished run on the board: settings and numbers only, never text the student uploaded."""

    id: int
    student: str  # the posting session's opaque id: a student may take back their own runs
    name: str  # the display name the student typed
    settings: dict
    val_loss: float
    params: int
    seconds: float
    hidden: bool = False


@dataclass
class Follow:
    """What the teacher pushed last: followers apply it when its version is new to them."""

    version: int = 0
    page: str | None = None
    model: str | None = None
    prompt: str | None = None
    layer: int | None = None
    head: int | None = None
    query: int | None = None


@dataclass
class Question:
    """'Which token comes next?' (TOKEN) or 'which head is the previous-token head?' (HEAD)."""

    id: int
    kind: str
    prompt: str
    model: str | None = None  # the model key the question is about
    choices: list = field(default_factory=list)  # TOKEN: [(label, probability)] the model gives, most likely first
    grid: tuple[int, int] = (0, 0)  # HEAD: (n_layer, n_head)
    scores: list = field(default_factory=list)  # HEAD: the detector's score per [layer][head]
    answers: dict = field(default_factory=dict)  # student -> answer (a label, or "L1 H2")
    revealed: bool = False

    def counts(self) -> Counter:
        return Counter(self.answers.values())


@dataclass
class Class:
    code: str
    secret: str
    teacher_seen: float
    entries: dict = field(default_factory=dict)  # entry id -> Entry, oldest first
    students: dict = field(default_factory=dict)  # student id -> display name
    follow: Follow = field(default_factory=Follow)
    group_by: str = "n_head"  # the setting the teacher groups the board by (everyone sees that grouping)
    questions: list = field(default_factory=list)  # newest last
    next_id: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def normal_code(text) -> str | None:
    """A typed or linked code in its stored form ('ab3 k7q' -> 'AB3K7Q'), or None when it cannot be one."""
    if not isinstance(text, str) or len(text) > 3 * CODE_LENGTH:
        return None
    code = "".join(c for c in text.upper() if c not in " -_")
    return code if len(code) == CODE_LENGTH and all(c in CODE_ALPHABET for c in code) else None


def clean_name(text) -> str:
    """A display name: printable, one line, at most MAX_NAME characters; empty becomes 'anonymous'."""
    text = text[:4 * MAX_NAME] if isinstance(text, str) else ""  # cut before cleaning: bounded work
    name = " ".join("".join(c for c in text if c.isprintable()).split())[:MAX_NAME]
    return name or "anonymous"


def clean_settings(settings: dict) -> dict:
    """Only the known settings, as numbers, booleans or short names; an uploaded text is just OWN_TEXT."""
    out = {}
    for key in SETTING_KEYS:
        value = settings.get(key) if isinstance(settings, dict) else None
        if key == "corpus":
            out[key] = value if value in CORPORA else OWN_TEXT
        elif isinstance(value, bool) or (isinstance(value, (int, float)) and math.isfinite(value)):
            out[key] = value
        elif isinstance(value, str) and len(value) <= 16 and value.isprintable():
            out[key] = value
    return out


def _number(value, low: float, high: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ClassroomError("That run has no usable numbers to post.") from None
    if not math.isfinite(x) or not low <= x <= high:
        raise ClassroomError("That run has no usable numbers to post.")
    return x


def _short(text, limit: int) -> str | None:
    return text[:limit] if isinstance(text, str) else None


class Classroom:
    """Every class of the server, by code."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_classes: int = MAX_CLASSES,
                 gone_s: float = TEACHER_GONE_S):
        self.clock, self.max_classes, self.gone_s = clock, max_classes, gone_s
        self._classes: dict[str, Class] = {}
        self._lock = threading.Lock()

    # ---- finding a class and the teacher's rights ------------------------------------------------
    def open(self) -> tuple[str, str]:
        """A new class: (code, teacher secret)."""
        self.sweep()
        with self._lock:
            if len(self._classes) >= self.max_classes:
                raise ClassroomError(f"This server already has {self.max_classes} classes open; try again later "
                                     "or ask another teacher to end theirs.")
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            while code in self._classes:
                code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            secret = secrets.token_urlsafe(24)
            self._classes[code] = Class(code, secret, self.clock())
        return code, secret

    def find(self, code) -> Class | None:
        self.sweep()
        code = normal_code(code)
        with self._lock:
            return self._classes.get(code) if code else None

    def _get(self, code) -> Class:
        room = self.find(code)
        if room is None:
            raise ClassroomError("There is no class with that code on this server (it may have ended).")
        return room

    def is_teacher(self, code, secret) -> bool:
        """Whether `secret` is this class's teacher secret (constant-time); the teacher counts as present."""
        room = self.find(code)
        if room is None or not isinstance(secret, str):
            return False
        ok = hmac.compare_digest(room.secret.encode(), secret.encode("utf-8", "replace")[:64])
        if ok:
            room.teacher_seen = self.clock()
        return ok

    def _teacher(self, code, secret) -> Class:
        if not self.is_teacher(code, secret):
            raise ClassroomError("Only the teacher (with the teacher's link) can do that.")
        return self._get(code)

    def end(self, code, secret):
        room = self._teacher(code, secret)
        with self._lock:
            self._classes.pop(room.code, None)

    def sweep(self):
        """Drop the classes whose teacher has been gone longer than gone_s."""
        now = self.clock()
        with self._lock:
            for code in [c for c, r in self._classes.items() if now - r.teacher_seen > self.gone_s]:
                del self._classes[code]

    def __len__(self) -> int:
        with self._lock:
            return len(self._classes)

    # ---- students --------------------------------------------------------------------------------
    def join(self, code, student: str, name) -> Class:
        room = self._get(code)
        with room.lock:
            if student not in room.students and len(room.students) >= MAX_STUDENTS:
                raise ClassroomError(f"This class is full ({MAX_STUDENTS} students).")
            room.students[student] = clean_name(name)
        return room

    def leave(self, code, student: str):
        room = self.find(code)
        if room is not None:
            with room.lock:
                room.students.pop(student, None)

    def post(self, code, student: str, name, settings: dict, val_loss, params, seconds) -> int:
        """Put a finished run on the board; returns its entry id."""
        room = self._get(code)
        entry = Entry(0, student, clean_name(name), clean_settings(settings), _number(val_loss, 0, 1e4),
                      int(_number(params, 0, 1e12)), _number(seconds, 0, 1e7))
        with room.lock:
            if student not in room.students:
                raise ClassroomError("Join the class first.")
            if len(room.entries) >= MAX_ENTRIES:
                raise ClassroomError(f"The class board is full ({MAX_ENTRIES} runs): ask the teacher to clear it.")
            entry.id = room.take_id()
            room.entries[entry.id] = entry
        return entry.id

    def withdraw(self, code, student: str, entry: int):
        """A student takes one of their own runs off the board (nobody else's)."""
        room = self._get(code)
        with room.lock:
            if entry in room.entries and room.entries[entry].student == student:
                del room.entries[entry]

    def answer(self, code, student: str, question: int, answer) -> bool:
        """A student's answer to the open question (a later answer replaces theirs); False once revealed."""
        room = self._get(code)
        text = _short(answer, MAX_ANSWER)
        if text is None:
            raise ClassroomError("That answer cannot be read.")
        with room.lock:
            if student not in room.students:
                raise ClassroomError("Join the class first.")
            q = next((q for q in room.questions if q.id == question), None)
            if q is None or q.revealed:
                return False
            q.answers[student] = text
        return True

    # ---- the teacher -------------------------------------------------------------------------------
    def hide(self, code, secret, entry: int, hidden: bool = True):
        room = self._teacher(code, secret)
        with room.lock:
            if entry in room.entries:
                room.entries[entry].hidden = hidden

    def group(self, code, secret, key: str):
        room = self._teacher(code, secret)
        if key in SETTING_KEYS:
            room.group_by = key

    def grouped_by(self, code) -> str:
        return self._get(code).group_by

    def clear(self, code, secret):
        room = self._teacher(code, secret)
        with room.lock:
            room.entries.clear()

    def push(self, code, secret, page=None, model=None, prompt=None, layer=None, head=None, query=None) -> int:
        """Send the teacher's view to the class; returns its version."""
        room = self._teacher(code, secret)
        small = lambda v: v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 4096 else None  # noqa: E731
        with room.lock:
            room.follow = Follow(room.follow.version + 1, page if page in PAGES else None, _short(model, 200),
                                 _short(prompt, MAX_TEXT), small(layer), small(head), small(query))
            return room.follow.version

    def ask(self, code, secret, kind: str, prompt, model=None, choices=(), grid=(0, 0), scores=()) -> int:
        """Open a question (the previous ones stay, answered or not); returns its id."""
        room = self._teacher(code, secret)
        if kind not in (TOKEN, HEAD):
            raise ClassroomError(f"Unknown kind of question: {kind!r}.")
        q = Question(0, kind, _short(prompt, MAX_TEXT) or "", _short(model, 200),
                     [(str(label)[:MAX_ANSWER], float(p)) for label, p in list(choices)[:MAX_CHOICES]],
                     (min(int(grid[0]), 64), min(int(grid[1]), 64)),
                     [[float(x) for x in row[:64]] for row in list(scores)[:64]])
        with room.lock:
            q.id = room.take_id()
            room.questions = [*room.questions, q][-MAX_QUESTIONS:]
        return q.id

    def reveal(self, code, secret, question: int):
        room = self._teacher(code, secret)
        with room.lock:
            for q in room.questions:
                if q.id == question:
                    q.revealed = True

    # ---- reading (copies: a page never holds the class's own objects) --------------------------------
    def board(self, code, hidden: bool = False) -> list[Entry]:
        """The board's entries, oldest first; the hidden ones only when asked (the teacher's view)."""
        room = self._get(code)
        with room.lock:
            return [copy.copy(e) for e in room.entries.values() if hidden or not e.hidden]

    def following(self, code) -> Follow:
        room = self._get(code)
        with room.lock:
            return copy.copy(room.follow)

    def question(self, code) -> Question | None:
        """The newest question, or None."""
        room = self._get(code)
        with room.lock:
            return copy.deepcopy(room.questions[-1]) if room.questions else None

    def students(self, code) -> dict:
        room = self._get(code)
        with room.lock:
            return dict(room.students)


# ---- what the board shows ----------------------------------------------------------------------------

@dataclass
class BoardGroup:
    """The runs whose chosen setting has one value: mean ± half the range, and how many."""

    value: object
    entries: list

    @property
    def losses(self) -> list[float]:
        return [e.val_loss for e in self.entries]

    @property
    def mean(self) -> float:
        return sum(self.losses) / len(self.losses)

    @property
    def spread(self) -> float:
        return (max(self.losses) - min(self.losses)) / 2


def _order(value):
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def group_by(entries: list[Entry], key: str) -> list[BoardGroup]:
    """One group per value of the setting, in the setting's order (numbers ascending)."""
    groups: dict = {}
    for e in entries:
        groups.setdefault(e.settings.get(key), []).append(e)
    return [BoardGroup(v, groups[v]) for v in sorted(groups, key=_order)]


def differing(entries: list[Entry]) -> list[str]:
    """The settings whose values are not the same on every run of the board."""
    return [k for k in SETTING_KEYS if len({repr(e.settings.get(k)) for e in entries}) > 1]


def board_rows(entries: list[Entry]) -> list[dict]:
    """The board's table: one row per run, the settings that differ across the class, val loss, parameters, time."""
    keys = differing(entries)
    return [{"student": e.name, **{LABELS[k]: fmt(k, e.settings.get(k)) for k in keys},
             "val loss": round(e.val_loss, 3), "parameters": e.params, "seconds": round(e.seconds, 1),
             **({"hidden": e.hidden} if any(x.hidden for x in entries) else {})} for e in entries]


def group_rows(groups: list[BoardGroup], key: str) -> list[dict]:
    return [{LABELS[key]: fmt(key, g.value), "runs": len(g.entries), "mean val loss": round(g.mean, 3),
             "± (half the range)": round(g.spread, 3), "lowest": round(min(g.losses), 3),
             "highest": round(max(g.losses), 3)} for g in groups]


def _as_group(g: BoardGroup, key: str) -> Group:
    """A board group as the Train page's seed group (each run one 'seed'), so the verdict reads the same."""
    return Group([Result(e.name, "", {key: g.value, "seed": 0}, e.params, [], [], [], [e.val_loss],
                         e.seconds, 0.0, 0) for e in g.entries])


def board_verdict(groups: list[BoardGroup], key: str) -> str | None:
    """The Train page's verdict between the setting's smallest and largest value, or None with fewer than two."""
    if len(groups) < 2:
        return None
    return verdict(_as_group(groups[0], key), _as_group(groups[-1], key))


def board_csv(entries: list[Entry]) -> str:
    """Every run of the board with all its settings, as CSV for a spreadsheet."""
    out = io.StringIO()
    fields = ["student", *(LABELS[k] for k in SETTING_KEYS), "val loss", "parameters", "seconds", "hidden"]
    writer = csv.DictWriter(out, fields)
    writer.writeheader()
    for e in entries:
        name = e.name if not e.name.startswith(("=", "+", "-", "@")) else "'" + e.name  # no spreadsheet formulas
        writer.writerow({"student": name, **{LABELS[k]: fmt(k, e.settings[k]) for k in SETTING_KEYS if k in e.settings},
                         "val loss": f"{e.val_loss:.4f}", "parameters": e.params, "seconds": f"{e.seconds:.1f}",
                         "hidden": e.hidden})
    return out.getvalue()


def head_label(layer: int, head: int) -> str:
    return f"L{layer} H{head}"


def parse_head(text) -> tuple[int, int] | None:
    """'L1 H2' -> (1, 2); anything else None."""
    try:
        l, h = str(text).split()
        return int(l.removeprefix("L")), int(h.removeprefix("H"))
    except ValueError:
        return None
