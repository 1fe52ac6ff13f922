"""A first-come, first-served queue that caps how many trainings run at once.

On a shared classroom server every training competes for the same CPU cores; running more
at once than there are cores only makes all of them, and every student's page, slower.
The queue also shares the cores among the trainings that run: a lone training uses all of them,
two get half each, and every start or end of a training re-shares them (see `threads_per_training`).
"""

from __future__ import annotations

import os
import threading

from .train import Status, Trainer


# For every process that trains (set before torch starts): threads that wait for each other sleep instead of
# spinning. On a busy shared host a spinning thread burns the core its partner needs: a 2-thread step of the
# gpt preset took 1,312 ms spinning against 145 ms sleeping (1 thread: 132-170 ms), same moment, load 8-12.
TRAINING_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def threads_per_training(cores: int, running: int) -> int:
    """Torch threads for each of `running` trainings on `cores` cores: all of them for a lone one."""
    return max(1, cores // max(1, running))


class JobQueue:
    def __init__(self, max_running: int | None = None, cores: int | None = os.cpu_count() or 1):
        self.max_running = max(1, max_running or os.cpu_count() or 1)
        self.cores = cores  # shared among the running trainings; None: not this queue's business (Ray)
        self._lock = threading.Lock()
        self._share_lock = threading.Lock()  # one re-share at a time: the last one sees the latest trainings
        self._running: list[Trainer] = []
        self._waiting: list[Trainer] = []

    def submit(self, trainer: Trainer) -> Trainer:
        """Start now if a slot is free, otherwise wait in line (trainer.status stays "queued")."""
        trainer.set_status(Status.QUEUED)
        trainer.on_finish = self._finished
        with self._lock:
            self._waiting.append(trainer)
        self._start_waiting()
        return trainer

    def position(self, trainer: Trainer) -> int | None:
        """How many jobs are ahead of this one in the line (None when it is not waiting)."""
        with self._lock:
            return self._waiting.index(trainer) if trainer in self._waiting else None

    def cancel(self, trainer: Trainer):
        """Take a waiting job out of the line, or stop a running one."""
        with self._lock:
            waiting = trainer in self._waiting
            if waiting:
                self._waiting.remove(trainer)
        if waiting:
            trainer.set_status(Status.STOPPED, "Cancelled before it started.")
        else:
            trainer.stop()

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._running)

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    def _finished(self, trainer: Trainer):
        with self._lock:
            if trainer in self._running:
                self._running.remove(trainer)
        self._start_waiting()

    def _start_waiting(self):
        to_start = []
        with self._lock:
            while self._waiting and len(self._running) < self.max_running:
                trainer = self._waiting.pop(0)
                if trainer.unwatched():  # its student left while it waited: the slot goes to the next one
                    trainer.set_status(Status.STOPPED, "Never started: the browser tab was closed while it "
                                                       "waited in the queue.")
                    continue
                self._running.append(trainer)
                to_start.append(trainer)
        for trainer in to_start:
            trainer.start()
        self._share_cores()

    def _share_cores(self):
        """Tell every running training its share of the cores (it applies it between two steps)."""
        if self.cores is None:
            return
        with self._share_lock:
            with self._lock:
                running = list(self._running)
            for trainer in running:
                trainer.set_threads(threads_per_training(self.cores, len(running)))
