"""What a student waits for: every control of every inspection page, timed in a real browser.

    python -m tools.browser_times [--repeats 5] [--heads 4,8] [--tokens 8,64] [--compare DIR] [--trace trace.json]
                                  [--under-load "--sessions 29 --trainers 4 --seconds 900"]

Starts the real app (a throw-away copy of this repository, plus an 8-head model) and drives Debian's
Chromium through each page. Each interaction is timed in the page, from just before the action until
Streamlit has finished the rerun (no script running, no stale element) and two more frames are painted;
the time splits into before the rerun (the browser sending the change, widget debounce), the rerun
(the server script plus the messages it streams) and after it (drawing). It also counts the bytes the
server sent over the websocket for the interaction. An action that causes no rerun is reported, not timed.

The 8-head model is the bundled model's configuration with n_head = 8 and seeded random weights:
timings do not depend on what the weights learned.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tools import trace_summary
from tools.chart_shots import app_copy, wait_idle
from tools.chromium import CHROMIUM, launch
from tools.server import ROOT, Server

BUNDLED = "shakespeare-char"
EIGHT_HEADS = "shakespeare-char-8heads"
# Prompts of exactly 8 and 64 characters (= tokens for the character model).
PROMPTS = {8: "ROMEO:\nI", 64: ("ROMEO:\nBut soft, what light through yonder window breaks? It is the")[:64]}

# Runs in the page: resolves once the rerun that follows `t0` has finished and two frames are painted.
WAIT_JS = """async ([t0, timeout]) => {
  const app = () => document.querySelector('[data-testid=stApp]');
  const log = window.__gvStates;
  const raf = () => new Promise(r => requestAnimationFrame(() => r(performance.now())));
  const deadline = t0 + timeout;
  while (true) {
    await raf();
    const now = performance.now();
    const started = log.find(e => e.t >= t0 && e.state === 'running');
    if (!started && now - t0 > 5000) return {rerun: false};
    if (now > deadline) return {rerun: true, timeout: true};
    if (!started) continue;
    const idle = app().getAttribute('data-test-script-state') === 'notRunning'
      && !document.querySelector('[data-stale=true], [data-testid=stSkeleton]');
    if (!idle) continue;
    const ended = [...log].reverse().find(e => e.state === 'notRunning').t;
    await raf(); const painted = await raf();
    if (app().getAttribute('data-test-script-state') !== 'notRunning') continue;  // a second run began
    return {rerun: true, start: started.t - t0, end: ended - t0, painted: painted - t0};
  }
}"""
OBSERVE_JS = """() => {
  window.__gvStates = [];
  const watch = () => {
    const app = document.querySelector('[data-testid=stApp]');
    if (!app) return setTimeout(watch, 20);
    new MutationObserver(() => window.__gvStates.push({t: performance.now(),
      state: app.getAttribute('data-test-script-state')})).observe(app, {attributes: true,
      attributeFilter: ['data-test-script-state']});
  };
  watch();
}"""


@dataclass
class Timing:
    name: str
    ms: list[float] = field(default_factory=list)
    before: list[float] = field(default_factory=list)
    rerun: list[float] = field(default_factory=list)
    after: list[float] = field(default_factory=list)
    kb: list[float] = field(default_factory=list)
    skipped: int = 0


class Driver:
    """One browser tab (one Streamlit session) and the bookkeeping of what it measures."""

    def __init__(self, browser, url: str):
        self.url = url
        self.page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        self.page.add_init_script(f"({OBSERVE_JS})()")
        self.received = 0
        self.page.on("websocket", lambda ws: ws.on(
            "framereceived", lambda payload: setattr(self, "received", self.received + len(payload))))
        self.timings: dict[str, Timing] = {}

    def open(self, path: str) -> float:
        """Open a page by its address (a fresh session); milliseconds from navigation start until it is drawn."""
        self.page.goto(f"{self.url}/{path}")
        result = self.page.evaluate(WAIT_JS, [0, 60_000])  # 0: the document's time origin, its navigation
        self.page.evaluate("name => performance.mark(name)", f"{trace_summary.END}open {path}")
        wait_idle(self.page)
        return result["painted"]

    def nav(self, link: str):
        """Click a sidebar link: the session and its prompt stay."""
        self.page.keyboard.press("Escape")  # close a picker's list left open
        self.page.get_by_role("link", name=link).click(force=True)
        wait_idle(self.page)

    def time(self, name: str, action):
        """Time action; a tuple (prepare, act) times only act (typing into a picker is the student's time)."""
        try:
            self._time(name, action)
        except Exception:
            self.page.screenshot(path="/tmp/browser-times-failure.png", full_page=True)
            raise

    def _time(self, name: str, action):
        page = self.page
        wait_idle(page)
        if isinstance(action, tuple):
            prepare, action = action
            prepare()
        self.received = 0
        t0 = page.evaluate("name => (performance.mark(name), performance.now())", trace_summary.START + name)
        action()
        result = page.evaluate(WAIT_JS, [t0, 30_000])
        page.evaluate("name => performance.mark(name)", trace_summary.END + name)  # for --trace
        page.wait_for_timeout(30)  # let the last websocket frames reach this process
        timing = self.timings.setdefault(name, Timing(name))
        if not result["rerun"]:
            timing.skipped += 1
            return
        timing.ms.append(result["painted"])
        timing.before.append(result["start"])
        timing.rerun.append(result["end"] - result["start"])
        timing.after.append(result["painted"] - result["end"])
        timing.kb.append(self.received / 1024)

    # --- the controls --------------------------------------------------------------------------------------------

    def edit_prompt(self, text: str):
        box = self.page.locator("[data-testid=stMain] textarea").first
        box.fill(text)
        box.press("Control+Enter")

    def slider(self, label: str, key: str):
        """(prepare, act): focus a slider, then press an arrow key."""
        thumb = self.page.locator(f'[data-testid=stMain] [role=slider][aria-label="{label}"], '
                                  f'[data-testid=stMain] input[type=range][aria-label="{label}"]').first
        return (thumb.focus, lambda: thumb.press(key))

    def select(self, label: str, option: str):
        """(prepare, act): open a picker and type the option (the list narrows to it), then press Enter."""
        box = self.page.locator(f'input[role=combobox][aria-label="{label}"]').first
        return (lambda: (box.click(), box.press_sequentially(option)), lambda: box.press("Enter"))

    def radio(self, text: str):
        self.page.locator("[data-testid=stMain] label").filter(
            has_text=re.compile(f"^{re.escape(text)}$")).first.click()

    def button(self, name: str):
        self.page.get_by_role("button", name=name).first.click()

    def click_chart(self, selector: str, fx: float, fy: float):
        target = self.page.locator(selector).first
        target.scroll_into_view_if_needed()
        box = target.bounding_box()
        self.page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)


def attention(d: Driver, n: int, tokens: int, prompt: str, other: str):
    d.nav("Attention")
    for i in range(n):
        d.time("attention: edit the prompt", lambda: d.edit_prompt(other if i % 2 == 0 else prompt))
    for i in range(n):
        d.time("attention: pick a layer", d.select("Layer", f"layer {1 + i % 2}"))
        d.time("attention: pick a head", d.select("Head", f"head {1 + i % 2}"))
        d.time("attention: move the query slider", d.slider("Query token (the one looking)",
                                                                    "ArrowLeft" if i % 2 == 0 else "ArrowRight"))
        d.time("attention: move the key slider", d.slider("Key token (the one looked at)",
                                                                  "ArrowRight" if i % 2 == 0 else "ArrowLeft"))
        d.time("attention: click a cell of the head", lambda: d.click_chart(
            "[data-testid=stVegaLiteChart] canvas, [data-testid=stVegaLiteChart] svg.marks", 0.3 + 0.05 * (i % 2), 0.8))
        if d.page.locator('[aria-label="Training step (timeline)"]').count():  # a model saved with snapshots
            d.time("attention: move the timeline", d.slider("Training step (timeline)",
                                                                    "ArrowLeft" if i % 2 == 0 else "ArrowRight"))
    if tokens < 64:  # a full window leaves no room to write
        d.page.locator("[data-testid=stExpander] summary").filter(has_text="Let the model write").click()
        wait_idle(d.page)
        for i in range(n):
            d.time("attention: generate tokens", lambda: d.button("Generate"))
            d.time("attention: step through generated", d.slider("Step through the generated tokens",
                                                                         "ArrowLeft" if i % 2 == 0 else "ArrowRight"))


def next_token(d: Driver, n: int, prompt: str, other: str):
    d.nav("Next token")
    for i in range(n):
        d.time("next token: edit the prompt", lambda: d.edit_prompt(other if i % 2 == 0 else prompt))
    for i in range(n):
        arrow = "ArrowLeft" if i % 2 == 0 else "ArrowRight"
        d.time("next token: temperature slider", d.slider("Temperature", arrow))
        d.time("next token: top-k slider", d.slider("Top-k", "ArrowRight" if i % 2 == 0 else "ArrowLeft"))
        d.time("next token: top-p slider", d.slider("Top-p (nucleus)", arrow))
        d.time("next token: click a bar (append)", lambda: d.click_chart(
            "[data-testid=stPlotlyChart] .barlayer .point path", 0.5, 0.5))
        d.time("next token: undo", lambda: d.button("Undo"))
        d.time("next token: sample one", lambda: d.button("Sample one"))
        d.time("next token: undo", lambda: d.button("Undo"))
    for _ in range(max(1, n // 2)):
        d.time("next token: sample 200 tokens", lambda: d.button("Sample 200 tokens"))


def layers(d: Driver, n: int, prompt: str, other: str):
    d.nav("Inside the layers")
    for i in range(n):
        d.time("layers: edit the prompt", lambda: d.edit_prompt(other if i % 2 == 0 else prompt))
    for i in range(n):
        d.time("layers: move the lens position", d.slider("Position",
                                                                  "ArrowLeft" if i % 2 == 0 else "ArrowRight"))
        d.time("layers: silence a head", d.select("Heads to silence", f"L{i % 2} H1"))
        d.time("layers: un-silence the head", lambda: d.page.locator(
            'input[role=combobox][aria-label="Heads to silence"]').press("Backspace"))


def embeddings(d: Driver, n: int):
    d.nav("Embeddings")
    for i in range(n):
        d.time("embeddings: 2-D / 3-D", lambda: d.radio("3-D" if i % 2 == 0 else "2-D"))
        d.time("embeddings: colour by", lambda: d.radio("frequency in the training text" if i % 2 == 0
                                                        else "kind of character"))
        d.time("embeddings: pick a token", d.select("Token", f"{'ao'[i % 2]}   (id {(39, 53)[i % 2]})"))
        d.time("embeddings: neighbours slider", d.slider("How many neighbours",
                                                                 "ArrowLeft" if i % 2 == 0 else "ArrowRight"))


def pick_model(d: Driver, name: str):
    d.page.locator("[data-testid=stSidebar] input[role=combobox]").click()
    d.page.get_by_role("option", name=name).first.click()
    wait_idle(d.page)


def measure(browser, url: str, model: str, tokens: int, n: int) -> tuple[dict[str, Timing], list[float]]:
    d = Driver(browser, url)
    opens = [d.open("attention")]
    if model != BUNDLED:
        pick_model(d, model)
    prompt = PROMPTS[tokens]
    other = prompt[:-1] + ("X" if prompt[-1] != "X" else "Y")
    d.edit_prompt(prompt)
    wait_idle(d.page)
    for section in (lambda: attention(d, n, tokens, prompt, other), lambda: next_token(d, n, prompt, other),
                    lambda: layers(d, n, prompt, other), lambda: embeddings(d, n)):
        try:
            section()
        except Exception as e:  # report what was measured; say what was not
            print(f"(a page's interactions stopped early: {type(e).__name__}: {str(e).splitlines()[0]})")
    for path in ("attention", "next_token", "layers", "embeddings"):
        opens.append(d.open(path))
    d.page.context.close()
    return d.timings, opens[1:]  # the first open may pay for a cold server


def eight_head_checkpoint(folder: Path) -> Path:
    from gptviz.checkpoints import CHECKPOINT_DIR, load_checkpoint, save_checkpoint
    from gptviz.model import GPT

    ck = load_checkpoint(CHECKPOINT_DIR / f"{BUNDLED}.safetensors")
    torch.manual_seed(0)
    config = ck.model.config.__class__(**{**ck.model.config.__dict__, "n_head": 8})
    path = folder / f"{EIGHT_HEADS}.safetensors"
    save_checkpoint(path, GPT(config).eval(), ck.tokenizer, {"corpus": ck.meta.get("corpus", "tinyshakespeare"),
                                                             "note": "untrained: for timings only"})
    return path


def p90(xs):
    return sorted(xs)[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]


def report(label: str, timings: dict[str, Timing], opens: list[float]):
    print(f"\n### {label}\n")
    print("| interaction | median ms | before · rerun · after | KB sent | runs |")
    print("|---|---:|---:|---:|---:|")
    every = []
    for t in timings.values():
        if not t.ms:
            print(f"| {t.name} | – | no rerun | – | 0 (+{t.skipped} without a rerun) |")
            continue
        every += t.ms
        med = statistics.median
        print(f"| {t.name} | {med(t.ms):.0f} | {med(t.before):.0f} · {med(t.rerun):.0f} · {med(t.after):.0f} "
              f"| {med(t.kb):.0f} | {len(t.ms)}{f' (+{t.skipped} without a rerun)' if t.skipped else ''} |")
    print(f"\nAll interactions: median **{statistics.median(every):.0f} ms**, p90 **{p90(every):.0f} ms** "
          f"({len(every)} timed). Opening a page on the warm server: median {statistics.median(opens):.0f} ms, "
          f"slowest {max(opens):.0f} ms.")
    return every


def class_around(server: Server, load_args: str) -> subprocess.Popen:
    """The load test against `server`, started and given time to open its tabs before the timings begin."""
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a pipe nobody reads would stall it
    load = subprocess.Popen([sys.executable, "-m", "tools.loadtest", "--url", server.url, "--pid", str(server.pid),
                             *shlex.split(load_args)], stdout=log, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    load.log = log
    time.sleep(20)  # the tabs open over the first seconds (--ramp) and warm up
    if load.poll() is not None:
        raise SystemExit(f"the load test stopped at once:\n{report_of(load)}")
    return load


def report_of(load: subprocess.Popen) -> str:
    load.wait()
    load.log.seek(0)
    return load.log.read()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="times each interaction is timed")
    parser.add_argument("--heads", default="4,8", help="4 (the bundled model) and/or 8 (same shape, 8 heads)")
    parser.add_argument("--tokens", default="8,64", help="prompt lengths: 8 and/or 64")
    parser.add_argument("--compare", type=Path, default=None, metavar="DIR",
                        help="another checkout of the app (e.g. `git archive main | tar -x -C DIR`): both run at "
                             "once and are timed in turns, so a busy machine slows both alike")
    parser.add_argument("--trace", type=Path, default=None,
                        help="also write a Chrome DevTools performance trace of the first run here, and say where "
                             "each interaction's time went (python -m tools.trace_summary reads it again)")
    parser.add_argument("--under-load", metavar="ARGS", default=None,
                        help="time while `python -m tools.loadtest ARGS` drives the same server (a class around "
                             "this student), e.g. \"--sessions 29 --trainers 4 --seconds 900\"; give it seconds "
                             "enough to outlast the timings: its report follows theirs")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    apps = {"this checkout": ROOT, **({f"{args.compare}": args.compare} if args.compare else {})}
    copies, servers, load = {}, {}, None
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        for label, folder in apps.items():
            copies[label] = app_copy(folder, [])
            eight_head_checkpoint(copies[label] / "checkpoints")
            servers[label] = Server(copies[label], log_path=copies[label].parent / "server.log")
        every = {label: [] for label in apps}
        load = class_around(servers[next(iter(apps))], args.under_load) if args.under_load else None
        with sync_playwright() as p:
            browser = launch(p)
            turn = 0
            for heads in [int(h) for h in args.heads.split(",")]:
                for tokens in [int(t) for t in args.tokens.split(",")]:
                    model = BUNDLED if heads == 4 else EIGHT_HEADS
                    order = list(apps) if turn % 2 == 0 else list(apps)[::-1]  # take turns going first
                    turn += 1
                    for label in order:
                        tracing = args.trace is not None and not any(every.values())
                        if tracing:
                            browser.start_tracing(path=str(args.trace), screenshots=False)
                        timings, opens = measure(browser, servers[label].url, model, tokens, args.repeats)
                        if tracing:
                            browser.stop_tracing()
                            print(trace_summary.report(args.trace))
                        every[label] += report(f"{label}: {heads} heads, {tokens}-token prompt ({model})",
                                               timings, opens)
            browser.close()
        if load is not None:
            covered = load.poll() is None  # still running: every timing above had the class around it
            print(f"\nThe load test {'ran during every timing' if covered else 'ENDED BEFORE the timings did'}; "
                  f"its report:\n\n{report_of(load)}")
        print(f"\nStarted {started}, Chromium {CHROMIUM}, {os.cpu_count()} cores.")
        for label, times in every.items():
            print(f"{label}: all interactions median {statistics.median(times):.0f} ms, p90 {p90(times):.0f} ms "
                  f"({len(times)} timed)")
    finally:
        if load is not None and load.poll() is None:  # the timings failed: the class goes home too
            load.kill()
        for server in servers.values():
            server.stop()
        for copy in copies.values():
            shutil.rmtree(copy.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
