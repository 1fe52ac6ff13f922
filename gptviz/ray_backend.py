"""Trainings on a Ray cluster: past one machine (a computer lab, see the README).

    cluster = RayCluster("HOST:6379")       # or GPTVIZ_RAY_ADDRESS=HOST:6379, or `--ray` on the command line
    run = RemoteTrainer(config, cfg, data, cluster.launch)

Each training is a Ray actor that asks for CPUS_PER_TRAINING CPUs: Ray's scheduler places it on a
computer with free cores, or keeps it waiting (the queue) until one frees up. A thread in the server
polls the actor for its events (the same messages a local worker sends, see workers.py) and passes
pause, resume and stop along. A lost computer ends the run as `error` with its last snapshot.
Ray is optional (requirements-cluster.txt): nothing imports this module unless a cluster is used.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import ray
import torch
from ray.exceptions import GetTimeoutError, RayError

from .train import Status
from .workers import Job, RemoteTrainer, build_trainer, train_to_end

log = logging.getLogger(__name__)

CPUS_PER_TRAINING = int(os.environ.get("GPTVIZ_RAY_CPUS_PER_TRAINING", 1))
POLL_S = 0.5  # how often the server collects a training's events
PACKAGE_DIR = Path(__file__).resolve().parent  # shipped to every node: the lab computers need no gptviz


class TrainingActor:
    """One training on some node of the cluster; its events wait in an outbox until the server polls."""

    def __init__(self, threads: int):
        torch.set_num_threads(threads)
        self._outbox: list[tuple] = []
        self._lock = threading.Lock()
        self._current: list = []

    def start(self, job: Job) -> str:
        def train():
            trainer = build_trainer(job, self._put, self._current)
            if trainer is not None:
                train_to_end(trainer, self._put)

        threading.Thread(target=train, daemon=True, name="gptviz-train").start()
        return ray.get_runtime_context().get_node_id()

    def _put(self, msg: tuple):
        with self._lock:
            self._outbox.append(msg)

    def poll(self) -> list[tuple]:
        with self._lock:
            out, self._outbox = self._outbox, []
        return out

    def control(self, op: str):
        if self._current:
            getattr(self._current[-1], op)()


class RayCluster:
    """The server's connection to a Ray cluster (one per server process)."""

    def __init__(self, address: str | None = None):
        if not ray.is_initialized():
            ray.init(address=address or "auto", runtime_env={"py_modules": [str(PACKAGE_DIR)]},
                     logging_level=logging.WARNING, log_to_driver=False)
        self._actor = ray.remote(TrainingActor)
        self._queued: list[RemoteTrainer] = []  # launched, waiting for Ray to place them, oldest first
        self._lock = threading.Lock()

    def slots(self) -> int:
        """Trainings the cluster runs at once now (lab computers may join or leave at any time)."""
        return max(1, int(ray.cluster_resources().get("CPU", 1) // CPUS_PER_TRAINING))

    def position(self, handle: RemoteTrainer) -> int | None:
        with self._lock:
            return self._queued.index(handle) if handle in self._queued else None

    def launch(self, handle: RemoteTrainer):
        actor = self._actor.options(num_cpus=CPUS_PER_TRAINING, max_restarts=0).remote(CPUS_PER_TRAINING)
        cancel = threading.Event()

        def send(op: str):
            if handle.status == Status.QUEUED and op in ("stop", "abandon"):
                cancel.set()  # not placed yet: take it out of Ray's queue
            else:
                actor.control.remote(op)

        handle.send = send
        with self._lock:
            self._queued.append(handle)
        threading.Thread(target=self._watch, args=(handle, actor, cancel), daemon=True,
                         name="gptviz-ray-watch").start()

    def _watch(self, handle: RemoteTrainer, actor, cancel: threading.Event):
        try:
            if self._placed(handle, actor, cancel):
                self._follow(handle, actor)
        except RayError as e:  # the node (a lab computer) died or left the cluster
            log.error("Ray training lost: %s", e)
            handle.lost("the computer of the Ray cluster that trained it was lost (switched off, or out of memory)")
        finally:
            with self._lock:
                if handle in self._queued:
                    self._queued.remove(handle)
            ray.kill(actor)

    def _placed(self, handle: RemoteTrainer, actor, cancel: threading.Event) -> bool:
        """Wait until Ray has placed the actor and its training started; False when it never will."""
        started = actor.start.remote(handle.job)
        while not ray.wait([started], timeout=1.0)[0]:
            if cancel.is_set() or handle.unwatched():
                handle.end(Status.STOPPED, "Cancelled before it started." if cancel.is_set() else
                            "Never started: the browser tab was closed while it waited in the queue.")
                return False
        handle.where = f"Ray node {ray.get(started)[:8]}"
        with self._lock:
            self._queued.remove(handle)
        return True

    def _follow(self, handle: RemoteTrainer, actor):
        while not handle.done:
            try:
                msgs = ray.get(actor.poll.remote(), timeout=60)
            except GetTimeoutError:  # a busy node: ask again
                continue
            for msg in msgs:
                handle.receive(msg)
            handle.check_watched()
            time.sleep(POLL_S)
