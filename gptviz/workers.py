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
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from .data import TokenData
from .errors import GptvizError
from .jobs import TRAINING_ENV
from .model import GPTConfig
from .tokenizers import from_dict
from .train import RunState, Status, TrainConfig, Trainer, TrainEvent, build_model, check_data

log = logging.getLogger(__name__)

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)  # where a worker imports gptviz from
CONTROLS = ("pause", "resume", "stop", "abandon", "set_threads")  # what a handle may ask of its running Trainer


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

    # --- control ---
    def start(self) -> "RemoteTrainer":
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
        self.send("stop")

    def set_threads(self, n: int):
        if not self.done:  # a finished run's worker may already train the next one
            self.send("set_threads", n)

    def check_watched(self):
        """Called by the transport now and then: a run nobody watches is told to stop itself."""
        if not self.abandoned and not self.done and self.unwatched():
            self.abandoned = True
            self.send("abandon")

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
        self.end(Status.ERROR, f"Training failed at step {self.step}: {what}; {weights}. Your settings did not "
                               "cause this: train again (a smaller model or batch needs less memory).")

    def end(self, status: Status, message: str):
        self.eta_s = 0.0
        self.set_status(status, message)
        self._finished.set()
        if self.on_finish is not None:
            self.on_finish(self)


# --- the worker process -------------------------------------------------------------------------------

def serve(control_fd: int, results_fd: int, threads: int):
    """A worker process's life: wait for a job, train it, send everything back, wait for the next."""
    control, results = Connection(control_fd), Connection(results_fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the server's terminal is for the server
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [worker %(process)d] %(message)s")
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
                jobs.put(build_trainer(msg[1], results.send, current))
            elif msg[0] in CONTROLS and current:
                getattr(current[-1], msg[0])(*msg[1:])

    threading.Thread(target=listen, daemon=True, name="gptviz-worker-control").start()
    warm_up()
    while True:
        trainer = jobs.get()
        if trainer is not None:  # None: building it failed, and the message has been sent
            train_to_end(trainer, results.send)


def warm_up():
    """Pay a fresh process's first-time costs (seconds: kernel and optimizer set-up, the first sample)
    with a 2-step training of a tiny model, before any student's run waits for them."""
    data = TokenData.from_text("To be, or not to be, that is the question. " * 20, "char")
    config = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=16)
    Trainer(config, TrainConfig(max_iters=2, batch_size=2, eval_interval=2, eval_iters=1, sample_tokens=4), data).run()


def build_trainer(job: Job, send: Callable[[tuple], None], current: list) -> Trainer | None:
    """The job's Trainer, wired to send its events; None (and the failure sent) when the settings are refused."""
    try:
        trainer = Trainer(job.config, job.cfg, job.data())
    except GptvizError as e:
        send(("event", "status", 0, {"status": "error", "message": str(e)}, _NO_STATS, None))
        send(("done", "error", str(e), 0, to_bytes(build_model(job.config, job.cfg.seed).state_dict()), None))
        return None
    trainer_messages(trainer, send)
    current[:] = [trainer]
    return trainer


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
        self.lock = threading.Lock()
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

    def run(self, handle: RemoteTrainer):
        with self.lock:
            self.handle = handle
            handle.send = self._send
            handle.where = f"worker process {self.process.pid}"
            self.control.send(("train", handle.job))

    def _send(self, op: str, *args):
        try:
            self.control.send((op, *args))
        except OSError:  # the worker just died: its reader thread ends the run
            pass

    def _read(self):
        while True:
            handle = self.handle
            if handle is not None:  # between messages as well as when none come: a run streams all the time
                handle.check_watched()
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

    def _died(self):
        try:
            code = self.process.wait(5)
        except subprocess.TimeoutExpired:  # its pipe broke but it lives on: end it
            self.process.kill()
            code = self.process.wait()
        what = (f"its worker process was killed (signal {-code})" if code < 0 else
                f"its worker process ended unexpectedly (exit code {code})")
        log.error("gptviz worker %d (pid %s) died: %s; starting a new one", self.index, self.process.pid, what)
        handle, self.handle = self.handle, None
        with self.lock:
            self._spawn()
        if handle is not None:
            handle.lost(what + (": out of memory?" if code == -signal.SIGKILL else ""))

    @property
    def idle(self) -> bool:
        return self.handle is None


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
