"""The Ray backend against a real local Ray cluster of two nodes (two `ray start --block` processes)."""

import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("ray")  # requirements-cluster.txt (requirements-dev.txt includes it)

from gptviz.train import TrainConfig  # noqa: E402
from tools.ray_cluster import LocalRayCluster  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    """A head and a second node, one CPU each, on free ports and in a temporary folder; stopped by pid."""
    with LocalRayCluster(nodes=2, cpus_per_node=1) as c:
        yield c
    import ray

    ray.shutdown()


@pytest.fixture
def ray_app_backend(cluster, monkeypatch):
    """The app's server-wide backend, pointed at the cluster as GPTVIZ_RAY_ADDRESS does."""
    from ui import training

    monkeypatch.setenv("GPTVIZ_RAY_ADDRESS", cluster.address)
    training.job_queue.clear()
    yield training.job_queue()
    training.job_queue.clear()


def wait_for(cond, seconds=120):
    deadline = time.time() + seconds
    while not cond() and time.time() < deadline:
        time.sleep(0.1)
    return cond()


def test_two_students_train_on_two_nodes_and_the_app_shows_their_runs(ray_app_backend):
    from streamlit.testing.v1 import AppTest

    from tests.test_page_train import latest, poll_until, small

    assert ray_app_backend.kind == "ray" and ray_app_backend.max_running == 2  # one training per node's CPU
    sessions = []
    for seed in (1, 2):  # two students, different seeds: two trainings
        at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=90)
        at.run()
        at.switch_page("pages/train.py").run()
        small(at, iters=40)
        at.number_input(key="train_seed").set_value(seed).run()
        at.button(key="train_start").click().run()
        sessions.append(at)
    runs = [latest(at).trainer for at in sessions]
    for at in sessions:
        assert poll_until(at, lambda: latest(at).trainer.done, 180)
        at.run()
        assert not at.exception and latest(at).trainer.status == "finished", latest(at).trainer.message
        assert any("Finished 40 steps" in s.value for s in at.success)
        assert f"🧪 {latest(at).name}" in at.sidebar.selectbox[0].options  # ready to inspect
    wheres = {r.trainer.where for r in runs}
    assert len(wheres) == 2 and all(w.startswith("Ray node") for w in wheres)  # the two nodes trained
    assert runs[0].history["eval_step"] == [0, 20, 40] and len(runs[0].snapshots) == 4
    assert not torch.equal(runs[0].model.wte.weight, runs[1].model.wte.weight)


def test_an_unexpected_error_on_a_node_ends_the_run_as_error_and_logs_the_traceback_here(cluster, caplog):
    import logging

    from gptviz.backends import Backend
    from gptviz.model import GPTConfig
    from tests.test_train import poisoned

    data = poisoned()  # token ids without an embedding: torch raises an IndexError at some step
    config = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=32)
    backend = Backend("ray", ray_address=cluster.address)
    with caplog.at_level(logging.ERROR, logger="gptviz.workers"):
        run = backend.submit(config, TrainConfig(max_iters=5000, batch_size=8, eval_interval=5000, eval_iters=1,
                                                 sample_tokens=0), data)
        assert wait_for(lambda: run.done, 120)
    assert run.status == "error" and "IndexError" in run.message and "weights from step" in run.message
    assert any("Traceback" in r.getMessage() and "IndexError" in r.getMessage() for r in caplog.records)


def test_a_lost_node_fails_its_run_with_the_last_snapshot_and_the_other_run_goes_on(cluster, small_config,
                                                                                       shakespeare_char):
    from gptviz.backends import Backend

    backend = Backend("ray", ray_address=cluster.address)
    cfg = TrainConfig(max_iters=100_000, batch_size=4, eval_interval=10_000, eval_iters=1, sample_tokens=0,
                      snapshot_steps=[0, 5])
    runs = [backend.submit(small_config, cfg, shakespeare_char),
            backend.submit(small_config, TrainConfig(**{**cfg.to_dict(), "seed": 5}), shakespeare_char)]
    assert wait_for(lambda: all(5 in r.snapshots for r in runs), 180)
    cluster.kill_node(1)  # the second computer is switched off
    assert wait_for(lambda: any(r.done for r in runs), 120)
    lost = next(r for r in runs if r.done)
    other = next(r for r in runs if r is not lost)
    assert lost.status == "error" and "Ray cluster" in lost.message and "last snapshot" in lost.message
    kept = max(lost.snapshots)
    assert torch.equal(lost.model.wte.weight.half(), lost.snapshots[kept]["wte.weight"])
    step = other.step
    assert wait_for(lambda: other.step > step + 3, 60) and not other.done  # the head's run goes on
    backend.cancel(other)
    assert wait_for(lambda: other.done, 60) and other.status == "stopped"


def test_an_unreachable_cluster_is_said_once_at_start_and_the_class_trains_here(caplog):
    """Issue 21: an unreachable cluster was retried (for minutes) on every page of every session."""
    import logging
    import socket

    from gptviz.backends import Backend

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with caplog.at_level(logging.ERROR, logger="gptviz.backends"):
        backend = Backend("ray", max_running=1, ray_address=f"127.0.0.1:{port}")
    try:
        assert backend.kind == "processes" and backend.pool is not None and backend.ray is None
        assert f"Cannot reach the Ray cluster at 127.0.0.1:{port}" in backend.notice
        assert "RAY_AUTH_MODE=token" in backend.notice and "worker processes instead" in backend.notice
        assert [r.getMessage() for r in caplog.records if "Cannot reach" in r.getMessage()] == [f"gptviz: {backend.notice}"]
    finally:
        backend.pool.close()
