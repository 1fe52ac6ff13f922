"""`python -m gptviz bench`: how fast is gptviz on this machine, measured, not guessed.

Training speed is compared in one process, interleaved round by round, against two
reference implementations of the same "baby" model (vocab 65, block 64, 4 layers,
4 heads, n_embd 128, batch 12):
  (a) the lecture's structure: one nn.Module per head, a Python loop and torch.cat;
  (b) nanoGPT's structure: one qkv Linear and fused scaled_dot_product_attention.
Medians are quoted because a shared machine is noisy.
"""

from __future__ import annotations

import re
import statistics
import time
from typing import Callable

import torch

from . import budget
from .data import TokenData, corpus_text
from .model import GPT, GPTConfig, preset_config
from .train import TrainConfig, Trainer, make_optimizer

from .references import BABY, BATCH, LectureGPT, NanoGPT


# --- measurements --------------------------------------------------------------------

def matmul_peak_gflops(n: int = 1024, reps: int = 10, best: bool = False) -> float:
    """fp32 matmul speed: the median run (what a shared machine gives), or the best (what it can do)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / (min(times) if best else statistics.median(times)) / 1e9


def _median_ms(fn: Callable, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def bench_training(rounds: int, steps: int, data: TokenData) -> dict:
    torch.manual_seed(0)
    ours, lecture, nano = GPT(GPTConfig(**BABY)), LectureGPT(**BABY), NanoGPT(**BABY)
    impls = {  # each with the optimizer its own code uses
        "gptviz GPT": (ours, make_optimizer(ours, TrainConfig(learning_rate=1e-3), torch.device("cpu"))),
        "(a) lecture, per-head modules": (lecture, torch.optim.AdamW(lecture.parameters(), lr=1e-3)),
        "(b) nanoGPT, fused": (nano, torch.optim.AdamW(nano.parameters(), lr=1e-3, betas=(0.9, 0.99))),
    }
    gen = torch.Generator().manual_seed(0)
    batches = [data.get_batch("train", BATCH, BABY["block_size"], gen) for _ in range(steps)]

    def train_steps(model, opt):
        for x, y in batches:
            _, loss = model(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    per_step = {name: [] for name in impls}
    for name, (model, opt) in impls.items():
        train_steps(model, opt)  # warm-up
    for _ in range(rounds):
        for name, (model, opt) in impls.items():
            t = time.perf_counter()
            train_steps(model, opt)
            per_step[name].append((time.perf_counter() - t) / steps)
    tokens = BATCH * BABY["block_size"]
    return {name: {"ms_per_step": statistics.median(v) * 1000, "min_ms": min(v) * 1000,
                   "tokens_per_s": tokens / statistics.median(v)} for name, v in per_step.items()}


def time_to_loss(data: TokenData, target: float = 2.0, log=print) -> dict:
    """The default recipe on the baby preset: wall time until val loss first reaches `target`."""
    cfg = TrainConfig(eval_interval=50, sample_tokens=0)
    trainer = Trainer(GPTConfig(**{**BABY, "vocab_size": data.tokenizer.vocab_size}), cfg, data)
    hit = {}

    def on_event(e):
        if e.kind == "eval" and not hit and e.data["val_loss"] <= target:
            hit.update(step=e.step, seconds=trainer.elapsed_s)
            log(f"  val loss {e.data['val_loss']:.3f} <= {target} at step {e.step}, {trainer.elapsed_s:.1f} s")

    trainer.on_event = on_event
    trainer.run()
    return {"target": target, "reached_at_step": hit.get("step"), "seconds_to_target": hit.get("seconds"),
            "final_val_loss": trainer.history["val_loss"][-1], "total_seconds": trainer.elapsed_s,
            "max_iters": cfg.max_iters, "batch_size": cfg.batch_size, "learning_rate": cfg.learning_rate}


# Runs a student might start on the Train page:
# (label, tokenizer, preset, overrides, iterations, eval_interval, batch_size).
ESTIMATE_RUNS = [
    ("bigram", "char", "bigram", {}, 300, 100, 16),
    ("tiny: 4 layers of 16, evaluating every 10 steps", "char", "gpt", {"n_embd": 16}, 100, 10, 16),
    ("blocks", "char", "blocks", {}, 150, 50, 16),
    ("gpt", "char", "gpt", {}, 60, 30, 16),
    ("GPT-2 tokens: 2 layers of 32, batch 4", "gpt2", "gpt", {"n_layer": 2, "n_embd": 32}, 10, 10, 4),
]


def estimate_check(data: TokenData, log=print) -> list[dict]:
    """The Train page's time estimate next to real runs, one torch thread each as the app trains them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        peak = matmul_peak_gflops(1024, reps=5, best=True) * 1e9  # what the app measures
        rows = []
        datasets = {"char": data}
        for label, kind, preset, overrides, iters, every, batch in ESTIMATE_RUNS:
            if kind not in datasets:  # the same text in GPT-2 tokens (tiktoken: a fraction of a second)
                datasets[kind] = TokenData.from_text(corpus_text("tinyshakespeare"), kind)
            config = preset_config(preset, datasets[kind].tokenizer.vocab_size, **overrides)
            cfg = TrainConfig(max_iters=iters, eval_interval=every, batch_size=batch)
            est = budget.estimate(config, cfg, peak)
            t = time.perf_counter()
            Trainer(config, cfg, datasets[kind]).run()
            actual = time.perf_counter() - t
            rows.append({"run": label, "iters": iters, "eval_interval": every, "estimate_s": est.seconds,
                         "actual_s": actual, "ratio": est.seconds / actual})
            log(f"  {label:<48} estimate {est.seconds:5.1f} s  actual {actual:5.1f} s  "
                f"(x{est.seconds / actual:.2f})")
        return rows
    finally:
        torch.set_num_threads(threads)


def no_space_texts(n_bytes: int = 1_000_000) -> dict[str, str]:
    """Texts without a single space, the worst case for BPE (each is one huge chunk), made from
    tiny Shakespeare: its letters only, and the same letters written as CJK characters."""
    letters = re.sub(r"[^A-Za-z]", "", corpus_text("tinyshakespeare"))
    letters = (letters * (n_bytes // len(letters) + 1))[:n_bytes]
    cjk = "".join(chr(0x4E00 + ord(c) - ord("A")) for c in letters[: n_bytes // 3])  # 3 UTF-8 bytes each
    return {"letters, no spaces": letters, "CJK, no spaces or punctuation": cjk}


def bench_bpe(rounds: int = 3, log=print) -> dict:
    """BPE training to vocab 512 on 1 MB texts, and replaying the merges on a 10 kB chunk (medians)."""
    from .tokenizers import BPETokenizer

    texts = {"tiny Shakespeare": corpus_text("tinyshakespeare"), **no_space_texts()}
    results = {}
    log(f"\nBPE, vocab 512 (median of {rounds}; replay = all merges one by one on one 10 kB chunk;"
        " CPU = this process's CPU time, what a busy host cannot inflate; goals: train <= 5 s per MB"
        " without spaces, replay <= 0.5 s):")
    for name, text in texts.items():
        train_s, train_cpu, replay_s = [], [], []
        chunk = text.encode()[-10_000:].decode(errors="ignore")  # the last 10 kB, whole characters
        for _ in range(rounds):
            t, c = time.perf_counter(), time.process_time()
            tok = BPETokenizer.train(text, 512)
            train_s.append(time.perf_counter() - t)
            train_cpu.append(time.process_time() - c)
            t = time.perf_counter()
            tok.replay(chunk)
            replay_s.append(time.perf_counter() - t)
        r = {"mb": len(text.encode()) / 1e6, "train_s": statistics.median(train_s),
             "train_cpu_s": statistics.median(train_cpu), "replay_10kb_s": statistics.median(replay_s)}
        results[name] = r
        log(f"  {name:<32} {r['mb']:.1f} MB  train {r['train_s']:.2f} s (CPU {r['train_cpu_s']:.2f} s)  "
            f"replay {r['replay_10kb_s']:.3f} s")
    return results


def run_race(rounds: int = 3, nanogpt: str | None = None, log=print) -> dict:
    """gptviz against nanoGPT's recipe: wall time to val loss 2.0 from process start (see race.py)."""
    from .race import TARGET, race

    who = f"nanoGPT's train.py in {nanogpt}" if nanogpt else "nanoGPT's recipe on the in-repo model of its structure"
    log(f"\ntime to val loss {TARGET} from process start, gptviz's default recipe vs {who} "
        f"({rounds} alternating rounds, medians):")
    result = race(rounds, nanogpt, log=log)
    for name, row in result["rows"].items():
        median = f"{row['median_s']:.1f} s" if row["median_s"] else "not reached"
        log(f"  {name:<48} {median:>12}  (steps {row['steps']})")
    if result["ratio"]:
        log(f"  gptviz is faster by x{result['ratio']:.2f}")
    return result


def run_bench(rounds: int = 5, steps: int = 10, quality: bool = True, log=print, race_rounds: int = 3,
              nanogpt: str | None = None) -> dict:
    from .generate import generate

    results: dict = {"torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    text = corpus_text("tinyshakespeare")
    data = TokenData.from_text(text, "char")

    peak = matmul_peak_gflops()
    results["matmul_peak_gflops"] = peak
    log(f"fp32 matmul peak (1024^3, {torch.get_num_threads()} threads): {peak:.0f} GFLOP/s")

    train = bench_training(rounds, steps, data)
    results["training"] = train
    ours = train["gptviz GPT"]
    fpt = budget.flops_per_token(GPTConfig(**BABY), GPT(GPTConfig(**BABY)).num_params())
    log(f"\ntraining, baby config, batch {BATCH} ({rounds} interleaved rounds of {steps} steps):")
    for name, r in train.items():
        mfu = r["tokens_per_s"] * fpt / (peak * 1e9)
        r["mfu"] = mfu
        log(f"  {name:<32} {r['ms_per_step']:6.1f} ms/step (min {r['min_ms']:.1f})  "
            f"{r['tokens_per_s']:8,.0f} tok/s  MFU {mfu:.0%}  "
            f"gptviz speed-up x{ours['tokens_per_s'] / r['tokens_per_s']:.2f}")

    torch.manual_seed(0)
    model = GPT(GPTConfig(**BABY)).eval()
    prompt = data.get_batch("val", 1, 64, torch.Generator().manual_seed(0))[0]
    results["run_with_cache_ms"] = _median_ms(lambda: model.run_with_cache(prompt), 50)
    results["forward_ms"] = _median_ms(lambda: model(prompt), 50)
    log(f"\nrun_with_cache, 64-token prompt: {results['run_with_cache_ms']:.2f} ms "
        f"(plain forward {results['forward_ms']:.2f} ms)")

    seconds = {True: [], False: []}
    for _ in range(rounds):  # interleaved, like the training rounds: a busy moment hits both
        for kv in (True, False):
            t = time.perf_counter()
            generate(model, [0], 500, seed=0, kv_cache=kv)
            seconds[kv].append(time.perf_counter() - t)
    for kv in (True, False):
        rate, best = 500 / statistics.median(seconds[kv]), 500 / min(seconds[kv])
        results[f"generate_tok_s_{'kv' if kv else 'no_cache'}"] = rate
        log(f"generate 500 tokens, {'KV cache' if kv else 'no cache'}: {rate:,.0f} tokens/s "
            f"(median of {rounds}; best {best:,.0f})")

    t = time.perf_counter()
    data.tokenizer.encode(text)
    results["char_encode_s"] = time.perf_counter() - t
    log(f"character tokenizer, encode {len(text) / 1e6:.1f} MB: {results['char_encode_s']:.2f} s (goal <= 0.5 s)")
    results["bpe"] = bench_bpe(rounds=3, log=log)

    log("\nthe Train page's time estimate against real runs (1 thread, as the app trains):")
    results["estimate_check"] = estimate_check(data, log=log)

    if quality:
        log("\ntime to val loss 2.0, default recipe (gpt preset, tiny Shakespeare, char):")
        results["time_to_loss"] = time_to_loss(data, log=log)
        q = results["time_to_loss"]
        log(f"  final val loss {q['final_val_loss']:.3f} after {q['max_iters']} steps, {q['total_seconds']:.1f} s")
        results["race"] = run_race(race_rounds, nanogpt, log=log)
    return results
