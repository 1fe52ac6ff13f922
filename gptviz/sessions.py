"""A browser tab's work, kept on the server under a secret token so that reloading the tab finds it again.

The token is a random secret that only the tab knows (the app keeps it in the tab's sessionStorage): a
reload of that tab brings its runs back, while another tab, another browser or a shared link gets none.
Everything here lives in server memory: a server restart loses it (saved checkpoints are files and stay).
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

TTL_ENV = "GPTVIZ_RUNS_TTL_HOURS"  # how long a tab's runs are kept after it was last seen
DEFAULT_TTL_HOURS = 12.0
EMPTY_TTL_S = 600.0  # a tab with nothing in it has nothing to lose: forget it sooner
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")


def ttl_s() -> float:
    """The time-to-live from the environment (hours, fractions allowed), else 12 hours."""
    try:
        hours = float(os.environ.get(TTL_ENV, DEFAULT_TTL_HOURS))
    except ValueError:
        hours = DEFAULT_TTL_HOURS
    return max(hours, 0.0) * 3600


@dataclass(eq=False)
class Tab:
    """What one browser tab owns: its runs, the checkpoints it opened and the model it last picked."""

    token: str
    last_seen: float
    runs: dict = field(default_factory=dict)  # run id -> ui.state.Run
    uploads: dict = field(default_factory=dict)  # name -> Checkpoint opened from the student's own file
    model: str | None = None  # the picker's key of the model it inspects
    seat: object = None  # ui.classroom.Seat: the class this tab joined or teaches (a reload keeps it)

    def empty(self) -> bool:
        return not self.runs and not self.uploads


class TabStore:
    """Every tab of the server by token; a tab unseen for longer than its time-to-live is dropped."""

    def __init__(self, ttl: float | None = None, on_drop: Callable[[Tab], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl_s() if ttl is None else ttl
        self.on_drop = on_drop  # e.g. stop the dropped tab's trainings
        self.clock = clock
        self._tabs: dict[str, Tab] = {}
        self._lock = threading.Lock()

    def new(self) -> Tab:
        tab = Tab(secrets.token_urlsafe(24), self.clock())  # 192 random bits: nobody guesses another's
        with self._lock:
            self._tabs[tab.token] = tab
        self.sweep()
        return tab

    def find(self, token) -> Tab | None:
        """The live tab with this token (and it counts as seen), or None: unknown, malformed or expired."""
        self.sweep()
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            return None
        with self._lock:
            tab = self._tabs.get(token)
        if tab is not None:
            tab.last_seen = self.clock()
        return tab

    def touch(self, tab: Tab) -> bool:
        """Mark the tab as seen now; False when it has already expired or been deleted."""
        self.sweep()
        with self._lock:
            alive = self._tabs.get(tab.token) is tab
        if alive:
            tab.last_seen = self.clock()
        return alive

    def drop(self, tab: Tab):
        with self._lock:
            dropped = self._tabs.pop(tab.token, None) is tab
        if dropped:
            if self.on_drop is not None:
                self.on_drop(tab)
            tab.runs.clear()
            tab.uploads.clear()

    def sweep(self):
        """Drop every tab unseen for longer than the time-to-live (an empty one after EMPTY_TTL_S)."""
        now = self.clock()
        with self._lock:
            old = [t for t in self._tabs.values()
                   if now - t.last_seen > (min(self.ttl, EMPTY_TTL_S) if t.empty() else self.ttl)]
        for tab in old:
            self.drop(tab)

    def __len__(self) -> int:
        with self._lock:
            return len(self._tabs)
