"""Where trainings run: threads in the server, local worker processes (the default), or a Ray cluster.

    backend = Backend.from_env()          # GPTVIZ_TRAINING_BACKEND, GPTVIZ_RAY_ADDRESS, GPTVIZ_MAX_TRAININGS
    run = backend.submit(config, cfg, data, abandon_after_s=120)   # a Trainer-like handle, queued
    backend.position(run); backend.cancel(run)

Every backend gives the same handle (see workers.RemoteTrainer) and the same queue, and trains
each identical request once (see shared.py).
"""

from __future__ import annotations

import logging
import os

from .data import TokenData
from .errors import ConfigError
from .jobs import JobQueue
from .model import GPTConfig
from .shared import SharedRuns
from .train import TrainConfig, Trainer

log = logging.getLogger(__name__)

KINDS = ("threads", "processes", "ray")  # GPTVIZ_TRAINING_BACKEND's values
DEFAULT = "processes"
RAY_QUEUE = 10**6  # our queue's limit with Ray: effectively none


def chosen_kind(env=os.environ) -> str:
    """GPTVIZ_TRAINING_BACKEND if set, else "ray" when GPTVIZ_RAY_ADDRESS names a cluster, else the default."""
    kind = env.get("GPTVIZ_TRAINING_BACKEND") or ("ray" if env.get("GPTVIZ_RAY_ADDRESS") else DEFAULT)
    if kind not in KINDS:
        raise ConfigError(f"GPTVIZ_TRAINING_BACKEND must be one of {', '.join(KINDS)}, not {kind!r}.")
    return kind


class Backend:
    def __init__(self, kind: str = DEFAULT, max_running: int | None = None, ray_address: str | None = None,
                 shared: SharedRuns | None = None):
        self.kind = kind
        self.pool = self.ray = None
        self.notice = ""  # what the operator must know about this backend (said once, in the log)
        if kind == "ray":
            from .ray_backend import RayCluster  # Ray is optional: only a cluster install has it

            try:
                self.ray = RayCluster(ray_address)
                max_running = RAY_QUEUE  # Ray's scheduler is the queue: hand every run to it at once
            except ConfigError as e:  # said once at start, not on every page of every session
                self.notice = f"{e} Training on this computer's worker processes instead."
                log.error("gptviz: %s", self.notice)
                self.kind = kind = "processes"
        self.queue = JobQueue(max_running, cores=None if kind == "ray" else os.cpu_count() or 1)
        if kind == "processes":
            from .workers import WorkerPool

            self.pool = WorkerPool(self.queue.max_running)
        self.shared = shared if shared is not None else SharedRuns()

    @classmethod
    def from_env(cls, env=os.environ) -> "Backend":
        return cls(chosen_kind(env), int(env.get("GPTVIZ_MAX_TRAININGS", 0)) or None, env.get("GPTVIZ_RAY_ADDRESS"))

    @property
    def max_running(self) -> int:
        """How many trainings run at once (on a cluster: its CPUs now, as computers join and leave)."""
        return self.ray.slots() if self.ray is not None else self.queue.max_running

    @property
    def running(self) -> int:
        return self.queue.running

    @property
    def waiting(self) -> int:
        return self.queue.waiting

    def new_trainer(self, config: GPTConfig, cfg: TrainConfig, data: TokenData, abandon_after_s: float | None = None):
        """A fresh training on this backend, not yet queued."""
        if self.kind == "threads":
            return Trainer(config, cfg, data, abandon_after_s=abandon_after_s)
        from .workers import RemoteTrainer

        launch = self.pool.launch if self.pool is not None else self.ray.launch
        return RemoteTrainer(config, cfg, data, launch, abandon_after_s)

    def submit(self, config: GPTConfig, cfg: TrainConfig, data: TokenData, abandon_after_s: float | None = None,
               owner=None):
        """Queue a training, or join the identical one already trained or training (see shared.py).
        owner: the tab that asks (its fair share of the queue, see jobs.py)."""

        def start():
            return self.queue.submit(self.new_trainer(config, cfg, data, abandon_after_s), owner)

        return self.shared.request(config, cfg, data, start)

    def position(self, run) -> int | None:
        """How many trainings wait ahead of this one (None: it is not waiting)."""
        return (self.ahead(run) or (None, 0))[0]

    def ahead(self, run) -> tuple[int, int] | None:
        """(trainings ahead of this one, how many of them its own tab's), or None when it is not waiting."""
        trainer = getattr(run, "trainer", run)
        if self.ray is not None:
            n = self.ray.position(trainer)
            return None if n is None else (n, 0)
        return self.queue.ahead(trainer)

    def check_room(self, owner, n: int):
        """Refuse, before anything is queued, a batch that would exceed the tab's share of the line."""
        self.queue.check_room(owner, n)

    def cancel(self, run):
        """Stop a student's run: it leaves a shared training, which stops once nobody else watches it."""
        if hasattr(run, "leave"):
            run.leave(self.queue.cancel)
        else:
            self.queue.cancel(run)
