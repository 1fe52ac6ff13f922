"""Trainings in worker processes, so the server process never runs a training step.

    pool = WorkerPool(slots=2)                                  # one process per slot, started once
    run = RemoteTrainer(config, cfg, data, pool.launch)        # a Trainer-like handle in the server
    JobQueue(2).submit(run)                                     # start() hands it to an idle worker

The handle mirrors the Trainer that runs in the worker: every event (step, eval, snapshot, status)
comes back over a pipe and is applied to the handle's history, so a page reads `run.history`,
`run.status`, `run.snapshots` as it reads a Trainer's. Pause, resume, stop and "nobody watches"
go the other way. Snapshots and the final weights cross as safetensors bytes. A worker that dies
mid-run (SIGKILL, out of memory) ends its run as `error` with the weights of its last snapshot;
the slot gets a fresh process and the queue goes on. The Ray backend (ray_backend.py) uses the
same handle with another transport.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from .budget import MEMORY_LIMIT_BYTES
from .data import TokenData
from .errors import GptvizError
from .jobs import TRAINING_ENV
from .model import GPTConfig
from .tokenizers import from_dict
from .train import RunState, Status, TrainConfig, Trainer, TrainEvent, build_model, check_data

log = logging.getLogger(__name__)

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)  # where a worker imports gptviz from
CONTROLS = ("pause", "resume", "stop", "abandon", "set_threads")  # what a handle may ask of its running Trainer
STOP_GRACE_S = 20.0  # a worker that has not ended its run this long after "stop" is killed (a hung step)
MAX_MINUTES_ENV, DEFAULT_MAX_MINUTES = "GPTVIZ_MAX_TRAINING_MINUTES", 30.0  # a training's wall-time cap
PAUSE_MINUTES_ENV, DEFAULT_PAUSE_MINUTES = "GPTVIZ_MAX_PAUSE_MINUTES", 5.0  # a paused run gives its slot back
WORKER_MEMORY_ENV = "GPTVIZ_WORKER_MEMORY_MB"  # each worker's own memory limit (RLIMIT_DATA)
DEFAULT_WORKER_MEMORY_MB = MEMORY_LIMIT_BYTES // 2**20 + 1024  # a training's own limit, and torch's libraries
RESPAWN_BACKOFF_S = (1, 2, 5, 10, 30, 60)  # waits before restarting a worker that died young, in turn


def _minutes(name: str, default: float) -> float:
    try:
        return max(float(os.environ.get(name, default)), 0.0) * 60
    except ValueError:
        return default * 60


# --- what crosses the boundary ----------------------------------------------------------------------

@dataclass
class Job:
    """Everything a worker needs to train, in plain picklable parts (no tokenizer objects, no tensors)."""

    config: GPTConfig
    cfg: TrainConfig
    tokenizer: dict
    tokens: np.ndarray
    n_train: int

    @classmethod
    def of(cls, config: GPTConfig, cfg: TrainConfig, data: TokenData) -> "Job":
        # int32: half the bytes to send, and every vocabulary fits
        return cls(config, cfg, data.tokenizer.to_dict(), data.tokens.numpy().astype(np.int32), len(data.train))

    def data(self) -> TokenData:
        data = TokenData.__new__(TokenData)  # the tokens are already there: no second tokenization
        data.tokenizer = from_dict(self.tokenizer)
        data.tokens = torch.from_numpy(self.tokens).long()
        data.train, data.val = data.tokens[:self.n_train], data.tokens[self.n_train:]
        return data


def to_bytes(state: dict[str, torch.Tensor]) -> bytes:
    return save_tensors({k: v.detach().contiguous().clone() for k, v in state.items()})


def trainer_messages(trainer: Trainer, send: Callable[[tuple], None]):
    """Forward a Trainer's events as messages; a snapshot carries its weights."""

    def on_event(e: TrainEvent):
        extra = {"tokens_per_sec": trainer.tokens_per_sec, "eta_s": trainer.eta_s,
                 "elapsed_s": trainer.elapsed_s, "train_s": trainer.train_s, "threads": trainer.threads}
        weights = to_bytes(trainer.snapshots[e.step]) if e.kind == "snapshot" else None
        send(("event", e.kind, e.step, e.data, extra, weights))

    trainer.on_event = on_event


def final_message(trainer: Trainer) -> tuple:
    return ("done", str(trainer.status), trainer.message, trainer.step, to_bytes(trainer.model.state_dict()),
            trainer.traceback)


# --- the handle in the server -------------------------------------------------------------------------

class RemoteTrainer(RunState):
    """A Trainer-like view of a training that runs elsewhere (a worker process, a Ray task).

    Same attributes and controls as Trainer (status, message, step, history, events, snapshots, model,
    pause/resume/stop/heartbeat/join, on_finish), so the queue and the pages need not know the difference.
    """

    def __init__(self, config: GPTConfig, cfg: TrainConfig, data: TokenData,
                 launch: Callable[["RemoteTrainer"], None], abandon_after_s: float | None = None):
        cfg.validate()
        check_data(config, data)
        super().__init__(abandon_after_s)  # abandoned: the "nobody watches" stop has been sent
        self.cfg, self.job = cfg, Job.of(config, cfg, data)
        self.model = build_model(config, cfg.seed).eval()  # the same initial weights the worker starts from
        self._launch = launch
        self.where = ""  # which worker or computer trains it
        self.send: Callable[..., None] = lambda op, *args: None  # set by the transport once the run is placed
        self._lock = threading.Lock()  # the transport's thread writes, pages read
        self._finished = threading.Event()
        self.max_s = _minutes(MAX_MINUTES_ENV, DEFAULT_MAX_MINUTES)
        self.max_pause_s = _minutes(PAUSE_MINUTES_ENV, DEFAULT_PAUSE_MINUTES)
        self.started_at = self.paused_at = self.stop_sent_at = None  # time.monotonic() of each
        self.limit_message: str | None = None  # why the server stopped it (a time limit), for its message

    # --- control ---
    def start(self) -> "RemoteTrainer":
        self.started_at = time.monotonic()
        self._launch(self)
        self.job = None  # sent: the tokens need not stay in the server's memory as long as the run
        return self

    def pause(self):
        if self.status == Status.RUNNING:
            self.send("pause")

    def resume(self):
        if self.status == Status.PAUSED:
            self.send("resume")

    def stop(self):
        if self.stop_sent_at is None:
            self.stop_sent_at = time.monotonic()  # the grace period of an answer starts now
        self.send("stop")

    def set_threads(self, n: int):
        if not self.done:  # a finished run's worker may already train the next one
            self.send("set_threads", n)

    def check_watched(self):
        """Called by the transport now and then: a run nobody watches is told to stop itself, and one past
        its time limits (running, or paused and holding a worker) is stopped by the server."""
        if self.done:
            return
        if not self.abandoned and self.unwatched():
            self.abandoned = True
            self.send("abandon")
        now = time.monotonic()
        if self.limit_message is None and self.started_at is not None and now - self.started_at > self.max_s:
            self._stop_for(f"Stopped at the time limit of {self.max_s / 60:g} minutes per training, so that "
                           "everyone's trainings get their turn (fewer iterations or a smaller model fit in it)")
        elif (self.limit_message is None and self.status == Status.PAUSED and self.paused_at is not None
              and now - self.paused_at > self.max_pause_s):
            self._stop_for(f"Paused for more than {self.max_pause_s / 60:g} minutes: stopped so that its worker "
                           "can train a classmate's model")

    def _stop_for(self, why: str):
        self.limit_message = why
        log.info("stopping a training at step %d: %s", self.step, why)
        self.stop()

    def overdue(self) -> bool:
        """Stop was sent longer than STOP_GRACE_S ago and the run has not ended: its worker hangs."""
        return not self.done and self.stop_sent_at is not None and time.monotonic() - self.stop_sent_at > STOP_GRACE_S

    def join(self, timeout: float | None = None):
        self._finished.wait(timeout)

    # --- what the transport hands in ---
    def receive(self, msg: tuple):
        """One message from the worker (see trainer_messages and final_message)."""
        if msg[0] == "event":
            self._event(*msg[1:])
        elif msg[0] == "done":
            _, status, message, step, weights, tb = msg
            self.model.load_state_dict(load_tensors(weights))
            self.step = step
            if tb:  # the worker's traceback, in the server's log
                log.error("training failed in a worker at step %d:\n%s", step, tb)
            self.end(Status(status), message)

    def _event(self, kind: str, step: int, data: dict, extra: dict, weights: bytes | None):
        with self._lock:
            self.step = max(self.step, step)
            self.tokens_per_sec, self.eta_s = extra["tokens_per_sec"], extra["eta_s"]
            self.elapsed_s, self.train_s = extra["elapsed_s"], extra["train_s"]
            self.threads = extra.get("threads", self.threads)
            h = self.history
            if kind == "step":
                h["step"].append(step), h["train_loss"].append(data["train_loss"]), h["lr"].append(data["lr"])
            elif kind == "eval":
                h["eval_step"].append(step), h["val_loss"].append(data["val_loss"])
                h["eval_train_loss"].append(data["train_loss"]), h["samples"].append(data["sample"])
            elif kind == "snapshot":
                self.snapshots[step] = load_tensors(weights)
            if kind == "status" and Status(data["status"]).done:
                return  # the end waits for the final weights (see receive)
            self.events.append(TrainEvent(kind, step, data))
        if kind == "status":
            self.status, self.message = Status(data["status"]), data["message"]
            self.paused_at = time.monotonic() if self.status == Status.PAUSED else None

    def lost(self, what: str):
        """The worker is gone (killed, out of memory, a lost machine): keep the last snapshot's weights."""
        if self.done:
            return
        if self.snapshots:
            kept = max(self.snapshots)
            self.model.load_state_dict(self.snapshots[kept])  # fp16 snapshot into the fp32 model
            weights = f"the weights of its last snapshot (step {kept}) were kept"
        else:
            weights = "it had no snapshot yet, so the model is untrained"
        log.error("training run lost at step %d: %s", self.step, what)
        if self.stop_sent_at is not None:  # it was asked to stop and did not: it is stopped, not failed
            self.end(Status.STOPPED, f"Stopped at step {self.step}: {what}; {weights}.")
            return
        self.end(Status.ERROR, f"Training failed at step {self.step}: {what}; {weights}. Your settings did not "
                               "cause this: train again (a smaller model or batch needs less memory).")

    def end(self, status: Status, message: str):
        if self.limit_message and status == Status.STOPPED:
            message = f"{self.limit_message}. {message}"
        self.send = lambda op: None  # a finished handle controls nothing (its worker may train another run)
        self.eta_s = 0.0
        self.set_status(status, message)
        self._finished.set()
        if self.on_finish is not None:
            self.on_finish(self)


# --- the worker process -------------------------------------------------------------------------------

def serve(control_fd: int, results_fd: int, threads: int):
    """A worker process's life: wait for a job, train it, send everything back, wait for the next."""
    control, results = Connection(control_fd), Connection(results_fd)
    send_lock = threading.Lock()  # the control thread (a refused job) and the training both send

    def send(msg: tuple):
        with send_lock:
            results.send(msg)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the server's terminal is for the server
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [worker %(process)d] %(message)s")
    limit_self()
    torch.set_num_threads(threads)
    jobs: queue.Queue = queue.Queue()
    current: list[Trainer] = []  # the trainer now running (set before its job is queued)

    def listen():
        while True:
            try:
                msg = control.recv()
            except (EOFError, OSError):  # the server is gone: so is this worker
                os._exit(0)
            if msg[0] == "train":
                jobs.put(build_trainer(msg[1], send, current))
            elif msg[0] in CONTROLS and current:
                getattr(current[-1], msg[0])(*msg[1:])

    threading.Thread(target=listen, daemon=True, name="gptviz-worker-control").start()
    warm_up()
    while True:
        trainer = jobs.get()
        if trainer is not None:  # None: building it failed, and the message has been sent
            train_to_end(trainer, send)


def limit_self(memory_mb: int | None = None):
    """A worker is what the kernel kills first when memory runs out (never the server with every student's
    work), and it cannot take more than its own limit: an allocation past it fails as MemoryError."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")  # raising one's own score needs no privilege
    except OSError:  # not Linux
        log.warning("cannot raise this worker's oom_score_adj")
    try:
        mb = memory_mb or int(os.environ.get(WORKER_MEMORY_ENV, DEFAULT_WORKER_MEMORY_MB))
    except ValueError:
        mb = DEFAULT_WORKER_MEMORY_MB
    resource.setrlimit(resource.RLIMIT_DATA, (mb * 2**20, resource.getrlimit(resource.RLIMIT_DATA)[1]))


def warm_up():
    """Pay a fresh process's first-time costs (seconds: kernel and optimizer set-up, the first sample)
    with a 2-step training of a tiny model, before any student's run waits for them."""
    data = TokenData.from_text("To be, or not to be, that is the question. " * 20, "char")
    config = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=16)
    Trainer(config, TrainConfig(max_iters=2, batch_size=2, eval_interval=2, eval_iters=1, sample_tokens=4), data).run()


def build_trainer(job: Job, send: Callable[[tuple], None], current: list) -> Trainer | None:
    """The job's Trainer, wired to send its events; None (and the failure sent) when the settings are refused."""
    tb = None
    try:
        trainer = Trainer(job.config, job.cfg, job.data())
    except GptvizError as e:
        message = str(e)
    except Exception as e:  # anything else (a bad device, out of memory) must end the run too, not hang it
        tb = traceback.format_exc()
        message = f"The training could not start ({type(e).__name__}: {str(e)[:200]})."
    else:
        trainer_messages(trainer, send)
        current[:] = [trainer]
        return trainer
    send(("event", "status", 0, {"status": str(Status.ERROR), "message": message}, _NO_STATS, None))
    send(("done", str(Status.ERROR), message, 0, to_bytes(build_model(job.config, job.cfg.seed).state_dict()), tb))
    return None


def train_to_end(trainer: Trainer, send: Callable[[tuple], None]):
    try:
        trainer.run()
    except GptvizError:
        pass  # the status and message say what happened
    send(final_message(trainer))


_NO_STATS = {"tokens_per_sec": 0.0, "eta_s": None, "elapsed_s": 0.0, "train_s": 0.0}


# --- the pool in the server ---------------------------------------------------------------------------

class _Slot:
    """One worker process and the thread that reads what it sends."""

    def __init__(self, index: int, threads: int):
        self.index, self.threads = index, threads
        self.handle: RemoteTrainer | None = None
        self.closing = False  # the server is shutting down: a worker that ends is not replaced
        self.lock = threading.Lock()  # one writer at a time on the control socket (a job and a "stop" never mix)
        self.deaths = 0  # deaths in a row of workers that died young (the respawn back-off's step)
        self.hung = False  # killed because it did not answer Stop
        self.ready = True  # False while a dead worker is being replaced
        self._spawn()
        threading.Thread(target=self._read, daemon=True, name=f"gptviz-worker-{index}").start()

    def _spawn(self):
        # A fresh interpreter (`python -c`), not multiprocessing's spawn: that re-runs the __main__ module in
        # the child, and under Streamlit __main__ is the app script. The pipes are socket pairs it inherits.
        control_here, control_there = socket.socketpair()
        results_here, results_there = socket.socketpair()
        fds = (control_there.fileno(), results_there.fileno())
        self.process = subprocess.Popen(
            [sys.executable, "-c", f"from gptviz.workers import serve; serve({fds[0]}, {fds[1]}, {self.threads})"],
            pass_fds=fds, env={**TRAINING_ENV, **os.environ, "PYTHONPATH": os.pathsep.join([PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")])})
        control_there.close(), results_there.close()  # the child holds them: EOF here when it dies
        self.control, self.results = Connection(control_here.detach()), Connection(results_here.detach())
        self.spawned_at = time.monotonic()

    def run(self, handle: RemoteTrainer):
        with self.lock:
            self.handle = handle
            handle.send = lambda op, *args: self._send(handle, op, *args)
            handle.where = f"worker process {self.process.pid}"
            try:
                self.control.send(("train", handle.job))
            except OSError:  # the worker just died: its reader thread ends the run
                pass

    def _send(self, handle: RemoteTrainer, op: str, *args):
        with self.lock:
            if self.handle is not handle:  # that run is over: its old controls must not reach the next one
                return
            try:
                self.control.send((op, *args))
            except OSError:  # the worker just died: its reader thread ends the run
                pass

    def _read(self):
        while True:
            handle = self.handle
            if handle is not None:  # between messages as well as when none come: a run streams all the time
                handle.check_watched()
                if handle.overdue():
                    self._kill_hung(handle)
            try:
                if not self.results.poll(1.0):
                    continue
                msg = self.results.recv()
            except (EOFError, OSError):
                if self.closing:
                    return
                self._died()
                continue
            handle = self.handle
            if handle is None:
                continue
            if msg[0] == "done":
                self.handle = None  # free before on_finish: the queue may hand this slot the next run at once
            handle.receive(msg)

    def _kill_hung(self, handle: RemoteTrainer):
        """Stop was asked STOP_GRACE_S ago and the worker has not answered: end it (the reader sees it die)."""
        log.error("gptviz worker %d (pid %s) did not stop its run within %g s: killing it", self.index,
                  self.process.pid, STOP_GRACE_S)
        self.hung = True
        self.process.kill()

    def _died(self):
        try:
            code = self.process.wait(5)
        except subprocess.TimeoutExpired:  # its pipe broke but it lives on: end it
            self.process.kill()
            code = self.process.wait()
        if self.hung:
            what = f"its worker did not answer Stop within {STOP_GRACE_S:g} s and was ended"
        elif code < 0:
            what = f"its worker process was killed (signal {-code})" + (": out of memory?" if code == -signal.SIGKILL else "")
        else:
            what = f"its worker process ended unexpectedly (exit code {code})"
        self.hung = False
        log.error("gptviz worker %d (pid %s) died: %s; starting a new one", self.index, self.process.pid, what)
        self.ready = False  # not idle while it restarts: the pool gives runs to the other workers
        handle, self.handle = self.handle, None
        self._back_off()
        with self.lock:
            self._spawn()
        self.ready = True
        if handle is not None:  # after the new worker exists: ending the run may hand this slot the next one
            handle.lost(what)

    def _back_off(self):
        """A worker that dies young (a broken install, no memory at all) is not restarted in a tight loop."""
        young = time.monotonic() - self.spawned_at < 30
        self.deaths = self.deaths + 1 if young else 0
        if self.deaths:
            wait = RESPAWN_BACKOFF_S[min(self.deaths, len(RESPAWN_BACKOFF_S)) - 1]
            log.error("gptviz worker %d died %d time(s) in a row within 30 s of starting: waiting %d s before "
                      "starting it again", self.index, self.deaths, wait)
            time.sleep(wait)

    @property
    def idle(self) -> bool:
        return self.handle is None and self.ready


class WorkerPool:
    """`slots` worker processes, started once (fresh interpreters, not forks: forking a threaded server is unsafe)."""

    def __init__(self, slots: int, threads: int | None = None):
        self.threads = threads or max(1, (os.cpu_count() or 1) // slots)
        self.slots = [_Slot(i, self.threads) for i in range(slots)]
        self._lock = threading.Lock()
        atexit.register(self.close)  # before multiprocessing's own exit handler ends the workers

    def close(self):
        """End every worker (a run in flight ends with its worker)."""
        for slot in self.slots:
            slot.closing = True
            slot.process.terminate()
        for slot in self.slots:
            try:
                slot.process.wait(5)
            except subprocess.TimeoutExpired:
                slot.process.kill()

    def launch(self, handle: RemoteTrainer):
        """Give the run to an idle worker (the queue starts at most `slots` runs at once)."""
        with self._lock:
            slot = next((s for s in self.slots if s.idle), None)
            if slot is None:
                raise RuntimeError("no idle worker: the queue started more runs than there are slots")
            slot.run(handle)

    @property
    def pids(self) -> list[int]:
        return [s.process.pid for s in self.slots]
