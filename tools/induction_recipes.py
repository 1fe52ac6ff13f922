"""Try recipes for growing an induction head: train each, then score its snapshots with the app's detector.

    python -m tools.induction_recipes --threads 1 --recipe base --recipe "lr=5e-3" --recipe "n_embd=32,mlp=0"

A recipe is the induction preset's recipe with some fields changed (model fields, TrainConfig fields,
`chunks=LOW-HIGH` for the corpus). Prints, per recipe, the induction score at every snapshot and the
training time (evaluations included, as on the Train page) until the score first reached 0.5.
"""

from __future__ import annotations

import argparse
import time

import torch

from gptviz import induction
from gptviz.data import TokenData, corpus_text, repeated_chunks
from gptviz.train import Trainer


def parse(recipe: str) -> dict:
    changes = {}
    for part in filter(None, recipe.split(",")):
        if part == "base":
            continue
        name, value = part.split("=")
        changes[name] = value if name == "chunks" else (int(value) if value.isdigit() else float(value))
    return changes


def run(changes: dict, every: int) -> dict:
    chunks = tuple(int(v) for v in changes.pop("chunks", "-".join(map(str, induction.CHUNKS))).split("-"))
    data = TokenData.from_text(repeated_chunks(corpus_text("tinyshakespeare"), chunks), "char")
    config, cfg = induction.recipe(data.tokenizer.vocab_size, **changes)
    cfg.snapshot_steps = list(range(0, cfg.max_iters + 1, every))
    cfg.sample_tokens = 0
    trainer = Trainer(config, cfg, data)
    times = {}
    trainer.on_event = lambda e: times.__setitem__(e.step, time.perf_counter()) if e.kind == "snapshot" else None
    start = time.perf_counter()
    trainer.run()
    line = induction.timeline_scores(config, trainer.snapshots, data.val)
    reached = induction.formation_step(line, 0.5)
    return {"line": line, "reached": reached, "seconds": (times[reached] - start) if reached is not None else None,
            "total": time.perf_counter() - start, "val": trainer.history["val_loss"][-1]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--recipe", action="append", default=[])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--every", type=int, default=250)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for recipe in args.recipe or ["base"]:
        r = run(parse(recipe), args.every)
        ind = [round(float(s.max()), 2) for s in r["line"]["scores"]["induction"]]
        prev = [round(float(s[0].max()), 2) for s in r["line"]["scores"]["previous_token"]]
        icl = [round(v, 2) for v in r["line"]["icl"]]
        after = "-" if r["seconds"] is None else f"{r['seconds']:.0f} s"
        print(f"{recipe}: induction>=0.5 at step {r['reached']} after {after}; total {r['total']:.0f} s; "
              f"val {r['val']:.3f}")
        print(f"  steps {r['line']['steps']}\n  induction {ind}\n  prev(L0) {prev}\n  icl {icl}", flush=True)
        last = {name: [[round(float(v), 2) for v in row] for row in s[-1]] for name, s in r["line"]["scores"].items()}
        print(f"  last step, per layer and head: {last}", flush=True)


if __name__ == "__main__":
    main()
