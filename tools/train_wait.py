"""What a student waits for on the Train page, against what the engine alone takes for the same run.

    python -m tools.train_wait [--rounds 3] [--iters 800]

Alternating round by round: (a) the engine alone, a fresh process training the default recipe
(gpt preset, tiny Shakespeare, TrainConfig()) to the end, timed from its start to its exit; (b) the app
(one server, started once, as in class; the default backend, worker processes), a fresh browser
page clicking Train with the same settings, timed in Chromium from the click until the page says
"Finished". Each round uses a new seed, so that no round joins an earlier identical training (shared.py).
Prints both, their medians and the app's overhead.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

from playwright.sync_api import sync_playwright

from gptviz.jobs import TRAINING_ENV
from tools.chromium import launch, wait_idle
from tools.server import ROOT, Server

ENGINE = """
import sys
from gptviz.data import TokenData, corpus_text
from gptviz.model import preset_config
from gptviz.train import TrainConfig, Trainer
data = TokenData.from_text(corpus_text("tinyshakespeare"), "char")
Trainer(preset_config("gpt", data.tokenizer.vocab_size), TrainConfig(max_iters=int(sys.argv[1]), seed=int(sys.argv[2])),
        data).run()
"""


def engine_seconds(iters: int, seed: int) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", ENGINE, str(iters), str(seed)], cwd=ROOT, check=True,
                   env={**TRAINING_ENV, **os.environ})  # as a worker process trains
    return time.perf_counter() - start


def app_seconds(browser, url: str, iters: int, seed: int) -> float:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{url}/train?train_max_iters={iters}&train_seed={seed}")
    wait_idle(page)
    start = time.perf_counter()
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text(re.compile(r": Finished")).first.wait_for(timeout=900_000)
    seconds = time.perf_counter() - start
    page.close()
    return seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--iters", type=int, default=None, help="training steps (default: the recipe's max_iters)")
    args = p.parse_args(argv)
    from gptviz.train import TrainConfig

    iters = args.iters or TrainConfig().max_iters
    times = {"engine alone": [], "Train page, click to finished": []}
    server = Server()
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            for r in range(args.rounds):
                seed = 2000 + r
                times["engine alone"].append(engine_seconds(iters, seed))
                times["Train page, click to finished"].append(app_seconds(browser, server.url, iters, seed))
                print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
            browser.close()
    finally:
        server.stop()
    medians = {k: statistics.median(v) for k, v in times.items()}
    for k, v in medians.items():
        print(f"{k:<32} median {v:.1f} s  ({', '.join(f'{x:.1f}' for x in times[k])})")
    print(f"the page waits x{medians['Train page, click to finished'] / medians['engine alone']:.2f} "
          f"the engine's time ({iters} steps)")


if __name__ == "__main__":
    main()
