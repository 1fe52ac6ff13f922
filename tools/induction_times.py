"""Induction heads, timed through the real app's scripts (Streamlit's AppTest: the server side of each click,
without the browser's drawing): the Train page's *induction* preset from the click on Train until the run has
finished (a real training in a worker process), and moves of the induction model's timeline slider on the
Attention page (which redraw the grid, the head up close and the three phase-change charts).

    python -m tools.induction_times [--moves 20] [--skip-train]

Prints the training's seconds and what the Attention page then says of the run, then the median and p90 in
ms of one slider move (after a first move that scores the whole timeline once).
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tools.browser_times import p90
from ui import models, state
from ui.entry import keep_navigation_mode_in_apptest

APP = str(Path(__file__).resolve().parent.parent / "app.py")
SLIDER = state.timeline_widget("attention")


def caption_of(at) -> str:
    text = " ".join(c.value for c in at.caption)
    found = re.search(r"(An induction head forms at step \*\*\d+\*\*|No head reaches an induction score)", text)
    return found.group(1).replace("**", "") if found else "(no phase-change caption)"


def train(at) -> str:
    at.switch_page("pages/train.py").run()
    at.selectbox(key=state.train_setting("preset")).set_value("induction").run()
    start = time.perf_counter()
    at.button(key=state.Train.START).click().run()
    runs = at.session_state[state.TAB].runs
    run = runs[max(runs)]
    while not run.trainer.done:
        time.sleep(0.5)
        at.run()  # what the live chart's run_every does in a browser
    seconds = time.perf_counter() - start
    at.switch_page("pages/attention.py").run()
    return f"{seconds:.1f} s from the click to the end ({run.trainer.message}); Attention page: {caption_of(at)}"


def slide(at, moves: int) -> list[float]:
    at.session_state[state.MODEL] = f"ckpt:{models.INDUCTION_CHECKPOINT}"
    at.switch_page("pages/attention.py").run()
    steps = at.select_slider(key=SLIDER).options
    ms = []
    for i in range(moves + 1):
        start = time.perf_counter()
        at.select_slider(key=SLIDER).set_value(steps[i % len(steps)]).run()
        if i:  # the first move scores the whole timeline once (cached for every session after it)
            ms.append(1000 * (time.perf_counter() - start))
    return ms


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--moves", type=int, default=20)
    p.add_argument("--skip-train", action="store_true", help="only the timeline slider")
    args = p.parse_args(argv)
    keep_navigation_mode_in_apptest()
    at = AppTest.from_file(APP, default_timeout=600)
    at.run()
    if not args.skip_train:
        print("Train page, induction preset:", train(at), flush=True)
    ms = slide(at, args.moves)
    print(f"timeline moves: {len(ms)}, median {statistics.median(ms):.0f} ms, p90 {p90(ms):.0f} ms", flush=True)


if __name__ == "__main__":
    main()
