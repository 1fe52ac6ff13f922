"""Trainings in worker processes (real processes, real SIGKILL) and one training per identical request."""

import logging
import math
import os
import signal
import threading
import time

import pytest
import torch

from gptviz.backends import Backend, chosen_kind
from gptviz.errors import ConfigError
from gptviz.jobs import JobQueue
from gptviz.train import TrainConfig
from gptviz.workers import RemoteTrainer, WorkerPool
from tests.test_train import poisoned


def quick(**kw):
    return TrainConfig(**{**dict(max_iters=60, batch_size=8, eval_interval=30, eval_iters=2, sample_tokens=10), **kw})


def wait_for(cond, seconds=60):
    deadline = time.time() + seconds
    while not cond() and time.time() < deadline:
        time.sleep(0.02)
    return cond()


@pytest.fixture(scope="module")
def pool():
    """Two worker processes, started once for the module (each imports torch: seconds)."""
    return WorkerPool(2, threads=1)


def test_a_worker_process_trains_and_streams_events(pool, small_config, shakespeare_char):
    queue = JobQueue(2)
    run = queue.submit(RemoteTrainer(small_config, quick(), shakespeare_char, pool.launch))
    initial = run.model.wte.weight.detach().clone()
    assert wait_for(lambda: 0 < len(run.history["step"]) < 60 or run.done)
    streamed_mid_run = not run.done  # progress arrived before the end, not all at once
    run.join(120)
    assert streamed_mid_run and run.status == "finished", run.message
    assert "gptviz-train" not in {t.name for t in threading.enumerate()}  # no training thread in this process
    h = run.history
    assert h["step"] == list(range(60)) and h["eval_step"] == [0, 30, 60]
    assert all(isinstance(s, str) and s for s in h["samples"])
    assert sorted(run.snapshots) == [0, 10, 30, 60]
    assert run.snapshots[60]["wte.weight"].dtype == torch.float16
    assert [e.data["status"] for e in run.events if e.kind == "status"] == ["queued", "running", "finished"]
    # the final weights crossed the boundary: they are the worker's, and give the loss it measured
    assert not torch.equal(run.model.wte.weight, initial)
    assert torch.equal(run.model.wte.weight.half(), run.snapshots[60]["wte.weight"])
    assert h["val_loss"][-1] < h["val_loss"][0] - 0.3
    assert run.tokens_per_sec > 0 and run.elapsed_s > 0 and queue.running == 0


def test_pause_resume_and_stop_cross_the_process_boundary(pool, small_config, shakespeare_char):
    queue = JobQueue(2)
    run = queue.submit(RemoteTrainer(small_config, quick(max_iters=100_000, eval_interval=10_000), shakespeare_char,
                                     pool.launch))
    assert wait_for(lambda: run.step > 3)
    run.pause()
    assert wait_for(lambda: run.status == "paused")
    time.sleep(0.3)
    held = run.step
    time.sleep(0.5)
    assert run.step == held
    run.resume()
    assert wait_for(lambda: run.step > held + 3)
    queue.cancel(run)
    run.join(30)
    assert run.status == "stopped" and "kept" in run.message and queue.running == 0


def test_a_run_whose_tab_is_gone_stops_itself_in_its_worker(pool, small_config, shakespeare_char):
    run = JobQueue(2).submit(RemoteTrainer(small_config, quick(max_iters=100_000, eval_interval=10_000, sample_tokens=0),
                                           shakespeare_char, pool.launch, abandon_after_s=1.0))
    deadline = time.time() + 60
    while time.time() < deadline and run.step < 5:
        run.heartbeat()  # the tab is open
        time.sleep(0.05)
    watched_until = run.step
    assert run.status == "running" and watched_until >= 5
    run.join(60)  # no more heartbeats: the tab was closed
    assert run.status == "stopped" and "nobody watched" in run.message and run.step > watched_until


def test_a_killed_worker_fails_its_run_with_the_last_snapshot_while_another_finishes(
        pool, small_config, shakespeare_char, caplog):
    queue = JobQueue(2)
    doomed = queue.submit(RemoteTrainer(small_config, quick(max_iters=100_000, eval_interval=10_000,
                                                             snapshot_steps=[0, 10, 20]), shakespeare_char, pool.launch))
    other = queue.submit(RemoteTrainer(small_config, quick(max_iters=150), shakespeare_char, pool.launch))
    assert wait_for(lambda: doomed.step > 25 and 20 in doomed.snapshots)
    (slot,) = [s for s in pool.slots if s.handle is doomed]
    killed_pid = slot.process.pid
    with caplog.at_level(logging.ERROR, logger="gptviz.workers"):
        os.kill(killed_pid, signal.SIGKILL)  # what the kernel's out-of-memory killer does
        doomed.join(30)
    assert doomed.status == "error" and "killed (signal 9)" in doomed.message
    assert "last snapshot (step 20)" in doomed.message
    assert torch.equal(doomed.model.wte.weight.half(), doomed.snapshots[20]["wte.weight"])
    assert any("died" in r.getMessage() for r in caplog.records)
    other.join(120)
    assert other.status == "finished" and other.history["step"][-1] == 149
    # the slot was refilled: a new process takes the next run
    assert slot.process.pid != killed_pid and slot.process.poll() is None
    again = queue.submit(RemoteTrainer(small_config, quick(max_iters=20, sample_tokens=0), shakespeare_char, pool.launch))
    again.join(120)
    assert again.status == "finished" and queue.running == 0


def test_an_unexpected_error_in_a_worker_ends_the_run_as_error_and_logs_the_traceback(pool, caplog):
    data = poisoned()
    from gptviz.model import GPTConfig

    config = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=32)
    run = RemoteTrainer(config, quick(max_iters=5000, eval_interval=5000, eval_iters=1, sample_tokens=0), data,
                        pool.launch)
    with caplog.at_level(logging.ERROR, logger="gptviz.workers"):
        JobQueue(2).submit(run)
        run.join(120)
    assert run.status == "error" and "IndexError" in run.message and 0 < run.step < 5000
    assert "weights from step" in run.message
    logged = [r.getMessage() for r in caplog.records]
    assert any("Traceback" in m and "IndexError" in m for m in logged), logged  # the worker's traceback, here
    x, y = data.get_batch("val", 4, 16)
    assert math.isfinite(run.model(x, y)[1].item())


@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_identical_requests_train_once_and_every_student_gets_the_model(kind, small_config, shakespeare_char):
    backend = Backend(kind, max_running=1)
    cfg = quick(max_iters=40)
    first = backend.submit(small_config, cfg, shakespeare_char, abandon_after_s=60)
    second = backend.submit(small_config, quick(max_iters=40), shakespeare_char, abandon_after_s=60)  # joins
    different = backend.submit(small_config, quick(max_iters=40, seed=7), shakespeare_char)  # its own training
    assert backend.shared.trainings_started == 2 and first.trainer is second.trainer
    assert first.students == second.students == 2 and different.students == 1
    assert wait_for(lambda: first.done and second.done and different.done, 180)
    assert first.status == second.status == "finished"
    assert first.model is not second.model  # each student's own copy, with the same weights
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    assert not torch.equal(first.model.wte.weight, different.model.wte.weight)
    late = backend.submit(small_config, quick(max_iters=40), shakespeare_char)  # after the end: the result at once
    assert late.done and late.students == 3 and backend.shared.trainings_started == 2
    assert late.history["val_loss"] == first.history["val_loss"]


def test_a_student_who_stops_a_shared_run_leaves_it_running_for_the_others(small_config, shakespeare_char):
    backend = Backend("threads", max_running=1)
    cfg = quick(max_iters=100_000, eval_interval=10_000, sample_tokens=0)
    stays, leaves = (backend.submit(small_config, cfg, shakespeare_char) for _ in range(2))
    assert wait_for(lambda: stays.step > 12)
    backend.cancel(leaves)
    assert leaves.done and leaves.status == "stopped" and "goes on for 1 other student" in leaves.message
    assert not stays.done
    step = stays.step
    assert wait_for(lambda: stays.step > step + 3)  # still training
    assert leaves.history["step"][-1] <= step  # the leaver's run froze where it left
    backend.cancel(stays)  # the last watcher stops the training itself
    stays.trainer.join(30)
    assert stays.status == "stopped"


def test_the_shared_cache_is_bounded(small_config, shakespeare_char):
    from gptviz.shared import SharedRuns

    backend = Backend("threads", max_running=1, shared=SharedRuns(max_entries=2))
    runs = [backend.submit(small_config, quick(max_iters=2, eval_iters=1, sample_tokens=0, seed=s), shakespeare_char)
            for s in range(4)]
    assert wait_for(lambda: all(r.done for r in runs))
    backend.submit(small_config, quick(max_iters=2, eval_iters=1, sample_tokens=0, seed=9), shakespeare_char)
    assert len(backend.shared) <= 3  # two finished ones kept, plus the one that may still be running
    assert all(r.status == "finished" for r in runs)  # forgetting them does not take them from their students


def test_the_backend_is_chosen_by_environment():
    assert chosen_kind({}) == "processes"
    assert chosen_kind({"GPTVIZ_TRAINING_BACKEND": "threads"}) == "threads"
    assert chosen_kind({"GPTVIZ_RAY_ADDRESS": "10.0.0.1:6379"}) == "ray"
    with pytest.raises(ConfigError, match="threads, processes, ray"):
        chosen_kind({"GPTVIZ_TRAINING_BACKEND": "gpu"})


def test_serve_refuses_an_unknown_backend_before_starting_anything(capsys):
    from gptviz import cli

    assert cli.main(["serve", "--backend", "gpu"]) == 2
    assert "must be one of threads, processes, ray, not 'gpu'" in capsys.readouterr().err


@pytest.fixture
def fresh_backend(monkeypatch):
    """The server-wide backend (an st.cache_resource) rebuilt: worker processes, nothing trained yet."""
    from ui import training

    monkeypatch.setenv("GPTVIZ_TRAINING_BACKEND", "processes")
    training.job_queue.clear()
    yield training.job_queue()
    training.job_queue().pool.close()
    training.job_queue.clear()


def test_two_sessions_asking_for_the_same_run_train_it_once_and_both_get_the_model(fresh_backend):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from tests.test_page_train import latest, poll_until, small

    sessions = []
    for _ in range(2):  # two students, two real Streamlit sessions of the app
        at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=90)
        at.run()
        at.switch_page("pages/train.py").run()
        small(at, iters=60)
        at.button(key="train_start").click().run()
        sessions.append(at)
    assert fresh_backend.shared.trainings_started == 1  # one training for both
    for at in sessions:
        assert poll_until(at, lambda: latest(at).trainer.done, 120)
        at.run()
        assert not at.exception and latest(at).trainer.status == "finished"
        assert any("Trained once for 2 students" in c.value for c in at.caption)
    a, b = (latest(at).trainer.model for at in sessions)
    assert a is not b and all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    for at in sessions:  # each student's own run, in their own model picker
        assert f"🧪 {latest(at).name}" in at.sidebar.selectbox[0].options


# --- workers that cannot hang (issue 21) --------------------------------------------------------------

def endless(**kw):
    return quick(**{**dict(max_iters=100_000, eval_interval=10_000, sample_tokens=0, snapshot_steps=[0, 5]), **kw})


def test_workers_are_the_ones_the_kernel_kills_first_and_have_a_memory_limit(pool):
    import resource

    from gptviz.workers import DEFAULT_WORKER_MEMORY_MB

    for pid in pool.pids:
        assert wait_for(lambda: open(f"/proc/{pid}/oom_score_adj").read().strip() == "1000", 30)
        soft, _ = resource.prlimit(pid, resource.RLIMIT_DATA)
        assert soft == DEFAULT_WORKER_MEMORY_MB * 2**20
    assert open("/proc/self/oom_score_adj").read().strip() != "1000"  # the server keeps its own score


def test_any_failure_while_building_a_run_ends_it_as_error_and_frees_the_slot(pool, small_config, shakespeare_char,
                                                                               caplog):
    """device="cuda" on a CPU host raised outside GptvizError: the run stayed 'running' and the slot busy."""
    queue = JobQueue(2)
    with caplog.at_level(logging.ERROR, logger="gptviz.workers"):
        bad = queue.submit(RemoteTrainer(small_config, quick(device="cuda"), shakespeare_char, pool.launch))
        bad.join(60)
    assert bad.status == "error" and "could not start" in bad.message and queue.running == 0
    assert any("Traceback" in r.getMessage() for r in caplog.records)
    after = queue.submit(RemoteTrainer(small_config, quick(max_iters=10, sample_tokens=0), shakespeare_char, pool.launch))
    after.join(120)
    assert after.status == "finished"


def test_a_finished_runs_handle_controls_nothing(small_config, shakespeare_char):
    one = WorkerPool(1, threads=1)
    try:
        queue = JobQueue(1)
        old = queue.submit(RemoteTrainer(small_config, quick(max_iters=5, sample_tokens=0), shakespeare_char, one.launch))
        old.join(120)
        new = queue.submit(RemoteTrainer(small_config, endless(), shakespeare_char, one.launch))
        assert wait_for(lambda: new.step > 3)
        old.stop(), old.pause()  # the old page's buttons: the worker now trains `new`
        held = new.step
        assert wait_for(lambda: new.step > held + 5) and new.status == "running"
        queue.cancel(new)
        new.join(30)
        assert new.status == "stopped"
    finally:
        one.close()


def test_stop_kills_a_worker_that_does_not_answer(small_config, shakespeare_char, monkeypatch, caplog):
    from gptviz import workers

    monkeypatch.setattr(workers, "STOP_GRACE_S", 1.0)
    one = WorkerPool(1, threads=1)
    try:
        queue = JobQueue(1)
        run = queue.submit(RemoteTrainer(small_config, endless(), shakespeare_char, one.launch))
        assert wait_for(lambda: 5 in run.snapshots)
        hung = one.pids[0]
        os.kill(hung, signal.SIGSTOP)  # a worker stuck in a step that never ends
        with caplog.at_level(logging.ERROR, logger="gptviz.workers"):
            queue.cancel(run)
            run.join(30)
        assert run.status == "stopped" and "did not answer Stop within 1 s" in run.message
        assert "last snapshot (step 5)" in run.message
        assert one.pids[0] != hung  # a fresh worker took its place
        assert any("in a row within 30 s" in r.getMessage() for r in caplog.records)  # it died young: back-off
        again = queue.submit(RemoteTrainer(small_config, quick(max_iters=5, sample_tokens=0), shakespeare_char,
                                           one.launch))
        again.join(120)
        assert again.status == "finished"
    finally:
        one.close()


def test_a_training_past_its_time_limit_is_stopped_with_its_weights(pool, small_config, shakespeare_char):
    run = RemoteTrainer(small_config, endless(), shakespeare_char, pool.launch)
    run.max_s = 1.0  # GPTVIZ_MAX_TRAINING_MINUTES, in seconds
    JobQueue(2).submit(run)
    run.join(60)
    assert run.status == "stopped" and run.message.startswith("Stopped at the time limit of 0.0166667 minutes")
    assert run.step > 0


def test_a_paused_run_gives_its_worker_back(pool, small_config, shakespeare_char):
    run = RemoteTrainer(small_config, endless(), shakespeare_char, pool.launch)
    run.max_pause_s = 0.5
    queue = JobQueue(2)
    queue.submit(run)
    assert wait_for(lambda: run.step > 3)
    run.pause()
    run.join(60)
    assert run.status == "stopped" and "Paused for more than" in run.message and queue.running == 0


def test_a_student_who_joined_a_run_someone_paused_can_resume_it(small_config, shakespeare_char):
    backend = Backend("threads", max_running=1)
    cfg = endless()
    first = backend.submit(small_config, cfg, shakespeare_char)
    assert wait_for(lambda: first.step > 3)
    first.pause()
    assert wait_for(lambda: first.status == "paused")
    joined = backend.submit(small_config, endless(), shakespeare_char)
    assert joined.trainer is first.trainer
    joined.pause()  # no effect (already paused), and pausing someone's shared run is never a joiner's to do
    joined.resume()
    assert wait_for(lambda: first.status == "running" and first.step > 6)
    backend.cancel(first), backend.cancel(joined)
    first.trainer.join(30)
    assert first.trainer.status == "stopped"


def test_a_lone_worker_training_uses_every_core_and_two_share_them(pool, small_config, shakespeare_char):
    queue = JobQueue(2, cores=4)
    first = queue.submit(RemoteTrainer(small_config, quick(max_iters=100_000, eval_interval=10_000), shakespeare_char,
                                       pool.launch))
    assert wait_for(lambda: first.threads == 4)  # torch's own count, read in the worker at each step
    second = queue.submit(RemoteTrainer(small_config, quick(max_iters=100_000, eval_interval=10_000),
                                        shakespeare_char, pool.launch))
    assert wait_for(lambda: first.threads == 2 and second.threads == 2)
    queue.cancel(first)
    assert wait_for(lambda: second.threads == 4)  # the other one ended: all cores again
    queue.cancel(second)
    first.join(30), second.join(30)
    assert first.status == second.status == "stopped" and queue.running == 0


def test_worker_threads_sleep_while_they_wait_instead_of_spinning(pool):
    """A spinning OpenMP thread takes the core its partner needs on a busy host (see jobs.TRAINING_ENV)."""
    environ = open(f"/proc/{pool.pids[0]}/environ", "rb").read().split(b"\0")
    assert b"OMP_WAIT_POLICY=PASSIVE" in environ
