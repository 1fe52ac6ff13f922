"""Training on several processes: two real CPU processes started by torchrun (gloo), as a teacher would.

This file is also the worker that torchrun starts for the lockstep test (`python tests/test_distributed.py DIR`).
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def torchrun(*args, timeout=120):
    # OMP_NUM_THREADS=1: two processes share two cores; torchrun would set it too, with a warning
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    if sys.platform.startswith("linux"):  # talk over loopback even where the hostname does not resolve
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_two_processes_train_one_model_and_rank_0_saves_it(tmp_path):
    from gptviz.checkpoints import load_checkpoint
    from gptviz.generate import generate

    out = tmp_path / "ddp.safetensors"
    # global batch 32 = batch 8 x 2 micro-batches x 2 processes: DDP's no_sync path is taken too
    r = torchrun("-m", "gptviz", "--threads", "1", "train", "--preset", "blocks", "--n-layer", "2",
                 "--n-embd", "32", "--block-size", "32", "--iters", "30", "--eval-interval", "15",
                 "--batch-size", "8", "--global-batch", "32", "--out", str(out), "--save-all-ranks", "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("parameters") == 1 and r.stdout.count("Saved") == 1  # only rank 0 speaks
    assert "2 processes (gloo)" in r.stdout

    ck = load_checkpoint(out)  # what the app uses to open a checkpoint
    ranks = [load_checkpoint(tmp_path / f"ddp.rank{i}.safetensors") for i in (0, 1)]
    for name, w in ck.model.state_dict().items():  # every rank ends with the very same weights
        assert torch.equal(w, ranks[0].model.state_dict()[name]), name
        assert torch.equal(w, ranks[1].model.state_dict()[name]), name
    assert not torch.equal(ck.model.wte.weight.half(), ck.snapshots[0]["wte.weight"])  # and they trained

    h = ck.meta["history"]
    assert ck.meta["processes"] == 2 and ck.meta["train_config"]["grad_accum_steps"] == 2
    assert h["eval_step"] == [0, 15, 30] and h["val_loss"][-1] < h["val_loss"][0] - 0.5
    assert sum(h["train_loss"][-5:]) < sum(h["train_loss"][:5])
    assert h["train_loss"] == ranks[1].meta["history"]["train_loss"]  # the loss both ranks logged: the mean
    assert ranks[1].meta["history"]["val_loss"] == [] and not ranks[1].snapshots  # rank 1 only trained
    assert sorted(ck.snapshots) == [0, 10, 30] and ck.meta["status"] == "finished"
    assert len(generate(ck.model, ck.tokenizer.encode("ROMEO:"), 20, seed=1)) == 20


def test_ranks_stop_and_diverge_together(tmp_path):
    r = torchrun(str(Path(__file__).resolve()), str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    a, b = (json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1))
    # rank 1 alone asked to stop after step 7: both stop after the next step, with the same weights
    assert a["stop"]["status"] == b["stop"]["status"] == "stopped"
    assert a["stop"]["step"] == b["stop"]["step"] == 9
    assert a["stop"]["weights"] == b["stop"]["weights"]
    # a learning rate that explodes: every rank notices at the same step and keeps the same good weights
    assert a["diverge"]["status"] == b["diverge"]["status"] == "diverged"
    assert a["diverge"]["message"] == b["diverge"]["message"] and "learning rate" in a["diverge"]["message"]
    assert a["diverge"]["weights"] == b["diverge"]["weights"] and a["diverge"]["finite"]


def test_gradient_accumulation_matches_one_big_batch(small_config, shakespeare_char):
    from gptviz.train import TrainConfig, Trainer

    def one_step(batch, accum):
        cfg = TrainConfig(max_iters=1, batch_size=batch, grad_accum_steps=accum, eval_iters=1, sample_tokens=0)
        return Trainer(small_config, cfg, shakespeare_char).run()

    big, two = one_step(16, 1), one_step(8, 2)  # the same 16 windows: the generator draws them in order
    for (name, w), v in zip(big.state_dict().items(), two.state_dict().values()):
        assert torch.allclose(w, v, atol=1e-6), name


def test_global_batch_sets_the_accumulation_for_the_number_of_processes():
    from gptviz.cli import _train_config, build_parser
    from gptviz.errors import ConfigError

    def accum(argv, world):
        return _train_config(build_parser().parse_args(["train", *argv]), world_size=world).grad_accum_steps

    assert accum([], 1) == 1 and accum(["--grad-accum", "3"], 2) == 3
    assert accum(["--global-batch", "32", "--batch-size", "16"], 1) == 2
    assert accum(["--global-batch", "32", "--batch-size", "16"], 2) == 1
    assert accum(["--global-batch", "32", "--batch-size", "8"], 2) == 2
    with pytest.raises(ConfigError, match=r"multiple of --batch-size 16 x 3 processes = 48"):
        accum(["--global-batch", "32", "--batch-size", "16"], 3)
    with pytest.raises(ConfigError, match="contradicts"):
        accum(["--global-batch", "32", "--batch-size", "16", "--grad-accum", "4"], 1)


def test_a_single_process_sets_up_no_process_group(small_config, shakespeare_char):
    from gptviz import distributed
    from gptviz.train import TrainConfig, Trainer

    trainer = Trainer(small_config, TrainConfig(max_iters=2, eval_iters=1, sample_tokens=0), shakespeare_char)
    trainer.run()
    assert not trainer.distributed and trainer.world_size == 1 and trainer.is_main
    assert not distributed.active() and trainer.train_s > 0


# --- the worker torchrun starts for test_ranks_stop_and_diverge_together ----------------------------------

def _digest(model) -> str:
    return hashlib.sha256(b"".join(v.numpy().tobytes() for v in model.state_dict().values())).hexdigest()


def _worker(out_dir: Path):
    sys.path.insert(0, str(ROOT))
    from gptviz import distributed
    from gptviz.data import TokenData, corpus_text
    from gptviz.errors import TrainingError
    from gptviz.model import GPTConfig
    from gptviz.train import TrainConfig, Trainer

    distributed.init("cpu")
    rank = distributed.rank()
    data = TokenData.from_text(corpus_text("tinyshakespeare")[:60_000], "char")
    config = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32)
    quiet = dict(batch_size=8, eval_interval=1000, eval_iters=2, sample_tokens=0)
    results = {}

    def stop_on_rank_1(event):
        if event.kind == "step" and event.step == 7:
            trainer.stop()

    trainer = Trainer(config, TrainConfig(max_iters=1000, **quiet), data,
                      on_event=stop_on_rank_1 if rank == 1 else None)
    trainer.run()
    results["stop"] = {"status": trainer.status, "step": trainer.step, "weights": _digest(trainer.model)}

    trainer = Trainer(config, TrainConfig(max_iters=200, learning_rate=1e4, grad_clip=0, warmup_iters=1, **quiet),
                      data)
    try:
        trainer.run()
    except TrainingError:
        pass
    results["diverge"] = {"status": trainer.status, "message": trainer.message, "weights": _digest(trainer.model),
                          "finite": all(bool(torch.isfinite(p).all()) for p in trainer.model.parameters())}
    (out_dir / f"rank{rank}.json").write_text(json.dumps(results))
    distributed.barrier()
    distributed.cleanup()


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
