"""A first-come, first-served queue that caps how many trainings run at once.

On a shared classroom server every training competes for the same CPU cores; running more
at once than there are cores only makes all of them, and every student's page, slower.
"""

from __future__ import annotations

import os
import threading

from .train import Status, Trainer


class JobQueue:
    def __init__(self, max_running: int | None = None):
        self.max_running = max(1, max_running or os.cpu_count() or 1)
        self._lock = threading.Lock()
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
