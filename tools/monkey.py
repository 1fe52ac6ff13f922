"""The monkey: three students who click, type, drag and pick at random on every page, in real Chromium.

    python -m tools.monkey --minutes 20            # a real server in a scratch copy of the app
    python -m tools.monkey --minutes 2 --seed 7    # another sequence of actions

Every action uses a widget found in the page's DOM (buttons, sliders by keyboard and by drag, number
inputs at and beyond their limits, selectboxes including the sidebar's model picker, text boxes with odd
and very long text, uploads of random bytes, clicks on charts). After each one the monkey checks what a
student must never see: an exception box, Streamlit's redacted "This app has encountered an error", a
traceback in the server's log, or a sidebar that shows another model than the one the student chose.
A failure is printed with the seed and the session's actions, which replay the same choices.

A failure is always the app's: the monkey knows which actions change the model on purpose (the sidebar
picker, a good checkpoint opened there, a lesson button that opens the bundled model — read from the
lesson's own steps — and a finished run opening itself), and a fault in its own code is raised as a
`MonkeyBug`, never counted as a failure of the app.
tests/browser/test_monkey.py runs a short version in CI.
"""

from __future__ import annotations

import argparse
import random
import shutil
import string
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect
from playwright.sync_api import sync_playwright

from tools.chromium import launch, wait_idle
from tools.server import ROOT, Server
from ui import lesson, state
from ui.models import ModelKey

CHECKPOINT = ROOT / "checkpoints" / "shakespeare-char.safetensors"
SIDEBAR_PICKER = "[data-testid=stSidebar] [data-testid=stSelectbox] input[role=combobox]"
ERROR_BOX = "[data-testid=stException]"
ACTION_TIMEOUT_MS = 10_000  # a click or key press that cannot happen by then is skipped as "blocked"
REDACTED = "This app has encountered an error"
SKIP_BUTTONS = ("Run the whole ladder",)  # five trainings per click: minutes of CPU, nothing new to try


def sidebar_label(key: str) -> str:
    """The picker's label of a server checkpoint's key ("ckpt:NAME" -> "💾 NAME", as ui/models.py shows it)."""
    parsed = ModelKey.parse(key)
    assert parsed.kind == ModelKey.CKPT, key  # a lesson step opens a checkpoint on the server, never a run
    return f"💾 {parsed.name}"


# Buttons that open a model on purpose: button label -> the model the sidebar must then show.
MODEL_BUTTONS = {step.button: sidebar_label(step.settings[state.MODEL]) for step in lesson.STEPS
                 if state.MODEL in step.settings}


class MonkeyBug(Exception):
    """A fault in the monkey's own code: a bug in the tool, never a failure of the app."""

# kind -> (CSS selector of the widgets it acts on, weight). "reload" acts on the page itself.
KINDS = {
    "page": ("[data-testid=stSidebarNav] a", 3),
    "button": ("[data-testid=stButton] button, [data-testid=stDownloadButton] button", 4),
    "slider_keys": ("[data-testid=stSlider] input[type=range]", 4),
    "slider_drag": ("[data-testid=stSlider] input[type=range]", 2),
    "number": ("[data-testid=stNumberInput] input", 3),
    "number_step": ("[data-testid=stNumberInputStepUp], [data-testid=stNumberInputStepDown]", 1),
    "select": ("[data-testid=stSelectbox] input[role=combobox], [data-testid=stMultiSelect] input[role=combobox]", 4),
    "text": ("[data-testid=stTextArea] textarea, [data-testid=stTextInput] input", 3),
    "upload": ("[data-testid=stFileUploader] input[type=file]", 1),
    "toggle": ("[data-testid=stCheckbox] label, [data-testid=stRadio] label, [data-testid=stExpander] summary, "
               "button[role=tab]", 2),
    "chart": ("[data-testid=stPlotlyChart] .js-plotly-plot, [data-testid=stVegaLiteChart] canvas", 2),
    "reload": (None, 0.2),
}

ODD_TEXTS = [
    "", " ", "\n\n\n", "ROMEO:\n", "a", "€ ü ß ñ", "你好，世界", "שלום עולם", "🦜🔥👩‍👩‍👧", "e\u0301\u0301\u0301",
    "zero\u200bwidth\u200d\ufeff", "\x07bell\ttab\x0b", "<script>alert(1)</script>", "**bold** $x^2$ `code` [a](b)",
    "<|endoftext|>", "' OR 1=1; --", "%s %d {0} {}", "\\u0000 \\n", "NaN", "-1", "1e400", "\u202eevil",
]
NUMBERS = ["", "abc", "-0", "3.5", "1e9", "1e400", "-99999999999", "99999999999999999999"]


@dataclass
class Failure:
    session: int
    problem: str
    actions: list[str]


@dataclass
class Report:
    seed: int
    seconds: float = 0.0
    counts: Counter = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)

    def describe(self, last: int = 25) -> str:
        lines = [f"monkey seed {self.seed}: {sum(self.counts.values())} actions in {self.seconds:.0f} s "
                 f"({', '.join(f'{k} {n}' for k, n in self.counts.most_common())}); {len(self.failures)} failure(s)"]
        for f in self.failures:
            lines += [f"FAILURE in session {f.session}: {f.problem}",
                      f"  its last {min(last, len(f.actions))} of {len(f.actions)} actions:"]
            lines += [f"    {a}" for a in f.actions[-last:]]
        return "\n".join(lines)


def odd_text(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.15:  # a very long prompt
        return "".join(rng.choice(string.printable) for _ in range(rng.choice([300, 3_000, 20_000])))
    if roll < 0.3:  # Shakespeare-like, mostly known characters
        return rng.choice(["ROMEO:\nBut soft, what light", "To be, or not to be", "KING:\nWhat say you?"]) * \
            rng.randint(1, 4)
    return rng.choice(ODD_TEXTS) + rng.choice(["", "ROMEO:", rng.choice(ODD_TEXTS)])


def damaged(good: bytes, rng: random.Random) -> bytes:
    """The first 0..len-1 bytes of a file, with up to 20 bits flipped (none in an empty cut)."""
    cut = bytearray(good[:rng.randrange(len(good))] if good else b"")
    for _ in range(rng.randint(0, 20) if cut else 0):
        cut[rng.randrange(len(cut))] ^= 1 << rng.randrange(8)
    return bytes(cut)


def upload_file(rng: random.Random, accept: str) -> dict:
    """A file a student (or a broken disk) might pick: random bytes, a text, or a damaged checkpoint."""
    ext = rng.choice([e.strip() for e in (accept or ".txt").split(",") if e.strip()] + [".bin"])
    good = CHECKPOINT.read_bytes()
    roll = rng.random()
    if ext == ".safetensors" and roll < 0.25:
        data, what = good, "the bundled checkpoint"
    elif ext == ".safetensors" and roll < 0.5:
        data, what = damaged(good, rng), "a damaged checkpoint"
    elif roll < 0.75:
        data, what = odd_text(rng).encode("utf-8", "surrogatepass") * rng.randint(1, 50), "a text"
    else:
        data, what = rng.randbytes(rng.choice([0, 1, 100, 5_000, 100_000])), "random bytes"
    name = rng.choice(["model", "my text", "ÜBER", "../../etc", "a" * 120, "x"]) + ext
    return {"name": name, "mimeType": "application/octet-stream", "buffer": data, "what": what}


class Student:
    """One browser session doing random things; it remembers which model it chose."""

    def __init__(self, index: int, context, url: str, rng: random.Random):
        self.index, self.url, self.rng = index, url, rng
        self.page = context.new_page()
        self.page.set_default_timeout(ACTION_TIMEOUT_MS)
        self.actions: list[str] = []
        self.chosen = None  # the sidebar label this student picked (None: whatever the app opened on)
        self.seen_models: set[str] = set()
        self.open()

    def open(self):
        self.page.goto(self.url, timeout=90_000)
        wait_idle(self.page, timeout=90_000)
        self.chosen = self.sidebar_model()
        self.seen_models.add(self.chosen)

    def sidebar_model(self) -> str | None:
        picker = self.page.locator(SIDEBAR_PICKER)
        return picker.input_value(timeout=30_000) if picker.count() else None

    def candidates(self) -> dict[str, list[dict]]:
        """kind -> the visible, enabled widgets it can act on now, each with a label to log."""
        return self.page.evaluate(
            """kinds => Object.fromEntries(Object.entries(kinds).map(([kind, sel]) => [kind,
                 Array.from(document.querySelectorAll(sel)).map((e, i) => {
                   const r = e.getBoundingClientRect(), box = e.closest('[data-testid]');
                   return {i, label: (e.getAttribute('aria-label') || e.innerText || e.getAttribute('href') || '')
                             .trim().slice(0, 60),
                           ok: !e.disabled && e.getAttribute('aria-disabled') !== 'true'
                               && (e.type === 'file' || (r.width > 0 && r.height > 0)),
                           sidebar: !!e.closest('[data-testid=stSidebar]'), accept: e.getAttribute('accept') || '',
                           min: e.getAttribute('min'), max: e.getAttribute('max'), box: box && box.dataset.testid};
                 }).filter(c => c.ok)]))""", {k: sel for k, (sel, _) in KINDS.items() if sel})

    def step(self) -> str:
        """One random action on a widget of the page; returns its kind ("blocked": the browser could not act)."""
        found = self.candidates()
        for kind, targets in found.items():
            found[kind] = [t for t in targets if not (kind == "button" and t["label"].startswith(SKIP_BUTTONS))]
        kinds = [k for k in KINDS if k == "reload" or found.get(k)]
        kind = self.rng.choices(kinds, [KINDS[k][1] for k in kinds])[0]
        if kind == "reload":
            self.log(kind, "page", "")
            self.open()
            return kind
        target = self.rng.choice(found[kind])
        try:
            getattr(self, f"_{kind}")(self.page.locator(KINDS[kind][0]).nth(target["i"]), target)
        except PlaywrightError:  # covered, moved, gone or refused (text in a number box): not the app's fault
            self.log("blocked", target["label"], kind)
            self.page.keyboard.press("Escape")
            kind = "blocked"
        wait_idle(self.page, timeout=90_000)
        return kind

    def log(self, kind, target, value):
        self.actions.append(f"{self.index}:{len(self.actions)} {kind} {target!r} {value!r}"[:300])

    # --- the actions: each logs what it does before doing it -------------------------------------
    def _page(self, el, t):
        self.log("page", t["label"], "")
        el.click()

    def _button(self, el, t):
        self.log("button", t["label"], "")
        el.click()
        if "Delete this model" in t["label"]:  # the picker falls back to another model: the app's choice
            self.chosen = None
        opens = [model for button, model in MODEL_BUTTONS.items() if button in t["label"]]
        if opens:  # a lesson step that opens a model: the student chose it by clicking
            self.chosen = opens[0]

    def _slider_keys(self, el, t):
        keys = [self.rng.choice(["ArrowLeft", "ArrowRight", "Home", "End", "PageUp", "PageDown"])
                for _ in range(self.rng.randint(1, 6))]
        self.log("slider_keys", t["label"], keys)
        el.focus()
        for key in keys:
            el.press(key)
        self.page.wait_for_timeout(300)  # the slider sends its value when the keys stop

    def _slider_drag(self, el, t):
        box = el.bounding_box()
        if not box:
            return
        fraction = self.rng.random()
        self.log("slider_drag", t["label"], round(fraction, 3))
        y = box["y"] + box["height"] / 2
        self.page.mouse.move(box["x"] + box["width"] / 2, y)
        self.page.mouse.down()
        self.page.mouse.move(box["x"] + fraction * box["width"], y, steps=5)
        self.page.mouse.up()
        self.page.wait_for_timeout(300)

    def _number(self, el, t):
        lo, hi = t["min"], t["max"]
        limits = [v for v in (lo, hi) if v not in (None, "")]
        beyond = [str(float(v) + d) for v in limits for d in (-1, 1)]
        value = self.rng.choice(limits + beyond + NUMBERS) if self.rng.random() < 0.8 else str(self.rng.randint(-5, 500))
        how = self.rng.choice(["Enter", "Tab"])
        self.log("number", t["label"], f"{value} + {how}")
        el.fill(value)
        el.press(how)

    def _number_step(self, el, t):
        n = self.rng.randint(1, 4)
        self.log("number_step", t["label"], n)
        for _ in range(n):
            el.click()

    def _select(self, el, t):
        el.click()
        options = self.page.get_by_role("option")
        try:
            options.first.wait_for(timeout=3_000)
        except Exception:  # an empty list (e.g. a multiselect with everything chosen)
            self.log("select", t["label"], "<no options>")
            self.page.keyboard.press("Escape")
            return
        texts = options.all_inner_texts()
        if not texts:  # the list closed between the wait and the read (a rerun redrew it)
            self.log("select", t["label"], "<options gone>")
            self.page.keyboard.press("Escape")
            return
        n = self.rng.randrange(len(texts))
        self.log("select", t["label"], texts[n])
        options.nth(n).click()
        if t["sidebar"]:
            self.chosen = texts[n].strip()
        self.page.keyboard.press("Escape")  # a multiselect stays open

    def _text(self, el, t):
        text = odd_text(self.rng)
        how = "Control+Enter" if t["box"] == "stTextArea" else "Enter"
        how = self.rng.choice([how, "Tab"])
        self.log("text", t["label"], f"{text[:80]!r} ({len(text)} chars) + {how}")
        el.fill(text)
        el.press(how)

    def _upload(self, el, t):
        file = upload_file(self.rng, t["accept"])
        self.log("upload", "sidebar" if t["sidebar"] else "main", f"{file['what']} as {file['name']!r}, "
                 f"{len(file['buffer'])} bytes")
        what = file.pop("what")
        el.set_input_files(file, timeout=60_000)  # a checkpoint is 8 MB
        if t["sidebar"] and what == "the bundled checkpoint":  # a good checkpoint opens in the picker
            self.chosen = f"📂 {Path(file['name']).stem}"
            try:  # the file is sent after the rerun that shows it chosen: wait for that one
                expect(self.page.locator(SIDEBAR_PICKER)).to_have_value(self.chosen, timeout=60_000)
            except AssertionError:
                pass  # problems() reports it

    def _toggle(self, el, t):
        self.log("toggle", t["label"], "")
        el.click()

    def _chart(self, el, t):
        box = el.bounding_box()
        if not box:
            return
        x, y = self.rng.random(), self.rng.random()
        self.log("chart", t["label"] or "chart", (round(x, 2), round(y, 2)))
        self.page.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])
        self.page.wait_for_timeout(300)

    # --- what must never happen -----------------------------------------------------------------------
    def problems(self) -> list[str]:
        found = []
        if self.page.locator(ERROR_BOX).count():
            found.append("an exception box: " + self.page.locator(ERROR_BOX).first.inner_text()[:500])
        if self.page.get_by_text(REDACTED).count():
            found.append(f"Streamlit's redacted error: {REDACTED!r}")
        shown = self.sidebar_model()
        if self.chosen is None:
            self.chosen = shown
        if shown != self.chosen:
            if shown and shown.startswith("🧪") and shown not in self.seen_models:
                self.chosen = shown  # a run that just finished opens itself: the app's choice, once
            else:
                found.append(f"the sidebar shows {shown!r}, the student chose {self.chosen!r}")
        self.seen_models.add(shown)
        return found


def one_turn(student: Student, counts: Counter) -> list[str]:
    """One action and the checks after it: what the app did wrong. A fault of the monkey raises MonkeyBug."""
    try:
        kind = student.step()
        counts[kind] += 1
        return student.problems()
    except PlaywrightError as e:  # the page never settled: the app's (the browser did all that was asked)
        return [f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"]
    except Exception as e:  # anything else is the monkey's own fault: stop and say so
        raise MonkeyBug(f"the monkey itself failed in session {student.index} after "
                        f"{student.actions[-1:] or 'no action'}: {type(e).__name__}: {e}") from e


def run(browser, url: str, seconds: float, seed: int, log_errors, sessions: int = 3,
        stop_at_first: bool = True, progress=None) -> Report:
    """Drive `sessions` students on the server at `url` for `seconds`; `log_errors()` lists the server's errors."""
    report = Report(seed)
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(sessions)]
    try:
        students = [Student(i, c, url, random.Random(f"{seed}/{i}")) for i, c in enumerate(contexts)]
        start = time.monotonic()
        known_errors = len(log_errors())
        turn = 0
        while time.monotonic() - start < seconds:
            student = students[turn % sessions]
            turn += 1
            problems = one_turn(student, report.counts)
            errors = log_errors()
            problems += [f"server log: {line}" for line in errors[known_errors:]]
            known_errors = len(errors)
            if problems:
                report.failures.append(Failure(student.index, "; ".join(problems), list(student.actions)))
                if stop_at_first:
                    break
                student.open()  # start this student afresh and go on
            if progress:
                progress(report, time.monotonic() - start)
        report.seconds = time.monotonic() - start
    finally:
        for c in contexts:
            c.close()
    return report


def scratch_app() -> Path:
    """A copy of the app to serve: what the monkey saves (checkpoints) never lands in the real folder."""
    where = Path(tempfile.mkdtemp(prefix="gptviz-monkey-"))
    for name in ("app.py", "pages", "ui", "gptviz", "checkpoints", ".streamlit"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, where / name,
                                                            **({"ignore": shutil.ignore_patterns("__pycache__")}
                                                               if src.is_dir() else {}))
    return where


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.monkey", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sessions", type=int, default=3)
    p.add_argument("--keep-going", action="store_true", help="after a failure, reopen that session and go on")
    args = p.parse_args(argv)

    app = scratch_app()
    server = Server(app, {"GPTVIZ_MAX_TRAININGS": "1"}, app / "server.log")
    last = [0.0]

    def progress(report, elapsed):
        if elapsed - last[0] >= 60:
            last[0] = elapsed
            print(f"{elapsed / 60:.0f} min: {sum(report.counts.values())} actions, "
                  f"{len(report.failures)} failure(s)", flush=True)

    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            report = run(browser, server.url, args.minutes * 60, args.seed, server.log_errors, args.sessions,
                         stop_at_first=not args.keep_going, progress=progress)
            browser.close()
    finally:
        server.stop()
    print(report.describe())
    if report.failures:
        print(f"server log: {server.log_path}\nreproduce: python -m tools.monkey --seed {args.seed} "
              f"--minutes {args.minutes:g}")
        return 1
    shutil.rmtree(app, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
