"""Trainings on a Ray cluster: past one machine (a computer lab, see the README).

    cluster = RayCluster("HOST:6379")       # or GPTVIZ_RAY_ADDRESS=HOST:6379, or `python -m gptviz serve --ray`
    run = RemoteTrainer(config, cfg, data, cluster.launch)

Each training is a Ray task that asks for CPUS_PER_TRAINING CPUs: Ray's scheduler places it on a
computer with free cores, or keeps it waiting (the queue) until one frees up. A task, not an actor:
Ray keeps its worker processes for the next task, so only a computer's first training pays for
starting Python and importing torch. The task and the server talk through one small Mailbox actor
on the server's own computer: the task posts its events (the messages a local worker sends, see
workers.py) and reads pause, resume and stop; a thread in the server collects the events. A lost
computer fails its task: the run ends as `error` with its last snapshot, and the other runs go on.
Ray is optional (requirements-cluster.txt): nothing imports this module unless a cluster is used.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import defaultdict
from pathlib import Path

import ray
import torch
from ray.exceptions import RayActorError, RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .errors import ConfigError
from .jobs import TRAINING_ENV, threads_per_training
from .train import Status
from .workers import Job, RemoteTrainer, build_trainer, train_to_end, warm_up

log = logging.getLogger(__name__)

CPUS_PER_TRAINING = int(os.environ.get("GPTVIZ_RAY_CPUS_PER_TRAINING", 1))
POLL_S = 0.5  # how often the server collects events, and a task posts them and reads its controls
PACKAGE_DIR = Path(__file__).resolve().parent  # shipped to every node: the lab computers need no gptviz


class Mailbox:
    """Events from the tasks to the server, and controls from the server to the tasks, by run id."""

    def __init__(self):
        self._events: dict[int, list] = defaultdict(list)
        self._controls: dict[int, list] = defaultdict(list)

    def post(self, run: int, msgs: list):
        self._events[run].extend(msgs)

    def collect(self, run: int) -> list:
        return self._events.pop(run, [])

    def control(self, run: int, op: str, *args):
        self._controls[run].append((op, *args))

    def controls(self, run: int) -> list:
        return self._controls.pop(run, [])


_warm = False  # this worker process has paid its first-time costs (Ray reuses it for later tasks)


def train_task(job: Job, run: int, mailbox, threads: int) -> str:
    """One training, wherever Ray placed it; returns how it ended."""
    global _warm
    torch.set_num_threads(threads)
    if not _warm:
        warm_up()
        _warm = True
    outbox = [("where", ray.get_runtime_context().get_node_id())]  # the first message: it started, and where
    lock, current, finished = threading.Lock(), [], threading.Event()

    def put(msg):
        with lock:
            outbox.append(msg)

    def relay():  # post events and fetch controls every POLL_S, not per step: one round trip for many events
        while True:
            done = finished.wait(POLL_S)
            with lock:
                msgs, outbox[:] = list(outbox), []
            if msgs:
                ray.get(mailbox.post.remote(run, msgs))
            if done:
                return
            for op, *args in ray.get(mailbox.controls.remote(run)):
                if current:
                    getattr(current[-1], op)(*args)

    relayer = threading.Thread(target=relay, daemon=True)
    relayer.start()
    trainer = build_trainer(job, put, current)
    if trainer is not None:
        train_to_end(trainer, put)
    finished.set()
    relayer.join()
    return str(trainer.status if trainer is not None else Status.ERROR)


def _check_reachable(address: str | None, timeout: float = 3.0):
    """ray.init waits minutes for a head node that is not there: ask its port first (HOST:PORT addresses)."""
    host, _, port = (address or "").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" or a ray:// address: ray.init finds it, or says so quickly
    try:
        socket.create_connection((host, int(port)), timeout).close()
    except OSError as e:
        raise _unreachable(address, e.strerror or str(e)) from None


def _unreachable(address: str, why: str) -> ConfigError:
    return ConfigError(f"Cannot reach the Ray cluster at {address} ({why}). Start it first (`ray start --head` on "
                       "that computer, with RAY_AUTH_MODE=token: see docs/classroom-server.md), or unset "
                       "GPTVIZ_RAY_ADDRESS to train on this computer.")


class RayCluster:
    """The server's connection to a Ray cluster (one per server process)."""

    def __init__(self, address: str | None = None):
        _check_reachable(address)
        if not ray.is_initialized():
            try:
                ray.init(address=address or "auto", runtime_env={"py_modules": [str(PACKAGE_DIR)], "env_vars": TRAINING_ENV},
                         logging_level=logging.WARNING, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:  # what ray.init raises for a missing cluster
                raise _unreachable(address or "auto", str(e)[:200]) from None
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        # on this computer: a lab computer that leaves must not take every run's mailbox with it; and if the
        # mailbox itself dies, Ray starts it again (max_restarts) so that later runs do not all fail
        self.mailbox = ray.remote(Mailbox).options(num_cpus=0, scheduling_strategy=here, max_restarts=-1,
                                                    max_task_retries=-1).remote()
        self._task = ray.remote(train_task)
        self._queued: list[RemoteTrainer] = []  # sent to Ray, not started yet, oldest first
        self._lock = threading.Lock()
        self._ids = iter(range(1, 2**62))
        self._on_node: dict[str, list[RemoteTrainer]] = defaultdict(list)  # the runs training on each computer

    def slots(self) -> int:
        """Trainings the cluster runs at once now (lab computers may join or leave at any time)."""
        return max(1, int(ray.cluster_resources().get("CPU", 1) // CPUS_PER_TRAINING))

    def position(self, handle: RemoteTrainer) -> int | None:
        with self._lock:
            return self._queued.index(handle) if handle in self._queued else None

    def launch(self, handle: RemoteTrainer):
        run = next(self._ids)
        ref = self._task.options(num_cpus=CPUS_PER_TRAINING, max_retries=0).remote(
            handle.job, run, self.mailbox, CPUS_PER_TRAINING)
        cancel = threading.Event()

        def send(op: str, *args):
            if handle.status == Status.QUEUED and op in ("stop", "abandon"):
                cancel.set()  # not started yet: take it out of Ray's queue
            else:
                self.mailbox.control.remote(run, op, *args)

        handle.send = send
        with self._lock:
            self._queued.append(handle)
        threading.Thread(target=self._watch, args=(handle, run, ref, cancel), daemon=True,
                         name="gptviz-ray-watch").start()

    def _watch(self, handle: RemoteTrainer, run: int, ref, cancel: threading.Event):
        try:
            self._follow(handle, run, ref, cancel)
        except RayActorError as e:  # the mailbox died: this run's progress is lost; Ray restarts the mailbox
            log.error("Ray progress mailbox lost: %s", e)
            handle.lost("the server lost this run's progress (its mailbox on the server's computer stopped; it has "
                        "been restarted for the next runs)")
        except RayError as e:  # the computer (a lab computer) died or left the cluster
            log.error("Ray training lost: %s", e)
            handle.lost("the computer of the Ray cluster that trained it was lost (switched off, or out of memory)")
        finally:
            self._dequeue(handle)
            self._share_node(handle, joined=False)

    def _follow(self, handle: RemoteTrainer, run: int, ref, cancel: threading.Event):
        while not handle.done:
            ended = bool(ray.wait([ref], timeout=POLL_S)[0])
            for msg in ray.get(self.mailbox.collect.remote(run)):
                if msg[0] == "where":  # it started
                    handle.where = f"Ray node {msg[1][:8]}"
                    handle.node = msg[1]
                    self._dequeue(handle)
                    self._share_node(handle, joined=True)
                else:
                    handle.receive(msg)
            if ended and not handle.done:  # its last events were posted before it ended: something went wrong
                ray.get(ref)  # raises what ended the task (a lost node)
                handle.lost("its Ray task ended without its result")
            if handle.status == Status.QUEUED and (cancel.is_set() or handle.unwatched()):
                ray.cancel(ref)
                handle.end(Status.STOPPED, "Cancelled before it started." if cancel.is_set() else
                           "Never started: the browser tab was closed while it waited in the queue.")
            handle.check_watched()

    def _share_node(self, handle: RemoteTrainer, joined: bool):
        """Share a computer's cores among the trainings on it, as one starts or ends there (see jobs.py)."""
        node = getattr(handle, "node", None)
        if node is None:
            return
        with self._lock:
            runs = self._on_node[node]
            if joined:
                runs.append(handle)
            elif handle in runs:
                runs.remove(handle)
            runs = list(runs)
        cores = next((int(n["Resources"].get("CPU", 1)) for n in ray.nodes() if n["NodeID"] == node), 1)
        for run in runs:
            run.set_threads(threads_per_training(cores, len(runs)))

    def _dequeue(self, handle: RemoteTrainer):
        with self._lock:
            if handle in self._queued:
                self._queued.remove(handle)
