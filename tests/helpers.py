"""Waiting in tests: one polling helper for everything that happens in another thread (training, the queue)."""

import time


def wait_until(cond, seconds: float = 30, every: float = 0.01, before=None) -> bool:
    """Poll `cond()` until it is true or `seconds` have passed; `before()` runs ahead of each check
    (e.g. `at.run()`, what a live fragment's run_every does in a browser). Returns the last `cond()`."""
    deadline = time.monotonic() + seconds
    while True:
        if before is not None:
            before()
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)


def settled(read, seconds: float = 30, quiet: float = 0.5):
    """The value of `read()` once it stayed the same for `quiet` seconds (None if it never did)."""
    last = []

    def still():
        before = read()
        time.sleep(quiet)
        last[:] = [before]
        return read() == before

    return last[0] if wait_until(still, seconds, every=0) else None
