"""The command line, run as a student would: in a subprocess, on real files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def gptviz(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "gptviz", "--threads", "2", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ck") / "tiny.safetensors"
    r = gptviz("train", "--preset", "blocks", "--n-layer", "2", "--n-embd", "32", "--block-size", "32",
               "--iters", "30", "--eval-interval", "15", "--batch-size", "8", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    return out, r.stdout


def test_help_reads_well():
    r = gptviz("--help")
    assert r.returncode == 0
    for command in ("train", "sample", "inspect", "ladder", "bench", "loadtest"):
        assert command in r.stdout
    assert "examples:" in r.stdout


def test_the_load_test_runs_from_here_too():
    r = gptviz("loadtest", "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: python -m gptviz loadtest") and "--sessions" in r.stdout
    r = gptviz("loadtest", "--url", "http://example.com:8501")  # the load test's own checks apply
    assert r.returncode == 2 and "must be a server on 127.0.0.1" in r.stderr
    r = gptviz("sample", "--checkpoint", "x", "--no-such-option")
    assert r.returncode == 2 and "unrecognized arguments: --no-such-option" in r.stderr


def test_train_reports_and_saves_a_loadable_checkpoint(trained):
    out, stdout = trained
    assert "parameters" in stdout and "Saved" in stdout
    from gptviz.checkpoints import load_checkpoint

    ck = load_checkpoint(out)
    assert ck.model.config.n_layer == 2 and ck.model.config.block_size == 32
    assert ck.meta["history"]["eval_step"] == [0, 15, 30]
    assert ck.meta["history"]["val_loss"][-1] < ck.meta["history"]["val_loss"][0]
    assert sorted(ck.snapshots) == [0, 10, 30]


def test_sample_continues_the_prompt(trained):
    r = gptviz("sample", "--checkpoint", str(trained[0]), "--prompt", "ROMEO:", "--tokens", "50", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ROMEO:") and len(r.stdout.rstrip("\n")) == len("ROMEO:") + 50


def test_inspect_json_gives_patterns_and_candidates(trained):
    r = gptviz("inspect", "--checkpoint", str(trained[0]), "--prompt", "To be", "--json", "--top-k", "5")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert [t["label"] for t in result["tokens"]] == ["T", "o", "␣", "b", "e"]
    pattern = result["attention"]["blocks.1.attn.pattern"]
    assert len(pattern) == 4 and len(pattern[0]) == 5  # heads, queries
    for row in pattern[2]:
        assert sum(row) == pytest.approx(1.0, abs=1e-5)
    probs = [t["prob"] for t in result["next_tokens"]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True)


def test_student_mistakes_get_one_clear_line(trained, tmp_path):
    r = gptviz("train", "--corpus", str(tmp_path / "missing.txt"), "--iters", "1")
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    r = gptviz("train", "--n-embd", "130", "--n-head", "4", "--iters", "1", "--out", str(tmp_path / "x.safetensors"))
    assert r.returncode == 2 and "n_embd (130) must be divisible by n_head (4)" in r.stderr
    r = gptviz("inspect", "--checkpoint", str(trained[0]), "--prompt", "café ü")
    assert r.returncode == 2 and "'é'" in r.stderr and "Traceback" not in r.stderr
    r = gptviz("sample", "--checkpoint", "../../etc/passwd")
    assert r.returncode == 2 and "cannot be a checkpoint name" in r.stderr


def test_train_accepts_a_users_text_file_and_bpe(tmp_path):
    text = tmp_path / "story.txt"
    text.write_text("Once upon a time the little robot learned to read. " * 200, encoding="utf-8")
    out = tmp_path / "story.safetensors"
    r = gptviz("train", "--corpus", str(text), "--tokenizer", "bpe", "--bpe-vocab", "300", "--preset", "bigram",
               "--block-size", "16", "--iters", "10", "--eval-interval", "5", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    from gptviz.checkpoints import load_checkpoint

    ck = load_checkpoint(out)
    assert ck.tokenizer.kind == "bpe" and ck.model.config.vocab_size == ck.tokenizer.vocab_size <= 300
    assert ck.meta["corpus"] == "story.txt"
