"""`python -m gptviz ...`: train, sample, inspect and benchmark from a terminal.

Every command prints a one-line message (no traceback) when the input is at fault.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import ConfigError, GptvizError

EPILOG = """examples:
  python -m gptviz train --preset gpt --iters 600 --out shakespeare-char
  python -m gptviz train --corpus my_text.txt --tokenizer bpe --bpe-vocab 512 --preset blocks
  python -m gptviz --threads 1 train --preset induction --out induction-shakespeare-char   # grows an induction head
  python -m gptviz sample --checkpoint shakespeare-char --prompt "ROMEO:" --tokens 300
  python -m gptviz inspect --checkpoint shakespeare-char --prompt "To be" --json
  python -m gptviz ladder --iters 1000
  python -m gptviz bench
  python -m gptviz loadtest --sessions 30 --trainers 4 --seconds 60
  python -m gptviz serve --port 8501 --ray HEAD-HOST:6379   # the app for a class, trainings on a Ray cluster
  torchrun --standalone --nproc_per_node=2 -m gptviz train --preset gpt --global-batch 32
"""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "loadtest":  # its options are the load test's own
        return _loadtest(extra)
    if args.command == "serve":  # what it does not know goes to `streamlit run`
        return _serve(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return args.func(args) or 0
    except GptvizError as e:
        print(f"{_error_prefix()}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _error_prefix() -> str:
    from . import distributed

    # under torchrun every process reports its own errors; rank 0's read like a single process's
    return f"error (rank {distributed.rank()})" if distributed.launched() and distributed.rank() else "error"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gptviz",
        description="Train small GPT models and look inside them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in (_train_command, _sample_command, _inspect_command, _ladder_command, _bench_command,
                        _serve_command, _loadtest_command):  # in the order --help lists them
        add_command(sub)
    return p


def _train_command(sub):
    t = sub.add_parser("train", help="train a model and save a checkpoint")
    _data_args(t)
    _model_args(t)
    _train_args(t)
    t.add_argument("--out", default=None, help="checkpoint name (saved in checkpoints/) or a path ending in .safetensors")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--save-all-ranks", action="store_true",
                   help="(debugging, under torchrun) every process also writes its final weights next to "
                        "the checkpoint as NAME.rankR.safetensors, to check that all ranks agree")
    t.set_defaults(func=cmd_train)


def _sample_command(sub):
    s = sub.add_parser("sample", help="generate text from a checkpoint")
    _checkpoint_arg(s)
    s.add_argument("--prompt", default="\n")
    s.add_argument("--tokens", type=int, default=300, help="how many new tokens")
    _sampling_args(s)
    s.set_defaults(func=cmd_sample)


def _inspect_command(sub):
    i = sub.add_parser("inspect", help="tokens, attention patterns and next-token candidates for a prompt")
    _checkpoint_arg(i)
    i.add_argument("--prompt", required=True)
    i.add_argument("--top-k", type=int, default=10, help="how many next-token candidates")
    i.add_argument("--json", action="store_true", help="print JSON (the default prints a summary)")
    i.set_defaults(func=cmd_inspect)


def _ladder_command(sub):
    lad = sub.add_parser("ladder", help="train the lecture's ladder (bigram -> GPT) with equal budgets")
    _data_args(lad)
    _train_args(lad)
    lad.add_argument("--block-size", type=int, default=64)
    lad.add_argument("--presets", default="bigram,single_head,multi_head,blocks,gpt")
    lad.add_argument("--json", default=None, help="also write the results to this JSON file")
    lad.set_defaults(func=cmd_ladder)


def _bench_command(sub):
    b = sub.add_parser("bench", help="measure speed (tokens/s, ms, MFU) and time to val loss 2.0")
    b.add_argument("--rounds", type=int, default=5, help="interleaved rounds per implementation")
    b.add_argument("--steps", type=int, default=10, help="training steps timed per round")
    b.add_argument("--skip-quality", action="store_true", help="skip the time-to-loss-2.0 training run")
    b.add_argument("--only-bpe", action="store_true", help="only the BPE training and replay figures")
    b.add_argument("--only-race", action="store_true", help="only gptviz vs nanoGPT: time to val loss 2.0")
    b.add_argument("--race-rounds", type=int, default=3, help="alternating rounds of the race (median of these)")
    b.add_argument("--nanogpt", default=None, metavar="DIR",
                   help="a nanoGPT checkout to race against (its own train.py; default: its recipe on the in-repo model)")
    b.add_argument("--json", default=None, help="also write the results to this JSON file")
    b.set_defaults(func=cmd_bench)


def _serve_command(sub):
    sv = sub.add_parser("serve", help="start the app for a class (streamlit run app.py); other options go to streamlit")
    sv.add_argument("--port", type=int, default=8501, help="students open http://THIS-COMPUTER:PORT (default 8501)")
    sv.add_argument("--ray", nargs="?", const="auto", default=None, metavar="HOST:PORT",
                    help="train on this Ray cluster (sets GPTVIZ_RAY_ADDRESS; alone: the cluster this computer "
                         "joined with `ray start`)")
    sv.add_argument("--backend", default=None,
                    help="where trainings run: threads, processes or ray (default: worker processes; ray with --ray)")
    sv.add_argument("--max-trainings", type=int, default=None, help="trainings at once on this computer")


def _loadtest_command(sub):
    sub.add_parser("loadtest", add_help=False,
                   help="the classroom load test: 30 students against one app server (--help for its options)")


def _loadtest(argv: list[str]) -> int:
    """The load test drives a real Streamlit server, so it lives beside the app (tools/), not in the engine:
    it runs in a process of its own (`python -m tools loadtest`), and the engine never imports tools/."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    if not (root / "tools" / "loadtest.py").exists():
        print("error: the load test is tools/loadtest.py of the gptviz repository: run this from its root folder.",
              file=sys.stderr)
        return 2
    cmd = [sys.executable, "-m", "tools", "--prog", "python -m gptviz loadtest", "loadtest", *argv]
    try:
        return subprocess.call(cmd, cwd=root)
    except KeyboardInterrupt:
        return 130


def _serve(args, extra: list[str]) -> int:
    """`streamlit run app.py` with the training backend set in its environment."""
    import os
    import subprocess

    from .backends import chosen_kind

    from .jobs import TRAINING_ENV

    env = {**TRAINING_ENV, **os.environ}  # the threads backend trains in the server itself
    if args.ray:
        env["GPTVIZ_RAY_ADDRESS"] = args.ray
    if args.backend:
        env["GPTVIZ_TRAINING_BACKEND"] = args.backend
    if args.max_trainings:
        env["GPTVIZ_MAX_TRAININGS"] = str(args.max_trainings)
    try:
        if chosen_kind(env) == "ray":
            _check_ray(env.get("GPTVIZ_RAY_ADDRESS") or "auto")
    except GptvizError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    app = Path(__file__).resolve().parent.parent / "app.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), f"--server.port={args.port}", *extra]
    try:
        return subprocess.call(cmd, env=env, cwd=app.parent)
    except KeyboardInterrupt:
        return 130


def _check_ray(address: str):
    """Refuse to start a class's server on a cluster that cannot be reached."""
    try:
        import ray
    except ImportError:
        raise ConfigError("Ray is not installed here: pip install -r requirements-cluster.txt") from None
    try:
        ray.init(address=address, logging_level="ERROR")
        cpus = ray.cluster_resources().get("CPU", 0)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ConfigError(f"No Ray cluster at {address} ({e}). Start one with `ray start --head` first.") from None
    finally:
        ray.shutdown()
    print(f"Ray cluster at {address}: {cpus:.0f} CPUs, so {cpus:.0f} trainings at once", flush=True)


def _data_args(p):
    p.add_argument("--corpus", default="tinyshakespeare",
                   help="a bundled corpus (tinyshakespeare, wizard_of_oz, shakespeare_repeated) or a path to a UTF-8 "
                        ".txt file")
    from .tokenizers import KINDS

    p.add_argument("--tokenizer", default="char", choices=list(KINDS))  # every registered kind
    p.add_argument("--bpe-vocab", type=int, default=512, help="vocabulary size of a trained BPE (256..4096)")


def _model_args(p):
    from .model import PRESETS

    p.add_argument("--preset", default="gpt", choices=list(PRESETS), help="the lecture's ladder (default: gpt)")
    for name, kind in (("n_layer", int), ("n_head", int), ("n_embd", int), ("block_size", int), ("dropout", float)):
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None,
                       help=f"override the preset's {name}")


def _train_args(p):
    from .train import TrainConfig

    d = TrainConfig()
    p.add_argument("--iters", type=int, default=d.max_iters, help=f"training steps (default {d.max_iters})")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help=f"text windows per micro-batch and process (default {d.batch_size})")
    p.add_argument("--grad-accum", type=int, default=None, metavar="N",
                   help="micro-batches whose gradients add up to one step (default 1)")
    p.add_argument("--global-batch", type=int, default=None, metavar="G",
                   help="windows per step over all processes: sets --grad-accum to "
                        "G / (batch size x processes), so that G stays the same when the number of processes changes")
    p.add_argument("--lr", type=float, default=d.learning_rate, help="peak learning rate")
    p.add_argument("--eval-interval", type=int, default=d.eval_interval)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW's, on weight matrices")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--snapshot-steps", default=None,
                   help="comma-separated steps to keep weights at, for the training timeline "
                        "(default: log-spaced 0, 10, 30, 100, 300, ... and the last step)")
    p.add_argument("--snapshot-every", type=int, default=0, metavar="N",
                   help="also keep weights every N steps (a timeline dense enough to show a phase change)")


def _checkpoint_arg(p):
    p.add_argument("--checkpoint", required=True, help="a name in checkpoints/ or a path to a .safetensors file")


def _sampling_args(p):
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)


def _grad_accum(args, world_size: int) -> int:
    """--grad-accum, or the one that --global-batch asks for with this many processes."""
    accum = args.grad_accum
    if args.global_batch is None:
        return 1 if accum is None else accum
    per_pass = args.batch_size * world_size
    procs = f"{world_size} process{'es' if world_size > 1 else ''}"
    if args.global_batch < 1 or per_pass < 1 or args.global_batch % per_pass:
        raise ConfigError(
            f"--global-batch {args.global_batch} must be a multiple of --batch-size {args.batch_size} x "
            f"{procs} = {per_pass}. Choose a multiple of {per_pass} or another --batch-size.")
    if accum is not None and accum != args.global_batch // per_pass:
        raise ConfigError(
            f"--grad-accum {accum} contradicts --global-batch {args.global_batch} (--batch-size "
            f"{args.batch_size} x {procs} needs --grad-accum {args.global_batch // per_pass}); give only one of them.")
    return args.global_batch // per_pass


def _train_config(args, max_iters=None, world_size: int = 1):
    from .train import TrainConfig

    snapshots = None
    if args.snapshot_steps:
        try:
            snapshots = [int(s) for s in args.snapshot_steps.split(",")]
        except ValueError:
            raise ConfigError(f"--snapshot-steps must be whole numbers separated by commas, not {args.snapshot_steps!r}.")
    return TrainConfig(max_iters=max_iters or args.iters, weight_decay=args.weight_decay, batch_size=args.batch_size,
                       grad_accum_steps=_grad_accum(args, world_size), learning_rate=args.lr,
                       eval_interval=args.eval_interval, seed=args.seed, device=args.device,
                       snapshot_steps=snapshots, snapshot_every=max(args.snapshot_every, 0))


def _load_data(args):
    from .data import CORPORA, TokenData, load_text

    text = None if args.corpus in CORPORA else load_text(Path(args.corpus))
    if text is None:
        return TokenData.from_corpus(args.corpus, args.tokenizer, args.bpe_vocab), args.corpus
    return TokenData.from_text(text, args.tokenizer, args.bpe_vocab), Path(args.corpus).name


def _resolve_checkpoint(name: str) -> Path:
    from .checkpoints import checkpoint_path

    return Path(name) if name.endswith(".safetensors") and ("/" in name or Path(name).is_file()) else checkpoint_path(name)


_RECIPE_OPTIONS = {"corpus": "corpus", "block_size": "block_size", "iters": "max_iters", "batch_size": "batch_size",
                   "lr": "learning_rate", "eval_interval": "eval_interval", "snapshot_every": "snapshot_every",
                   "weight_decay": "weight_decay"}


def _apply_recipe(args):
    """A preset with its own text and training (induction) fills in every option left at its default."""
    from .experiments import PRESET_RECIPES

    recipe = PRESET_RECIPES.get(args.preset, {})
    defaults = vars(build_parser().parse_args(["train"]))
    for option, field in _RECIPE_OPTIONS.items():
        if field in recipe and getattr(args, option) == defaults[option]:
            setattr(args, option, recipe[field])


def cmd_train(args):
    from . import distributed

    _apply_recipe(args)

    if not distributed.launched():
        return _train(args)
    # Started by torchrun: join the other processes (gloo on CPUs, nccl on GPUs), train together, leave.
    device = distributed.init(args.device)
    try:
        return _train(args, device)
    finally:
        distributed.cleanup()


def _train(args, device=None):
    """Train and save. With `device` (under torchrun, after distributed.init) this is one rank of several:
    every rank trains, only rank 0 prints and writes the checkpoint."""
    from tqdm import tqdm

    from . import distributed
    from .checkpoints import save_checkpoint
    from .model import preset_config
    from .runs import checkpoint_meta
    from .train import Trainer

    ddp = device is not None
    rank, world = (distributed.rank(), distributed.world_size()) if ddp else (0, 1)
    main_rank = rank == 0
    data, corpus_name = _load_data(args)
    if ddp:  # every machine reads its own copy of the corpus: make sure they all hold the same tokens
        distributed.check_same("tokenized text", json.dumps(data.tokenizer.to_dict(), sort_keys=True).encode()
                               + data.tokens.numpy().tobytes())
    overrides = {k: getattr(args, k) for k in ("n_layer", "n_head", "n_embd", "dropout") if getattr(args, k) is not None}
    config = preset_config(args.preset, data.tokenizer.vocab_size, args.block_size or 64, **overrides)
    cfg = _train_config(args, world_size=world)
    if ddp:
        cfg.device = str(device)
    out = _resolve_checkpoint(args.out or f"{args.preset}-{corpus_name.split('.')[0]}-{args.tokenizer}")

    bar = tqdm(total=cfg.max_iters, unit="step", disable=args.quiet or not main_rank, dynamic_ncols=True)

    def on_event(e):
        if e.kind == "step":
            bar.update(1)
            bar.set_postfix(loss=f"{e.data['train_loss']:.3f}", tok_s=f"{e.data['tokens_per_sec']:,.0f}")
        elif e.kind == "eval":
            bar.write(f"step {e.step:5d}  train {e.data['train_loss']:.4f}  val {e.data['val_loss']:.4f}")

    trainer = Trainer(config, cfg, data, on_event=on_event if main_rank else None)
    if main_rank:
        print(f"{args.preset}: {trainer.model.num_params():,} parameters, vocab {data.tokenizer.vocab_size}, "
              f"{data.num_tokens:,} tokens of {corpus_name}, device {trainer.device}")
    if ddp and main_rank:
        backend = "nccl" if trainer.device.type == "cuda" else "gloo"
        print(f"{world} processes ({backend}): each step learns from {cfg.batch_size * cfg.grad_accum_steps * world} "
              f"windows = batch {cfg.batch_size} x {cfg.grad_accum_steps} micro-batch(es) x {world} processes")
    try:
        trainer.run()
    finally:
        bar.close()
    meta = checkpoint_meta(trainer, corpus_name, args.preset)
    if main_rank:
        save_checkpoint(out, trainer.model, data.tokenizer, meta, trainer.snapshots)
    if args.save_all_ranks:
        save_checkpoint(out.with_name(f"{out.stem}.rank{rank}.safetensors"),
                        trainer.model, data.tokenizer, meta)
    if main_rank:
        speed = f" {world} processes trained {meta['tokens_per_sec']:,.0f} tokens/s." if ddp else ""
        print(f"{trainer.message} Final val loss {trainer.history['val_loss'][-1]:.4f}.{speed} Saved {out}")
    distributed.barrier()  # nobody leaves before rank 0 has saved (a no-op alone)


def cmd_sample(args):
    from .checkpoints import load_checkpoint
    from .generate import generate

    ck = load_checkpoint(_resolve_checkpoint(args.checkpoint), for_app=False)  # the command line opens any size
    prompt = ck.tokenizer.encode(args.prompt)
    ids = generate(ck.model, prompt, args.tokens, temperature=args.temperature, top_k=args.top_k,
                   top_p=args.top_p, seed=args.seed)
    print(args.prompt + ck.tokenizer.decode(ids))


def cmd_inspect(args):
    import torch

    from .checkpoints import load_checkpoint
    from .generate import next_token_probs

    ck = load_checkpoint(_resolve_checkpoint(args.checkpoint), for_app=False)  # the command line opens any size
    ids = ck.tokenizer.encode(args.prompt)[-ck.model.config.block_size:]
    if not ids:
        raise GptvizError("The prompt is empty.")
    logits, cache = ck.model.run_with_cache(torch.tensor([ids]))
    probs = next_token_probs(logits[0, -1])
    top = torch.topk(probs, min(args.top_k, probs.numel()))
    result = {
        "tokens": [{"id": i, "label": ck.tokenizer.label(i)} for i in ids],
        "attention": {f"blocks.{l}.attn.pattern": cache[f"blocks.{l}.attn.pattern"][0].tolist()
                      for l in range(ck.model.config.n_layer)},
        "next_tokens": [{"id": int(i), "label": ck.tokenizer.label(int(i)), "prob": float(p)}
                        for p, i in zip(top.values, top.indices)],
    }
    if args.json:
        print(json.dumps(result))
    else:
        print("tokens:", " ".join(t["label"] for t in result["tokens"]))
        print("next token:")
        for t in result["next_tokens"]:
            print(f"  {t['label']!r:>12}  {t['prob']:.3f}")


def cmd_ladder(args):
    from .experiments import run_ladder

    data, corpus_name = _load_data(args)
    cfg = _train_config(args)
    print(f"ladder on {corpus_name} ({args.tokenizer}), {cfg.max_iters} steps of batch {cfg.batch_size} each")
    rows = run_ladder(data, cfg, args.presets.split(","), block_size=args.block_size,
                      on_result=lambda r: print(f"  {r['preset']:<12} {r['params']:>9,} params  "
                                                f"val {r['val_loss']:.3f}  {r['seconds']:.0f} s", flush=True))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def cmd_bench(args):
    from .bench import bench_bpe, run_bench, run_race

    if args.only_bpe:
        results = bench_bpe(log=print)
    elif args.only_race:
        results = run_race(args.race_rounds, args.nanogpt, log=print)
    else:
        results = run_bench(rounds=args.rounds, steps=args.steps, quality=not args.skip_quality, log=print,
                            race_rounds=args.race_rounds, nanogpt=args.nanogpt)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
