"""Real-browser tests: a real `streamlit run app.py` server driven by Debian's Chromium via Playwright."""

import time
from pathlib import Path

import pytest

from tools.chromium import CHROMIUM, launch, wait_idle
from tools.server import Server as _Server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"

if not Path(CHROMIUM).exists():  # bash .ci/run installs it; say so instead of failing obscurely
    pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


def Server(env: dict | None = None, app_dir: Path = ROOT) -> _Server:
    """`streamlit run app.py` on a free port, logging into test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    return _Server(app_dir, env, ARTIFACTS / f"server-{time.time_ns()}.log")


@pytest.fixture(scope="session")
def server():
    ARTIFACTS.mkdir(exist_ok=True)
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A new browser context per test: a new Streamlit session, like a second student."""
    context = browser.new_context(viewport={"width": 1400, "height": 2200})  # tall: screenshots show whole pages
    p = context.new_page()
    yield p
    context.close()


def open_page(page, server, path=""):
    page.goto(f"{server.url}/{path}")
    wait_idle(page)


def screenshot(page, name):
    (ARTIFACTS / "screenshots").mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "screenshots" / f"{name}.png"), full_page=True)


def plotly_traces(page, nth=0):
    """The data of the nth Plotly chart on the page, as the browser holds it."""
    return page.evaluate(
        "n => { const el = document.querySelectorAll('[data-testid=stPlotlyChart] .js-plotly-plot')[n];"
        " return el ? el.data.map(t => ({type: t.type || 'scatter', name: t.name || '', n: (t.x || t.z || []).length}))"
        " : null; }", nth)
