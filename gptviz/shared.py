"""One training per identical request: a class that retrains the same settings trains once.

A run is keyed by everything that determines it: the tokens and the tokenizer, the model's and the
training's settings (the seed among them). A request identical to a finished run gets its result at
once; one identical to a running run joins it and watches the same progress. Each student still gets
a private `SharedRun` (their own name and place in their runs table, their own copy of the model once
it is finished), and may leave a shared training without stopping it for the others.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import asdict
from typing import Callable

from .data import TokenData
from .model import GPTConfig
from .train import Status, TrainConfig

MAX_ENTRIES = 64  # finished trainings kept for the next identical request
MAX_BYTES = 512 * 2**20  # and the memory their weights and snapshots may hold


def run_key(config: GPTConfig, cfg: TrainConfig, data: TokenData) -> str:
    """What determines a training's result, hashed."""
    h = hashlib.sha256()
    settings = {"model": asdict(config), "train": cfg.to_dict(), "tokenizer": data.tokenizer.to_dict(),
                "n_train": len(data.train)}
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(data.tokens.numpy().tobytes())
    return h.hexdigest()


class _Entry:
    def __init__(self, trainer):
        self.trainer = trainer
        self.students = 0  # how many asked for it, all told
        self.watching = 0  # how many still watch it (a student who stops leaves)


def _bytes(trainer) -> int:
    weights = sum(p.numel() * p.element_size() for p in trainer.model.parameters())
    return weights + sum(sum(t.numel() * t.element_size() for t in s.values()) for s in trainer.snapshots.values())


class SharedRuns:
    """The server's trainings by key; bounded in count and memory (running ones are always kept)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.trainings_started = 0  # how many real trainings the requests started

    def request(self, config: GPTConfig, cfg: TrainConfig, data: TokenData, start: Callable[[], object]) -> "SharedRun":
        """The student's run: the identical training's if there is one, else a new one made by start()."""
        key = run_key(config, cfg, data)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.trainer.status in (Status.STOPPED, Status.ERROR):  # not a whole result
                entry = self._entries[key] = _Entry(start())
                self.trainings_started += 1
            self._entries.move_to_end(key)
            entry.students += 1
            entry.watching += 1
            self._evict()
        return SharedRun(entry, self._lock)

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self):
        """Forget the oldest finished trainings beyond the bounds (their students keep their runs)."""
        done = [k for k, e in self._entries.items() if e.trainer.done]
        total = sum(_bytes(self._entries[k].trainer) for k in done)
        while done and (len(self._entries) > self.max_entries or total > self.max_bytes):
            key = done.pop(0)
            total -= _bytes(self._entries.pop(key).trainer)


class SharedRun:
    """One student's view of a training that others may share: reads go to the training itself."""

    def __init__(self, entry: _Entry, lock: threading.Lock):
        self.trainer = entry.trainer
        self._entry, self._lock = entry, lock
        self._model = None  # this student's own copy once the training is over
        self.left = False
        self._frozen = False  # left while others still watch: this run ended for this student

    def __getattr__(self, name):  # status, message, step, history, snapshots, cfg, events, ...
        return getattr(self.trainer, name)

    @property
    def students(self) -> int:
        """How many students this one training served."""
        return self._entry.students

    @property
    def model(self):
        if self._model is not None:
            return self._model
        if not self.trainer.done:
            return self.trainer.model  # for its size; inspection pages only open finished runs
        self._model = copy.deepcopy(self.trainer.model)  # pages may hook it: nobody else's copy
        return self._model

    def _alone(self) -> bool:
        return self._entry.watching <= 1

    def pause(self):
        if self._alone():  # pausing would hold up the others
            self.trainer.pause()

    def resume(self):
        self.trainer.resume()  # anyone may: a run a classmate paused and left holds up everyone who joined it

    def heartbeat(self):
        self.trainer.heartbeat()

    def leave(self, stop: Callable[[object], None]):
        """Stop watching: the last watcher stops the training itself; the others keep theirs going."""
        with self._lock:
            if self.left:
                return
            self.left = True
            self._entry.watching -= 1
            last = self._entry.watching == 0
        if last:
            stop(self.trainer)
        else:
            self._freeze()

    def _freeze(self):
        """This student's run ends here (stopped, with the latest snapshot); the training goes on."""
        t = self.trainer
        self.history = copy.deepcopy(t.history)
        self.snapshots = dict(t.snapshots)
        self.step = t.step
        model = copy.deepcopy(t.model)
        if self.snapshots:
            model.load_state_dict(self.snapshots[max(self.snapshots)])
        self._model = model.eval()
        others = self._entry.watching
        self.message = (f"Stopped watching at step {self.step}; the same training goes on for {others} other "
                        f"student{'s' * (others > 1)}. The weights of its latest snapshot were kept.")
        self.eta_s = 0.0
        self.status = Status.STOPPED
        self._frozen = True

    @property
    def done(self) -> bool:
        return self._frozen or self.trainer.done
