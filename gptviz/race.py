"""Time to val loss 2.0 from process start: gptviz's default recipe against nanoGPT's, side by side.

    python -m gptviz bench --only-race [--nanogpt DIR] [--race-rounds 3]

Each run is a fresh process (imports, data and model set-up count), timed from its start to the first
printed evaluation with val loss <= 2.0, then ended. Runs alternate (gptviz, nanoGPT, gptviz, ...) so
that a busy moment of a shared host hits both; medians are reported. nanoGPT is either a checkout the
user points at (its own train.py, run on a copy in a temporary folder with tiny Shakespeare written in
its format) or, without one, the in-repo model of its structure (references.NanoGPT) trained with its CPU
recipe (README: batch 12, lr 1e-3, 100 warm-up steps, cosine to 1e-4 over 2,000 steps). Both evaluate
every EVAL_INTERVAL steps on 20 batches, as nanoGPT's documented CPU run does.

A child run of this module prints nanoGPT's own line, "step N: train loss X, val loss Y".
"""

from __future__ import annotations

import math
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .jobs import TRAINING_ENV  # the same environment for both contestants

TARGET = 2.0
EVAL_INTERVAL = 50  # both recipes; nanoGPT's documented CPU run evaluates on 20 batches
STEP_LINE = re.compile(r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)")
NANOGPT_ARGS = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
                "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4",
                "--n_embd=128", "--max_iters=2000", "--lr_decay_iters=2000", "--dropout=0.0",
                f"--eval_interval={EVAL_INTERVAL}"]  # its README's CPU "baby GPT", evaluated as often as ours
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


# --- the child runs ------------------------------------------------------------------------------------

def _print_eval(step: int, train: float, val: float):
    print(f"step {step}: train loss {train:.4f}, val loss {val:.4f}", flush=True)


def run_gptviz():
    """The app's default training (TrainConfig()), the gpt preset, evaluated every EVAL_INTERVAL steps."""
    from .data import TokenData, corpus_text
    from .model import preset_config
    from .train import TrainConfig, Trainer

    data = TokenData.from_text(corpus_text("tinyshakespeare"), "char")
    trainer = Trainer(preset_config("gpt", data.tokenizer.vocab_size), TrainConfig(eval_interval=EVAL_INTERVAL), data)
    trainer.on_event = lambda e: e.kind == "eval" and _print_eval(e.step, e.data["train_loss"], e.data["val_loss"])
    trainer.run()


def run_nanogpt_recipe(max_iters: int = 2000, warmup: int = 100, lr: float = 1e-3, min_lr: float = 1e-4):
    """nanoGPT's CPU recipe on the in-repo model of its structure (no nanoGPT checkout needed)."""
    import torch

    from .references import BABY, BATCH, NanoGPT
    from .data import TokenData, corpus_text

    data = TokenData.from_text(corpus_text("tinyshakespeare"), "char")
    torch.manual_seed(1337)
    model = NanoGPT(**{**BABY, "vocab_size": data.tokenizer.vocab_size})
    for name, p in model.named_parameters():  # its initialisation: N(0, 0.02), residual projections scaled down
        if p.dim() >= 2:
            torch.nn.init.normal_(p, 0.0, 0.02 / (math.sqrt(2 * BABY["n_layer"]) if name.endswith(("c_proj.weight",
                                  "mlp.2.weight")) else 1))
        elif name.endswith("bias") and ".ln_" not in name:
            torch.nn.init.zeros_(p)
    params = [p for p in model.parameters() if p.requires_grad]  # its configure_optimizers: decay 2-D only
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), fused=True)
    block = BABY["block_size"]

    @torch.no_grad()
    def losses():
        model.eval()
        out = [statistics.mean(model(*data.get_batch(s, BATCH, block))[1].item() for _ in range(20))
               for s in ("train", "val")]
        model.train()
        return out

    for step in range(max_iters + 1):
        if step % EVAL_INTERVAL == 0:
            _print_eval(step, *losses())
        ratio = (step - warmup) / (max_iters - warmup)
        rate = lr * (step + 1) / (warmup + 1) if step < warmup else min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (lr - min_lr)
        for group in opt.param_groups:
            group["lr"] = rate
        _, loss = model(*data.get_batch("train", BATCH, block))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()


# --- the parent: timing fresh processes ----------------------------------------------------------------

def prepare_nanogpt(checkout: Path, into: Path) -> Path:
    """A copy of a nanoGPT checkout's training code, with tiny Shakespeare in its format (as its
    data/shakespeare_char/prepare.py writes it, without the download)."""
    import numpy as np

    from .data import corpus_text

    for name in ("train.py", "model.py", "configurator.py", "config/train_shakespeare_char.py"):
        if not (checkout / name).is_file():
            raise FileNotFoundError(f"{checkout} is not a nanoGPT checkout: it has no {name}.")
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(checkout / name, into / name)
    text = corpus_text("tinyshakespeare")
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    out = into / "data" / "shakespeare_char"
    out.mkdir(parents=True, exist_ok=True)
    n = int(len(ids) * 0.9)
    ids[:n].tofile(out / "train.bin"), ids[n:].tofile(out / "val.bin")
    with open(out / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, f)
    return into


def time_to_target(cmd: list[str], cwd: str | None, threads: int, timeout_s: float = 1800) -> dict:
    """Start `cmd`, read its evaluation lines, and return when (from the start) val loss first reached TARGET."""
    env = {**TRAINING_ENV, **os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    result = {"seconds": None, "step": None, "val_loss": None}
    tail = []
    try:
        for line in proc.stdout:
            tail = (tail + [line])[-5:]
            m = STEP_LINE.search(line)
            if m and float(m[3]) <= TARGET:
                result = {"seconds": time.perf_counter() - start, "step": int(m[1]), "val_loss": float(m[3])}
                break
            if time.perf_counter() - start > timeout_s:
                break
    finally:
        proc.terminate()
        proc.wait()
    if result["seconds"] is None:
        result["output"] = "".join(tail)
    return result


def race(rounds: int = 3, nanogpt: str | None = None, threads: tuple[int, ...] = (2, 1), log=print) -> dict:
    """gptviz against nanoGPT (both with threads[0] threads), and gptviz with each other thread count,
    alternating round by round; medians of `rounds`."""
    me = [sys.executable, "-m", "gptviz.race"]
    with tempfile.TemporaryDirectory() as tmp:
        nano_cwd = str(prepare_nanogpt(Path(nanogpt), Path(tmp))) if nanogpt else None
        nano_cmd = ([sys.executable, "train.py", *NANOGPT_ARGS, f"--out_dir={tmp}/out"] if nanogpt
                    else [*me, "nanogpt-recipe"])
        runs = {f"gptviz, {threads[0]} threads": (me + ["gptviz"], None, threads[0]),
                f"nanoGPT{'' if nanogpt else ' recipe (in-repo model)'}, {threads[0]} threads":
                    (nano_cmd, nano_cwd, threads[0])}
        runs.update({f"gptviz, {t} thread{'s' if t > 1 else ''}": (me + ["gptviz"], None, t) for t in threads[1:]})
        times: dict[str, list[dict]] = {name: [] for name in runs}
        for r in range(rounds):
            for name, (cmd, cwd, t) in runs.items():
                times[name].append(time_to_target(cmd, cwd, t))
                got = times[name][-1]
                log(f"  round {r + 1}  {name:<40} " + (f"val {got['val_loss']:.3f} at step {got['step']}, "
                    f"{got['seconds']:.1f} s" if got["seconds"] else f"never reached {TARGET}:\n{got['output']}"))
    rows = {name: {"median_s": _median([x["seconds"] for x in v]), "steps": [x["step"] for x in v],
                   "seconds": [x["seconds"] for x in v]} for name, v in times.items()}
    ours, theirs = (rows[name]["median_s"] for name in list(runs)[:2])
    return {"rows": rows, "ratio": theirs / ours if ours and theirs else None, "rounds": rounds, "nanogpt_dir": nanogpt}


def _median(values: list) -> float | None:
    return statistics.median(values) if values and None not in values else None


if __name__ == "__main__":
    {"gptviz": run_gptviz, "nanogpt-recipe": run_nanogpt_recipe}[sys.argv[1]]()
