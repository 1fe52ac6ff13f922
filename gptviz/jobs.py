"""A fair queue that caps how many trainings run at once.

On a shared classroom server every training competes for the same CPU cores; running more
at once than there are cores only makes all of them, and every student's page, slower.
Fair: each browser tab (an `owner`) has at most `per_owner_running` trainings running and
`per_owner_waiting` waiting, and free slots go round-robin between tabs, so a tab that queues the
whole ladder twice waits behind one training of each classmate, never the class behind it.
The queue also shares the cores among the trainings that run: a lone training uses all of them,
two get half each, and every start or end of a training re-shares them (see `threads_per_training`).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

from .errors import ConfigError
from .train import Status, Trainer

RUNNING_PER_TAB_ENV, WAITING_PER_TAB_ENV = "GPTVIZ_RUNNING_PER_TAB", "GPTVIZ_QUEUED_PER_TAB"
DEFAULT_RUNNING_PER_TAB = 1
DEFAULT_WAITING_PER_TAB = 10  # the ladder repeated with two more seeds


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


class QueueFull(ConfigError):
    """A tab asked for more waiting trainings than its share."""


# For every process that trains (set before torch starts): threads that wait for each other sleep instead of
# spinning. On a busy shared host a spinning thread burns the core its partner needs: a 2-thread step of the
# gpt preset took 1,312 ms spinning against 145 ms sleeping (1 thread: 132-170 ms), same moment, load 8-12.
TRAINING_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def threads_per_training(cores: int, running: int) -> int:
    """Torch threads for each of `running` trainings on `cores` cores: all of them for a lone one."""
    return max(1, cores // max(1, running))


class JobQueue:
    def __init__(self, max_running: int | None = None, per_owner_running: int | None = None,
                 per_owner_waiting: int | None = None, cores: int | None = os.cpu_count() or 1):
        self.max_running = max(1, max_running or os.cpu_count() or 1)
        self.per_owner_running = per_owner_running or _env_int(RUNNING_PER_TAB_ENV, DEFAULT_RUNNING_PER_TAB)
        self.per_owner_waiting = per_owner_waiting or _env_int(WAITING_PER_TAB_ENV, DEFAULT_WAITING_PER_TAB)
        self.cores = cores  # shared among the running trainings; None: not this queue's business (Ray)
        self._lock = threading.Lock()
        self._share_lock = threading.Lock()  # one re-share at a time: the last one sees the latest trainings
        self._running: list[Trainer] = []
        self._waiting: OrderedDict[object, list[Trainer]] = OrderedDict()  # owner -> its line; order: whose turn
        self._owner: dict[int, object] = {}  # id(trainer) -> owner

    def submit(self, trainer: Trainer, owner=None) -> Trainer:
        """Start now if a slot is free, otherwise wait in line (trainer.status stays "queued").
        owner: who asked (a tab's token); None: nobody in particular, no per-owner limits."""
        self.check_room(owner)
        owner = ("job", id(trainer)) if owner is None else owner
        trainer.set_status(Status.QUEUED)
        trainer.on_finish = self._finished
        with self._lock:
            self._owner[id(trainer)] = owner
            self._waiting.setdefault(owner, []).append(trainer)
        self._start_waiting()
        return trainer

    def check_room(self, owner, n: int = 1):
        """Refuse (QueueFull, a message for the student) when `owner` would have too many waiting."""
        if owner is None:
            return
        with self._lock:
            waiting = len(self._waiting.get(owner, ()))
        if waiting + n > self.per_owner_waiting:
            raise QueueFull(f"You already have {waiting} training{'s' * (waiting != 1)} waiting; each tab may "
                            f"queue {self.per_owner_waiting}, so that the class's trainings get their turn too. "
                            "Wait for yours to start, or stop one.")

    def _order(self) -> list[Trainer]:
        """The waiting trainings in the order they would start: one per tab per round, in turn order."""
        lines = [list(line) for line in self._waiting.values()]
        return [line[i] for i in range(max(map(len, lines), default=0)) for line in lines if i < len(line)]

    def position(self, trainer: Trainer) -> int | None:
        """How many jobs are ahead of this one in the line (None when it is not waiting)."""
        return (self.ahead(trainer) or (None, None))[0]

    def ahead(self, trainer: Trainer) -> tuple[int, int] | None:
        """(jobs ahead of this one, how many of those are its owner's own), or None when it is not waiting."""
        with self._lock:
            order = self._order()
            if trainer not in order:
                return None
            before = order[:order.index(trainer)]
            owner = self._owner.get(id(trainer))
            return len(before), sum(self._owner.get(id(t)) == owner for t in before)

    def cancel(self, trainer: Trainer):
        """Take a waiting job out of the line, or stop a running one."""
        with self._lock:
            waiting = self._remove_waiting(trainer)
        if waiting:
            trainer.set_status(Status.STOPPED, "Cancelled before it started.")
        else:
            trainer.stop()

    def _remove_waiting(self, trainer: Trainer) -> bool:
        owner = self._owner.get(id(trainer))
        line = self._waiting.get(owner)
        if line is None or trainer not in line:
            return False
        line.remove(trainer)
        if not line:
            del self._waiting[owner]
        self._owner.pop(id(trainer), None)
        return True

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._running)

    @property
    def waiting(self) -> int:
        with self._lock:
            return sum(map(len, self._waiting.values()))

    def _finished(self, trainer: Trainer):
        with self._lock:
            if trainer in self._running:
                self._running.remove(trainer)
                self._owner.pop(id(trainer), None)
        self._start_waiting()

    def _next(self) -> Trainer | None:
        """The first waiting training, in turn order, whose tab has room to run one more."""
        busy: dict = {}
        for t in self._running:
            busy[self._owner.get(id(t))] = busy.get(self._owner.get(id(t)), 0) + 1
        for owner, line in self._waiting.items():
            if busy.get(owner, 0) < self.per_owner_running:
                return line[0]
        return None

    def _start_waiting(self):
        to_start = []
        with self._lock:
            while len(self._running) < self.max_running and (trainer := self._next()) is not None:
                owner = self._owner[id(trainer)]
                self._remove_waiting(trainer)
                if trainer.unwatched():  # its student left while it waited: the slot goes to the next one
                    trainer.set_status(Status.STOPPED, "Never started: the browser tab was closed while it "
                                                       "waited in the queue.")
                    continue
                self._owner[id(trainer)] = owner
                if owner in self._waiting:
                    self._waiting.move_to_end(owner)  # served: the other tabs' turn first
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
