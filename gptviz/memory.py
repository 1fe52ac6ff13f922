"""The server's memory budget: what every student's request may add, checked before it is allocated.

    memory.check(400 * MB, "this training", "choose a smaller model or batch")   # raises MemoryBudgetError

The budget (GPTVIZ_MEMORY_BUDGET: "12G", "8000M" or bytes; default 60% of this computer's RAM) covers the
server process and its training workers together, measured from /proc (resident memory, which is what
runs out). A request that would take the total past it gets a message that says what to delete or shrink,
and nothing is allocated; the classmates notice nothing.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from .errors import GptvizError

log = logging.getLogger(__name__)

BUDGET_ENV = "GPTVIZ_MEMORY_BUDGET"
DEFAULT_SHARE = 0.6  # of the RAM: the rest is the operating system's, the browser's on a laptop, the page cache
MB, GB = 2**20, 2**30
_UNITS = {"": 1, "K": 2**10, "M": MB, "G": GB, "T": 2**40}
_PAGE = os.sysconf("SC_PAGE_SIZE")


class MemoryBudgetError(GptvizError):
    """The server has no room for this request now."""


def total_ram() -> int:
    return os.sysconf("SC_PHYS_PAGES") * _PAGE


def parse_size(text: str) -> int:
    """'12G', '8000M', '512 MB' or a number of bytes."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)i?B?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ValueError(f"{BUDGET_ENV} must be a size such as 12G or 8000M, not {text!r}")
    return int(float(m[1]) * _UNITS[m[2].upper()])


def budget_bytes(env=os.environ) -> int:
    text = env.get(BUDGET_ENV)
    if not text:
        return int(total_ram() * DEFAULT_SHARE)
    try:
        return parse_size(text)
    except ValueError as e:
        log.error("%s; using %d%% of the RAM", e, DEFAULT_SHARE * 100)
        return int(total_ram() * DEFAULT_SHARE)


def rss(pid: int | str = "self") -> int:
    """A process's resident memory in bytes (0 when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def children(pid: int | None = None) -> list[int]:
    """The direct children of a process (the training workers of the server)."""
    pid = os.getpid() if pid is None else pid
    try:
        return [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
                for c in (t / "children").read_text().split()]
    except OSError:
        return []


def used_bytes() -> int:
    """The server's resident memory and its workers'."""
    return rss() + sum(rss(c) for c in children())


class Budget:
    """Checks a request against the budget and what the server and its workers hold now."""

    def __init__(self, limit: int | None = None, used=used_bytes):
        self.limit = budget_bytes() if limit is None else limit
        self._used = used

    def check(self, nbytes: int, what: str, advice: str):
        """Raise MemoryBudgetError (a message for the student) when `what` (nbytes) does not fit now."""
        used = self._used()
        if used + nbytes > self.limit:
            log.warning("memory budget: refused %s (%.0f MB; %.0f of %.0f MB used)", what, nbytes / MB,
                        used / MB, self.limit / MB)
            raise MemoryBudgetError(
                f"The server has no room for {what} right now (it needs about {nbytes / MB:,.0f} MB; the class "
                f"already uses {used / GB:,.1f} of the server's {self.limit / GB:,.1f} GB). {advice}")

    def describe(self) -> str:
        return (f"memory budget {self.limit / GB:,.1f} GB of {total_ram() / GB:,.1f} GB RAM "
                f"({BUDGET_ENV}); in use now {self._used() / GB:,.2f} GB")


_budget: Budget | None = None


def budget() -> Budget:
    """The server's one budget (made on first use, from the environment)."""
    global _budget
    if _budget is None:
        _budget = Budget()
        log.warning("gptviz %s", _budget.describe())
    return _budget


def check(nbytes: int, what: str, advice: str):
    budget().check(nbytes, what, advice)
