"""Classroom load test: many headless browser tabs against one gptviz server.

    python -m tools.loadtest --sessions 30 --trainers 4 --seconds 60    # or: python -m gptviz loadtest ...
    python -m tools.loadtest --url http://127.0.0.1:8501 --pid 12345   # a server that is already running

Every session speaks Streamlit's own websocket protocol on /_stcore/stream: it sends the BackMsg
protobufs a browser tab sends (rerun requests carrying widget values, the current page and the
hashes of cached messages) and reads the ForwardMsgs it gets back, minus rendering them.

* Inspecting students open "Next token" or "Attention" and keep changing a widget there
  (a slider, the prompt, a layer or head), with 1-2 s of think time.
* Training students set a small model on "Train", press Train, then poll the live view the way a
  browser does (it honours the server's st.fragment(run_every=...) timers), and train again when done.

* With --class-board N the whole class is in a class (the Class page): a teacher session starts it and
  pushes a head on the Attention page every --push-every seconds; every student joins with the code;
  N students keep the class board open (its 1-second refresh, follow switched off); the inspecting
  students follow the teacher (the sidebar's 1-second check) between their interactions; the trainers'
  finished runs go to the board.

Latency is the time from sending a rerun to receiving its script_finished: what a student waits
before the page has settled. The tool also samples the server's resident memory every 0.5 s.
Everything runs on 127.0.0.1, for a bounded time, and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import threading
import time
from collections import Counter, OrderedDict, defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

import websockets
from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.NumberInput_pb2 import NumberInput
from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState

from tools.server import ROOT, Server

EARLY = ForwardMsg.ScriptFinishedStatus.Value("FINISHED_EARLY_FOR_RERUN")
CACHE_SIZE = 500  # cached ForwardMsgs a session keeps (the browser's cache also forgets old ones)
GOAL_P95_S = 1.5  # the goal for students who are only inspecting
FINISHED = re.compile(r"\bFinished (\d+) steps")  # the Train page's message when a run has ended well

# Prompts a student might type: only characters of tiny Shakespeare, the bundled model's text.
PROMPTS = [
    "ROMEO:\nBut soft, what light",
    "JULIET:\nO Romeo, Romeo! wherefore art thou",
    "First Citizen:\nBefore we proceed any further, hear me speak.",
    "KING RICHARD III:\nNow is the winter of our discontent",
    "HAMLET:\nTo be, or not to be, that is the question:",
    "MENENIUS:\nWhat work's, my countrymen, in hand?",
    "The king is dead",
    "What say you, my lord?",
]

# What an inspecting student does on each page: (weight, widget key). Keys are the pages' own
# st.session_state keys; a widget's id ends with its key, which is how the tool finds it.
ACTIONS = {
    "next_token": [(3, "next_token_temperature"), (2, "next_token_top_p"), (2, "next_token_top_k"),
                   (3, "prompt_next_token"), (1, "next_token_sample_one")],
    "attention": [(3, "prompt_attention"), (2, "attention_layer"), (2, "attention_head"),
                  (2, "attention_query")],
}

# A small model, set one widget at a time as a student would (widget key -> value).
TRAIN_SETTINGS = {"train_n_layer": 2, "train_n_embd": 32, "train_block_size": 32, "train_batch_size": 8,
                  "train_max_iters": 300, "train_eval_interval": 100}


class Timeout(Exception):
    """No script_finished came back in time."""


@dataclass
class Widget:
    kind: str  # the Element oneof: "slider", "text_area", "button", ...
    proto: object  # e.g. streamlit.proto.Slider_pb2.Slider
    fragment_id: str  # set when the widget lives in an st.fragment: its changes rerun only that


class Session:
    """One browser tab: a websocket, what is on screen, and one script run in flight at a time."""

    def __init__(self, name: str, role: str, ws_url: str, timeout: float):
        self.name, self.role, self.ws_url, self.timeout = name, role, ws_url, timeout
        self.ws = None
        self.pages: dict[str, str] = {}  # page title or url path -> page_script_hash
        self.page_hash = ""  # the page the server last ran; every rerun names it, as the browser does
        self.page = ""
        self.elements: dict[tuple, tuple] = {}  # delta path -> (Element, fragment_id)
        self._seen: set[tuple] = set()  # delta paths sent during the current full run
        self.cache: OrderedDict[str, ForwardMsg] = OrderedDict()  # the frontend's forward message cache
        self.auto_reruns: dict[str, float] = {}  # fragment_id -> seconds (st.fragment(run_every=...))
        self.sent: dict[str, object] = {}  # widget id -> the last value this tab sent
        self.samples: list[tuple[str, str, float]] = []  # (role, action, seconds)
        self.timeouts: Counter = Counter()
        self.exceptions: list[str] = []  # exception elements: a page's script raised
        self.problems: list[str] = []  # everything else that went wrong (protocol, connection, missing widget)
        self.error_alerts: Counter = Counter()  # st.error messages shown to the student
        self.texts: deque = deque(maxlen=400)  # progress texts and alerts, newest last
        self.max_step = 0  # the highest training step seen in a progress bar
        self.due: dict[str, float] = {}  # fragment_id -> when its run_every timer fires next
        self.full_runs = 0  # whole-app runs seen (a follower's check that found a push starts one)
        self.runs_started = 0  # Train clicks
        self.inspect_page = ""  # where an inspecting student works
        self._waiter: asyncio.Future | None = None
        self._started = False  # a run started since the current request was sent

    # --- the connection -------------------------------------------------------------------------
    async def connect(self):
        # "streamlit" is the subprotocol the server selects; it takes no Origin (browsers send one).
        self.ws = await websockets.connect(self.ws_url, subprotocols=["streamlit"], max_size=None,
                                           open_timeout=self.timeout, ping_interval=None)
        self._reader = asyncio.create_task(self._read())

    async def close(self):
        if self.ws is not None:
            await self.ws.close()
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self):
        try:
            async for data in self.ws:
                msg = ForwardMsg()
                msg.ParseFromString(data)
                self._handle(msg)
        except websockets.ConnectionClosed:
            pass
        except Exception as e:  # a bug in this tool: say so instead of hanging the session
            self.problems.append(f"reader: {type(e).__name__}: {e}")
        finally:
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_exception(ConnectionError("the server closed the websocket"))

    def _handle(self, msg: ForwardMsg):
        kind = msg.WhichOneof("type")
        if kind == "ref_hash":  # the server sends only a reference to a message we said we cached
            cached = self.cache.get(msg.ref_hash)
            if cached is None:
                self.problems.append(f"reference to an unknown cached message {msg.ref_hash}")
                return
            self.cache.move_to_end(msg.ref_hash)
            full = ForwardMsg()
            full.CopyFrom(cached)
            full.metadata.CopyFrom(msg.metadata)
            msg, kind = full, full.WhichOneof("type")
        elif msg.metadata.cacheable and msg.hash:
            self.cache[msg.hash] = msg
            while len(self.cache) > CACHE_SIZE:
                self.cache.popitem(last=False)

        if kind == "new_session":
            self._started = True
            if not msg.metadata.run.fragment_ids:  # a full run: the browser drops its timers, redraws all
                self.full_runs += 1
                self.auto_reruns.clear()
                self._seen = set()
        elif kind == "navigation":
            for p in msg.navigation.app_pages:
                self.pages[p.page_name] = self.pages[p.url_pathname or p.page_name] = p.page_script_hash
                if p.page_script_hash == msg.navigation.page_script_hash:
                    self.page = p.url_pathname or p.page_name
            self.page_hash = msg.navigation.page_script_hash
        elif kind == "delta":
            self._delta(msg)
        elif kind == "auto_rerun":
            self.auto_reruns[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
        elif kind == "stop_auto_rerun":
            for fid in msg.stop_auto_rerun.fragment_ids:
                self.auto_reruns.pop(fid, None)
        elif kind == "script_finished" and msg.script_finished != EARLY:  # EARLY: st.rerun() follows
            if not msg.metadata.run.fragment_ids:  # what a full run did not send again is gone
                self.elements = {p: e for p, e in self.elements.items() if p in self._seen}
            if self._started and self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(time.perf_counter())

    def _delta(self, msg: ForwardMsg):
        path, delta = tuple(msg.metadata.delta_path), msg.delta
        self._seen.add(path)
        if delta.WhichOneof("type") != "new_element":
            self.elements.pop(path, None)
            return
        el = delta.new_element
        self.elements[path] = (el, delta.fragment_id)
        kind = el.WhichOneof("type")
        if kind == "exception":
            self.exceptions.append(f"{self.page}: {el.exception.type}: {el.exception.message}")
        elif kind == "alert":
            self.texts.append(el.alert.body)
            if el.alert.format == Alert.ERROR:
                self.error_alerts[f"{self.page}: {el.alert.body[:160]}"] += 1
        elif kind == "progress":
            self.texts.append(el.progress.text)
            m = re.search(r"step (\d+)", el.progress.text)
            if m:
                self.max_step = max(self.max_step, int(m.group(1)))

    # --- what a tab sends ---------------------------------------------------------------------------
    async def rerun(self, widgets=(), page_hash: str = "", fragment_id: str = "", auto: bool = False) -> float:
        """Send one rerun request and wait for its script_finished; returns the seconds it took."""
        back = BackMsg()
        cs = back.rerun_script
        cs.query_string = ""
        cs.page_script_hash = page_hash or self.page_hash
        cs.widget_states.widgets.extend(widgets)
        cs.fragment_id = fragment_id
        cs.is_auto_rerun = auto
        cs.cached_message_hashes.extend(self.cache)  # so unchanged big elements come back as references
        self._waiter = asyncio.get_running_loop().create_future()
        self._started = False
        start = time.perf_counter()
        await self.ws.send(back.SerializeToString())
        try:
            end = await asyncio.wait_for(asyncio.shield(self._waiter), self.timeout)
        except asyncio.TimeoutError:
            raise Timeout from None
        finally:
            self._waiter = None
        return end - start

    def record(self, role: str, action: str, seconds: float):
        self.samples.append((role, action, seconds))

    async def open(self):
        """Open the app's URL: connect and run the default page (the browser sends a rerun at once)."""
        start = time.perf_counter()
        await self.connect()
        await self.rerun()
        self.record("open", "open app", time.perf_counter() - start)

    async def goto(self, page: str):
        """Click a page in the sidebar navigation."""
        if page not in self.pages:
            raise KeyError(f"no page {page!r} (pages: {sorted(self.pages)})")
        self.record("open", f"go to {page}", await self.rerun(page_hash=self.pages[page]))

    def markdown(self) -> list[str]:
        """The markdown texts on screen."""
        return [el.markdown.body for el, _ in self.elements.values() if el.WhichOneof("type") == "markdown"]

    def find(self, key: str) -> Widget | None:
        """The widget whose id ends with its user key (Streamlit ids look like $$ID-<hash>-<key>)."""
        for el, fragment_id in self.elements.values():
            kind = el.WhichOneof("type")
            proto = getattr(el, kind)
            if "id" in proto.DESCRIPTOR.fields_by_name and proto.id.endswith(f"-{key}"):
                return Widget(kind, proto, fragment_id)
        return None

    async def change(self, key: str, value=None) -> float:
        """Set a widget's value (a button: click it) and wait for the rerun that follows.

        Only the changed widget is sent: the server keeps every other widget's last value, and a
        tab that re-sent values the script itself has changed since (the shared prompt) would undo them.
        """
        w = self.find(key)
        if w is None:
            raise LookupError(f"no widget {key!r} on {self.page!r}")
        state = WidgetState(id=w.proto.id)
        if w.kind in ("button", "download_button"):
            state.trigger_value = True
        elif w.kind == "slider" and w.proto.type == Slider.SELECT_SLIDER:
            state.string_array_value.data.append(str(value))
        elif w.kind == "slider":
            state.double_array_value.data.append(float(value))
        elif w.kind in ("text_area", "text_input", "selectbox", "radio"):
            state.string_value = str(value)
        elif w.kind in ("checkbox",):
            state.bool_value = bool(value)
        elif w.kind == "number_input":
            if w.proto.data_type == NumberInput.INT:
                state.int_value = int(value)
            else:
                state.double_value = float(value)
        else:
            raise TypeError(f"this tool cannot set a {w.kind} ({key})")
        self.sent[w.proto.id] = value
        return await self.rerun([state], fragment_id=w.fragment_id)

    def new_value(self, key: str, rng: random.Random):
        """A value for the widget a student might pick next, different from the last one sent."""
        w = self.find(key)
        if w is None:
            return None
        if w.kind == "text_area" or w.kind == "text_input":
            options = PROMPTS
        elif w.kind == "selectbox":
            options = list(w.proto.options)
        elif w.kind == "slider" and w.proto.type == Slider.SELECT_SLIDER:
            options = list(w.proto.options)
        elif w.kind == "slider":
            p = w.proto
            n = int(round((p.max - p.min) / p.step)) if p.step else 20
            options = [round(p.min + i * p.step, 6) for i in range(n + 1)]
        else:
            return True  # a button
        last = self.sent.get(w.proto.id)
        fresh = [o for o in options if o != last] or options
        return rng.choice(fresh)


# --- the two kinds of student -------------------------------------------------------------------------

async def guarded(s: Session, role: str, action: str, make_request) -> bool:
    """Run one interaction and record it; False when the session cannot go on."""
    try:
        s.record(role, action, await make_request())
    except Timeout:
        s.timeouts[role] += 1
    except (ConnectionError, websockets.ConnectionClosed) as e:
        s.problems.append(f"{action}: connection lost ({e})")
        return False
    except (LookupError, TypeError) as e:
        s.problems.append(f"{action}: {e}")
    return True


async def inspecting_student(s: Session, page: str, rng: random.Random, deadline: float, max_actions: int,
                             follow: bool = False, opened: bool = False):
    if not opened:
        await s.open()
    await s.goto(page)
    for _ in range(max_actions):
        think = rng.uniform(1.0, 2.0)  # think time, jittered so tabs do not act in lockstep
        if follow:  # the sidebar checks for the teacher's push meanwhile (and may switch the page)
            end = min(deadline, time.monotonic() + think)
            await poll_live_view(s, end, role="follow")
            await asyncio.sleep(max(0.0, end - time.monotonic()))
        else:
            await asyncio.sleep(think)
        if time.monotonic() >= deadline:
            break
        actions = ACTIONS.get(s.page, ACTIONS.get(page, []))  # a push may have moved the student
        present = [(w, k) for w, k in actions if s.find(k) is not None]
        if not present:  # the page shows none of its widgets (an error or no model): just rerun it
            s.problems.append(f"{page}: none of its widgets is on screen")
            if not await guarded(s, "inspect", f"{page} rerun", s.rerun):
                return
            continue
        key = rng.choices([k for _, k in present], weights=[w for w, _ in present])[0]
        value = s.new_value(key, rng)
        if not await guarded(s, "inspect", key, lambda: s.change(key, value)):
            return


async def poll_live_view(s: Session, deadline: float, role: str = "train-live"):
    """Honour the server's run_every timers as a browser does, one request in flight, until none is left."""
    due = s.due  # the tab's timers keep their beat across calls, as setInterval does in a browser
    while s.auto_reruns and time.monotonic() < deadline:
        now = time.monotonic()
        due = s.due = {fid: due.get(fid, now + interval) for fid, interval in s.auto_reruns.items()}
        fid = min(due, key=due.get)
        await asyncio.sleep(max(0.0, due[fid] - time.monotonic()))
        if time.monotonic() >= deadline:
            break
        action = f"fragment run_every={s.auto_reruns.get(fid, 0):g}s"  # live view 0.5 s, sidebar status 2 s
        full_runs = s.full_runs
        if not await guarded(s, role, action, lambda: s.rerun(fragment_id=fid, auto=True)):
            return
        if role == "follow" and s.full_runs > full_runs and PUSHED[0]:  # the check found a push and applied it
            s.record("follow-applied", "teacher's push → applied on a follower", time.perf_counter() - PUSHED[0])
        # setInterval keeps its beat; ticks missed while a run was slow are not made up
        due[fid] = max(due[fid] + s.auto_reruns.get(fid, 1.0), time.monotonic())


async def training_student(s: Session, rng: random.Random, deadline: float, settings: dict, max_runs: int,
                           grace: float = 0.0, seeds=None, opened: bool = False):
    """seeds(run) -> the seed to train with: distinct seeds are distinct trainings, equal ones are trained once."""
    if not opened:
        await s.open()
    await s.goto("train")
    for key, value in settings.items():  # one slider at a time, each a rerun, like a student
        await asyncio.sleep(rng.uniform(0.5, 1.0))
        if not await guarded(s, "train", f"set {key}", lambda: s.change(key, value)):
            return
    for run in range(max_runs):
        if time.monotonic() >= deadline:
            break
        if seeds is not None and not await guarded(s, "train", "set train_seed",
                                                   lambda: s.change("train_seed", seeds(run))):
            return
        finished_before = len({t for t in s.texts if FINISHED.search(t)})
        clicked = time.perf_counter()
        if not await guarded(s, "train", "click Train", lambda: s.change("train_start")):
            return
        s.runs_started += 1
        await poll_live_view(s, deadline + grace)  # a run started in time may finish within the grace
        if len({t for t in s.texts if FINISHED.search(t)}) > finished_before:
            s.record("train-done", "click Train to a finished model", time.perf_counter() - clicked)
        await asyncio.sleep(rng.uniform(1.0, 2.0))  # read the result, then train again
    if s.find("train_stop") is not None:  # still training at the end: do not leave it to the server
        await guarded(s, "train", "click Stop", lambda: s.change("train_stop"))


# --- a class: the teacher, joining, the board ------------------------------------------------------------

PUSHED = [0.0]  # perf_counter() when the teacher's latest push was sent (one class per load test)
CLASS_CODE = re.compile(r"Class code: `([A-Z2-9]{3}) ([A-Z2-9]{3})`")


async def start_class(ws_url: str, timeout: float) -> tuple[Session, str]:
    """The teacher's tab opens the Class page and starts a class; returns the tab and the code."""
    PUSHED[0] = 0.0
    t = Session("teacher", "teacher", ws_url, timeout)
    await t.open()
    await t.goto("classroom")
    await t.change("classroom_start")
    found = [m for text in t.markdown() for m in [CLASS_CODE.search(text)] if m]
    if not found:
        raise LookupError("the Class page showed no class code")
    return t, "".join(found[0].groups())


async def join_class(s: Session, code: str):
    """Open the Class page, type the code and a name, press Join (each a rerun, as in a browser)."""
    await s.goto("classroom")
    for key, value in (("classroom_code", code), ("classroom_name", s.name)):
        if not await guarded(s, "open", f"type {key}", lambda: s.change(key, value)):
            return
    await guarded(s, "open", "join the class", lambda: s.change("classroom_join"))


async def teacher(t: Session, rng: random.Random, deadline: float, every: float):
    """On the Attention page, the teacher picks another head and pushes it to the class every `every` s."""
    try:
        await _push_heads(t, rng, deadline, every)
    finally:
        await t.close()


async def _push_heads(t: Session, rng: random.Random, deadline: float, every: float):
    await t.goto("attention")
    while time.monotonic() + every < deadline:
        await asyncio.sleep(every)
        value = t.new_value("attention_head", rng)
        if value is not None and not await guarded(t, "teacher", "pick a head", lambda: t.change("attention_head", value)):
            return
        sent = time.perf_counter()
        if not await guarded(t, "teacher", "push to the class", lambda: t.change("classroom_push")):
            return
        PUSHED[0] = sent


async def board_viewer(s: Session, deadline: float):
    """The class board open on the Class page, follow switched off: its refresh every second."""
    if await guarded(s, "open", "follow off", lambda: s.change("classroom_follow", False)):
        await poll_live_view(s, deadline, role="board")


# --- the server and its memory ------------------------------------------------------------------------

def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (training runs in threads, but a page could start processes)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                pass
    return out


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU time all processes of this machine used so far (to see who else competed with the server)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # user..steal; guest is inside user


class MemorySampler(threading.Thread):
    """Resident memory of some processes every 0.5 s (the server with its worker processes; the server
    alone; a Ray cluster's nodes); a thread, so a busy event loop in this tool cannot make it miss the peak."""

    def __init__(self, pid: int | list[int], every: float = 0.5, children: bool = True):
        super().__init__(daemon=True)
        self.roots, self.every, self.children = ([pid] if isinstance(pid, int) else pid), every, children
        self.start_rss = rss_bytes(self.pids())
        self.peak = self.start_rss
        self.start_cpu = cpu_seconds(self.pids())
        self.cpu = 0.0
        self._stop_event = threading.Event()

    def pids(self) -> list[int]:
        return [p for r in self.roots for p in (process_tree(r) if self.children else [r])]

    def run(self):
        while not self._stop_event.wait(self.every):
            self.peak = max(self.peak, rss_bytes(self.pids()))

    def stop(self):
        self._stop_event.set()
        self.join()
        pids = self.pids()
        self.peak = max(self.peak, rss_bytes(pids))
        self.cpu = cpu_seconds(pids) - self.start_cpu


# --- running it and reporting ---------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: p95 of 20 values is the 19th smallest."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 100)) - 1))]


def summarize(values: list[float]) -> dict:
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "p99": percentile(values, 99), "max": max(values) if values else float("nan")}


async def warm_up(ws_url: str, pages: list[str], timeout: float):
    """The teacher opens the app first: every page's imports and shared caches are loaded once."""
    s = Session("warm-up", "warm-up", ws_url, timeout)
    try:
        await s.open()
        for page in pages:
            await s.goto(page)
    finally:
        await s.close()


def seeds(args, student: int):
    """Each run of each student a training of its own, or (--identical) the whole class the same ones."""
    if args.identical:
        return lambda run: 1000 + run
    return lambda run: 1000 + student * args.max_runs + run


def role_of(args, i: int) -> str:
    n_train = min(args.trainers, args.sessions)
    return "train" if i < n_train else "board" if i < n_train + args.class_board else "inspect"


async def run_sessions(args, ws_url: str) -> list[Session]:
    rng = random.Random(args.seed)
    n_train = min(args.trainers, args.sessions)
    pages = args.pages.split(",")
    sessions, tasks = [], []
    code = None
    if args.class_board:
        t, code = await start_class(ws_url, args.timeout)
        sessions.append(t)
    start = time.monotonic()
    deadline = start + args.seconds
    if code:
        tasks.append(asyncio.create_task(teacher(t, random.Random(rng.random()), deadline, args.push_every)))
    for i in range(args.sessions):
        s = Session(f"s{i:02d}", role_of(args, i), ws_url, args.timeout)
        s.inspect_page = pages[(i - n_train) % len(pages)] if s.role == "inspect" else ""
        sessions.append(s)
        session_rng = random.Random(rng.random())

        async def student(s=s, r=session_rng, delay=args.ramp * i / max(1, args.sessions)):
            await asyncio.sleep(delay)  # tabs open over the first seconds, as a class logs in
            try:
                if code:
                    await s.open()
                    await join_class(s, code)
                    if s.role == "train":  # explores alone: a push would take the tab away from Train
                        await guarded(s, "open", "follow off", lambda: s.change("classroom_follow", False))
                if s.role == "board":
                    await board_viewer(s, deadline)
                elif s.role == "train":
                    await training_student(s, r, deadline, args.train_settings, args.max_runs, args.grace,
                                           seeds(args, i), opened=bool(code))
                else:
                    await inspecting_student(s, s.inspect_page, r, deadline, args.max_actions, follow=bool(code),
                                             opened=bool(code))
            except Timeout:  # opening the app or a page took longer than --timeout: the student gives up
                s.timeouts["open"] += 1
                s.problems.append(f"opening the app or its page took over {args.timeout:g} s: gave up")
            except (KeyError, ConnectionError, OSError, websockets.WebSocketException) as e:
                s.problems.append(f"{type(e).__name__}: {e}")
            finally:
                await s.close()

        tasks.append(asyncio.create_task(student()))
    # a hard bound on top of each session's own: the deadline plus one slow request
    limit = args.ramp + args.seconds + args.grace + 2 * args.timeout + 30
    done, pending = await asyncio.wait(tasks, timeout=limit)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for s, t in zip(sessions, tasks):
        if t in pending:
            s.problems.append("still running at the hard time limit: cancelled")
    return sessions


def report(args, sessions: list[Session], sampler: MemorySampler | None, server_errors: list[str],
           wall: float, client_cpu: float, machine_cpu: float, extra_memory: dict | None = None) -> dict:
    extra_memory = extra_memory or {}
    by_role, by_action, per_session = defaultdict(list), defaultdict(list), defaultdict(set)
    timeouts = Counter()
    for s in sessions:
        timeouts += s.timeouts
        for role, action, seconds in s.samples:
            by_role[role].append(seconds)
            by_action[action].append(seconds)
            per_session[role].add(s.name)
    exceptions = Counter(e for s in sessions for e in s.exceptions)
    alerts = sum((s.error_alerts for s in sessions), Counter())
    problems = Counter(p for s in sessions for p in s.problems)
    trainers = [s for s in sessions if s.role == "train"]
    result = {
        "sessions": len(sessions), "trainers": len(trainers), "seconds": args.seconds,
        "cpu_count": os.cpu_count(), "wall_s": wall, "machine_cpu_cores_busy": machine_cpu / wall,
        "roles": {role: {**summarize(v), "sessions": len(per_session[role]), "timeouts": timeouts[role]}
                  for role, v in by_role.items()},
        "actions": {a: summarize(v) for a, v in sorted(by_action.items())},
        "exceptions": dict(exceptions), "error_messages": dict(alerts), "problems": dict(problems),
        "server_log_errors": server_errors,
        "server_rss_start_mb": sampler.start_rss / 2**20 if sampler else None,
        "server_rss_peak_mb": sampler.peak / 2**20 if sampler else None,
        "server_cpu_cores_busy": sampler.cpu / wall if sampler else None,
        "loadtest_cpu_cores_busy": client_cpu / wall,
        "trainings": {"started": sum(s.runs_started for s in trainers),
                      "finished": sum(len({t for t in s.texts if FINISHED.search(t)}) for s in trainers),
                      "highest_step_seen": max((s.max_step for s in trainers), default=0)},
        "per_session": [{"name": s.name, "role": s.role, "page": s.inspect_page,
                         "interactions": sum(r in ("inspect", "train", "train-live") for r, _, _ in s.samples),
                         "latencies": [x for _, _, x in s.samples], "exceptions": s.exceptions,
                         "problems": s.problems, "timeouts": sum(s.timeouts.values()), "max_step": s.max_step,
                         "runs_started": s.runs_started, "texts": list(s.texts)[-20:]} for s in sessions],
    }
    inspect = result["roles"].get("inspect")
    minutes = (args.seconds + args.grace) / 60
    result["capacity"] = {
        "backend": args.backend, "identical": args.identical,
        "finished_per_minute": result["trainings"]["finished"] / minutes,
        "click_to_model": summarize(by_action.get("click Train to a finished model", [])),
        "inspect_p95": inspect["p95"] if inspect else None,
        "server_alone_rss_peak_mb": extra_memory.get("server alone", 0) / 2**20,
        "cluster_rss_peak_mb": extra_memory.get("ray cluster", 0) / 2**20,
    }
    result["goal_met"] = bool(inspect and inspect["p95"] < GOAL_P95_S and not timeouts["inspect"])

    def row(name, st, extra=""):
        return (f"{name:<36}{st['n']:>6}{st['p50']:>8.2f}{st['p95']:>8.2f}{st['p99']:>8.2f}{st['max']:>8.2f}"
                + extra)

    print(f"\ngptviz load test: {len(sessions)} sessions ({len(trainers)} training), {args.seconds:g} s, "
          f"{os.cpu_count()} CPUs, wall {wall:.0f} s")
    print(f"{'role':<36}{'n':>6}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}  sessions timeouts   (seconds)")
    for role in ("open", "inspect", "train", "train-live", "train-done", "board", "follow", "follow-applied",
                 "teacher"):
        if role in result["roles"]:
            st = result["roles"][role]
            print(row(role, st, f"  {st['sessions']:>8}{st['timeouts']:>9}"))
    print("by action:")
    for action, st in result["actions"].items():
        print(row("  " + action, st))
    if inspect:
        print(f"inspect p95 {inspect['p95']:.2f} s: goal < {GOAL_P95_S} s "
              + ("met" if result["goal_met"] else "NOT met"))
    t = result["trainings"]
    print(f"trainings: {t['started']} started, {t['finished']} finished, highest step seen {t['highest_step_seen']}")
    c = result["capacity"]
    print(f"backend {c['backend']}: {c['finished_per_minute']:.1f} trainings finished per minute; click to a finished "
          f"model p50 {c['click_to_model']['p50']:.1f} s, p95 {c['click_to_model']['p95']:.1f} s")
    for name, peak in extra_memory.items():
        print(f"{name}: peak RSS {peak / 2**20:,.0f} MB")
    if sampler:
        print(f"server memory: peak RSS {result['server_rss_peak_mb']:,.0f} MB "
              f"(at start {result['server_rss_start_mb']:,.0f} MB); "
              f"server CPU {result['server_cpu_cores_busy']:.2f} cores busy on average")
    print(f"load generator CPU {result['loadtest_cpu_cores_busy']:.2f} cores busy on average "
          "(it shares the machine with the server)")
    if sampler:  # whatever else ran here took CPU from the server: say so next to its numbers
        others = (machine_cpu - client_cpu - sampler.cpu) / wall
        result["other_processes_cpu_cores_busy"] = others
        print(f"other processes on this machine: {others:.2f} cores busy on average"
              + (": they competed with the server, the latencies above are pessimistic" if others > 0.2 else ""))
    for title, items in (("exceptions in pages", exceptions), ("error messages shown", alerts),
                         ("problems", problems)):
        print(f"{title}: " + ("none" if not items else ""))
        for text, n in items.most_common(10):
            print(f"  {n:>4} x {text}")
    print(f"server log errors: {len(server_errors)}" + "".join(f"\n  {e}" for e in server_errors[:10]))
    return result


async def amain(args) -> dict:
    server = cluster = None
    try:
        if args.url:
            base, pid = args.url.rstrip("/"), args.pid
        else:
            env = dict(kv.split("=", 1) for kv in args.server_env)
            if args.max_trainings:
                env["GPTVIZ_MAX_TRAININGS"] = str(args.max_trainings)
            if args.backend:
                env["GPTVIZ_TRAINING_BACKEND"] = args.backend
            if args.backend == "ray":  # two `ray start` nodes on this machine: the lab's set-up, in small
                from tools.ray_cluster import LocalRayCluster

                cluster = await asyncio.to_thread(LocalRayCluster(args.ray_nodes, args.ray_cpus).start_here)
                env["GPTVIZ_RAY_ADDRESS"] = cluster.address
                print(f"ray cluster {cluster.address} ({args.ray_nodes} nodes, pids {cluster.pids})", flush=True)
            server = await asyncio.to_thread(Server, ROOT, env, None, args.server_arg)
            base, pid = server.url, server.pid
            print(f"server {base} (pid {pid}, log {server.log_path})", flush=True)
        result = await measure(args, base, pid, cluster, server)
    finally:
        if server:
            server.stop()
        if cluster:
            cluster.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


async def measure(args, base: str, pid: int | None, cluster, server) -> dict:
    ws_url = base.replace("http", "ws", 1) + "/_stcore/stream"
    pages = sorted({p for p in args.pages.split(",")} | ({"train"} if args.trainers else set())
                   | ({"classroom"} if args.class_board else set()))
    if args.warmup:
        await warm_up(ws_url, pages, args.timeout)
    samplers = {}  # the server with its worker processes, the server alone, the Ray nodes
    if pid:
        samplers = {"server": MemorySampler(pid), "server alone": MemorySampler(pid, children=False)}
    if cluster:
        samplers["ray cluster"] = MemorySampler(cluster.pids)
    for sampler in samplers.values():
        sampler.start()
    t0, c0, m0 = time.monotonic(), sum(os.times()[:2]), machine_cpu_seconds()
    sessions = await run_sessions(args, ws_url)
    wall, client_cpu = time.monotonic() - t0, sum(os.times()[:2]) - c0
    machine_cpu = machine_cpu_seconds() - m0
    for sampler in samplers.values():
        sampler.stop()
    extra = {name: s.peak for name, s in samplers.items() if name != "server"}
    return report(args, sessions, samplers.get("server"), server.log_errors() if server else [], wall, client_cpu,
                  machine_cpu, extra)


def parse_args(argv=None, prog="python -m tools.loadtest"):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=30, help="browser tabs at once (default 30)")
    p.add_argument("--trainers", type=int, default=4, help="how many of them train (default 4)")
    p.add_argument("--seconds", type=float, default=60, help="how long the students work (default 60)")
    p.add_argument("--ramp", type=float, default=5, help="seconds over which the tabs open (default 5)")
    p.add_argument("--pages", default="next_token,attention",
                   help="inspection pages, by url path, shared out among inspecting students")
    p.add_argument("--max-actions", type=int, default=200, help="interactions per inspecting student at most")
    p.add_argument("--max-runs", type=int, default=5, help="trainings per training student at most")
    p.add_argument("--grace", type=float, default=0,
                   help="seconds a training student keeps watching a run that is still going at the end")
    p.add_argument("--train-iters", type=int, default=TRAIN_SETTINGS["train_max_iters"],
                   help="iterations of each training (a multiple of 20)")
    p.add_argument("--timeout", type=float, default=30, help="seconds one interaction may take")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-warmup", dest="warmup", action="store_false",
                   help="measure the cold start too (by default one tab opens every page first)")
    p.add_argument("--max-trainings", type=int, default=0,
                   help="GPTVIZ_MAX_TRAININGS for the server started here (default: the app's own)")
    p.add_argument("--server-arg", action="append", default=[], metavar="--OPTION=VALUE",
                   help="an option for `streamlit run` of the server started here, to try a setting "
                        "(e.g. --server-arg=--runner.postScriptGC=false); repeatable")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="an environment variable for the server started here (e.g. OMP_NUM_THREADS=1); repeatable")
    p.add_argument("--backend", choices=["threads", "processes", "ray"], default=None,
                   help="where the server started here trains (default: the app's own, worker processes); "
                        "ray starts a local Ray cluster of --ray-nodes nodes for it")
    p.add_argument("--backends", default=None, metavar="A,B,...",
                   help="run the whole test once per backend (e.g. threads,processes,ray) and compare them")
    p.add_argument("--ray-nodes", type=int, default=2, help="nodes of the local Ray cluster (default 2)")
    p.add_argument("--ray-cpus", type=int, default=1, help="CPUs each Ray node offers (default 1)")
    p.add_argument("--identical", action="store_true",
                   help="every training student trains the same settings (one training serves them all)")
    p.add_argument("--class-board", type=int, default=0, metavar="N",
                   help="put everyone in a class: a teacher pushes, N students keep the board open, the inspecting "
                        "students follow the teacher (default 0: no class)")
    p.add_argument("--push-every", type=float, default=10, help="seconds between the teacher's pushes (default 10)")
    p.add_argument("--url", help="an already running server (http://127.0.0.1:PORT) instead of starting one")
    p.add_argument("--pid", type=int, help="with --url: the server's process id, for its memory")
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args(argv)
    if args.url and not re.match(r"^https?://(127\.0\.0\.1|localhost)(:\d+)?/?$", args.url):
        p.error("--url must be a server on 127.0.0.1")
    args.train_settings = {**TRAIN_SETTINGS, "train_max_iters": args.train_iters,
                           "train_eval_interval": min(TRAIN_SETTINGS["train_eval_interval"], args.train_iters)}
    return args


def main(argv=None, prog="python -m tools.loadtest") -> int:
    args = parse_args(argv, prog)
    if not args.backends:
        asyncio.run(amain(args))
        return 0
    results = {}
    for backend in args.backends.split(","):  # one after another: they would compete for the same cores
        print(f"\n=== backend {backend} ===", flush=True)
        results[backend] = asyncio.run(amain(argparse.Namespace(**{**vars(args), "backend": backend,
                                                                    "json": None})))
    print_comparison(args, results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def print_comparison(args, results: dict):
    """The README's table: one row per backend."""
    print(f"\n{len(next(iter(results.values()))['per_session'])} sessions, {args.trainers} training, "
          f"{args.seconds:g} s (+{args.grace:g} s grace), {os.cpu_count()} CPUs")
    print("| backend | trainings finished / min | click → model p50 · p95 | inspect p95 | server RSS peak (alone · "
          "with workers) | Ray nodes RSS peak |")
    print("|---|---:|---:|---:|---:|---:|")
    for backend, r in results.items():
        c = r["capacity"]
        ray_mb = f"{c['cluster_rss_peak_mb']:,.0f} MB" if c["cluster_rss_peak_mb"] else "–"
        print(f"| {backend} | {c['finished_per_minute']:.1f} | {c['click_to_model']['p50']:.1f} s · "
              f"{c['click_to_model']['p95']:.1f} s | {c['inspect_p95']:.2f} s | {c['server_alone_rss_peak_mb']:,.0f} · "
              f"{r['server_rss_peak_mb']:,.0f} MB | {ray_mb} |")


if __name__ == "__main__":
    sys.exit(main())
