"""Debian's Chromium as every browser tool and test drives it: where it is, how it starts, when a page is done.

Never `playwright install`: the tests and tools use the system Chromium (`apt-get install chromium`).
"""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("GPTVIZ_CHROMIUM", "/usr/bin/chromium")
# no sandbox (containers), no GPU (there is none), nothing that phones home (there is no internet)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def launch(playwright):
    """A headless Chromium browser from a `sync_playwright()` handle."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def wait_idle(page, timeout=60_000, settle_ms=250):
    """Streamlit has finished the rerun: no script running and no stale element left on screen."""
    page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=timeout)
    page.wait_for_function("!document.querySelector('[data-stale=true], [data-testid=stSkeleton]')", timeout=timeout)
    page.wait_for_timeout(settle_ms)
