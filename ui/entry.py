"""Every page runs through app.py, even on a server's very first request.

The product keeps one file per page in `pages/`, and Streamlit treats an app with a `pages/` folder as a
legacy multipage app until st.navigation has run once: in that mode a deep link (a shared URL to
/train) runs the page file alone, without app.py's session set-up and model picker. Pages call
`require_app()` first: outside app.py it switches Streamlit to st.navigation mode and reruns.

This module is the one place that touches Streamlit's private multipage state
(`PagesManager.uses_pages_directory`, the flag st.navigation itself clears); tests/test_entry.py fails
when a Streamlit upgrade moves it.
"""

import threading
from contextlib import contextmanager

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

_local = threading.local()  # Streamlit runs each session's script in its own thread


def use_navigation_mode():
    """What st.navigation does first: stop treating pages/ as a legacy multipage folder."""
    PagesManager.uses_pages_directory = False


@contextmanager
def running_app():
    """app.py wraps pages.run() in this."""
    _local.active = True
    try:
        yield
    finally:
        _local.active = False


def require_app():
    if not getattr(_local, "active", False):
        use_navigation_mode()
        st.rerun()


def keep_navigation_mode_in_apptest():
    """For tests/conftest.py: AppTest resets PagesManager.uses_pages_directory before every run, which a real
    server does once, so each run would start the page alone (legacy pages/ mode), rerun through app.py and
    drop button clicks. AppTest then resets this subclass's copy instead, leaving the server-wide flag as
    st.navigation set it."""
    from streamlit.testing.v1 import app_test

    if not issubclass(app_test.PagesManager, _AppTestPagesManager):
        app_test.PagesManager = _AppTestPagesManager


class _AppTestPagesManager(PagesManager):
    """A PagesManager whose class flag is AppTest's own (see keep_navigation_mode_in_apptest)."""
