"""Every page runs through app.py, even on a server's very first request.

Streamlit treats an app with a `pages/` folder as a legacy multipage app until st.navigation has run
once; in that mode a deep link (a shared URL to /train) runs the page file alone, without app.py's
session set-up and model picker. Pages call `require_app()` first: outside app.py it switches
Streamlit to st.navigation mode and reruns.
"""

import threading
from contextlib import contextmanager

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

_local = threading.local()  # Streamlit runs each session's script in its own thread


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
        PagesManager.uses_pages_directory = False
        st.rerun()
