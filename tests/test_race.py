"""The race against nanoGPT: timing a fresh process to its first val loss <= 2.0, and nanoGPT's data format."""

import os
import pickle
import sys

import numpy as np
import pytest

from gptviz import race
from gptviz.data import TokenData, corpus_text

CHILD = """
import os, sys, time
open(sys.argv[1], "w").write(str(os.getpid()))
print("step 0: train loss 4.1000, val loss 4.2000", flush=True)
print("iter 0: loss 4.1, time 10ms", flush=True)
print("step 50: train loss 1.9000, val loss 1.9500", flush=True)
time.sleep(120)  # a run goes on after the target: the race ends it
"""


def test_the_race_stops_a_run_at_its_first_evaluation_at_or_below_the_target(tmp_path):
    pid_file = tmp_path / "pid"
    got = race.time_to_target([sys.executable, "-c", CHILD, str(pid_file)], None, threads=1)
    assert got["step"] == 50 and got["val_loss"] == 1.95 and 0 < got["seconds"] < 100
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # ended (and reaped), not left running
        os.kill(pid, 0)


def test_a_run_that_never_reaches_the_target_reports_its_last_output():
    got = race.time_to_target([sys.executable, "-c", "print('step 0: train loss 4.0, val loss 4.1')"], None, 1)
    assert got["seconds"] is None and "val loss 4.1" in got["output"]


def test_nanogpt_gets_tiny_shakespeare_in_its_own_format(tmp_path):
    checkout = tmp_path / "nanoGPT"
    for name in ("train.py", "model.py", "configurator.py", "config/train_shakespeare_char.py"):
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_text(f"# {name}")
    out = race.prepare_nanogpt(checkout, tmp_path / "copy")
    assert (out / "config/train_shakespeare_char.py").read_text() == "# config/train_shakespeare_char.py"
    data = TokenData.from_text(corpus_text("tinyshakespeare"), "char")  # ours: the same ids and the same split
    folder = out / "data" / "shakespeare_char"
    train, val = (np.fromfile(folder / f"{s}.bin", dtype=np.uint16) for s in ("train", "val"))
    assert np.array_equal(train, data.train.numpy()) and np.array_equal(val, data.val.numpy())
    meta = pickle.loads((folder / "meta.pkl").read_bytes())
    assert meta["vocab_size"] == 65 and meta["itos"][meta["stoi"]["a"]] == "a"
    with pytest.raises(FileNotFoundError, match="no train.py"):
        race.prepare_nanogpt(tmp_path / "copy" / "data", tmp_path / "elsewhere")


def test_the_in_repo_nanogpt_recipe_prints_nanogpts_evaluation_lines(capsys):
    race.run_nanogpt_recipe(max_iters=2, warmup=1)
    lines = capsys.readouterr().out.splitlines()
    steps = [race.STEP_LINE.search(line) for line in lines]
    assert [int(m[1]) for m in steps] == [0] and 4.0 < float(steps[0][3]) < 4.4  # ln(65) = 4.17 at the start
