"""The pages/ folder workaround (ui/entry.py) leans on Streamlit's private multipage flag: these tests fail when a
Streamlit upgrade moves or renames what it relies on (end to end, tests/browser checks a deep link on a fresh server)."""

from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import app_test

from ui import entry, state

APP = Path(__file__).resolve().parent.parent / "app.py"


def test_the_flag_decides_legacy_mode_once_and_then_sticks():
    saved = PagesManager.uses_pages_directory
    try:
        PagesManager.uses_pages_directory = None
        PagesManager(str(APP), setup_watcher=False)
        assert PagesManager.uses_pages_directory is True  # a pages/ folder next to app.py: legacy mode
        entry.use_navigation_mode()
        PagesManager(str(APP), setup_watcher=False)
        assert PagesManager.uses_pages_directory is False  # once cleared, a new session keeps st.navigation mode
    finally:
        PagesManager.uses_pages_directory = saved


def test_st_navigation_clears_the_flag_that_use_navigation_mode_clears(tmp_path):
    """What ui/entry.py imitates: an app with a pages/ folder starts in legacy mode (the script runner reads the
    flag), and its st.navigation call leaves the server-wide flag False."""
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "one.py").write_text("import streamlit as st\nst.write('inside the page')\n")
    (tmp_path / "app.py").write_text("import streamlit as st\nst.navigation([st.Page('pages/one.py')]).run()\n")
    saved = PagesManager.uses_pages_directory
    try:
        PagesManager.uses_pages_directory = True  # what a fresh server with pages/ decides
        at = app_test.AppTest.from_file(str(tmp_path / "app.py"))
        at.run()
        assert not at.exception and [m.value for m in at.markdown] == ["inside the page"]
        assert PagesManager.uses_pages_directory is False
    finally:
        PagesManager.uses_pages_directory = saved


def test_apptest_resets_its_own_copy_and_leaves_the_servers_flag_alone(app):
    assert issubclass(app_test.PagesManager, PagesManager) and app_test.PagesManager is not PagesManager
    app.run()
    assert PagesManager.uses_pages_directory is False  # st.navigation ran and AppTest did not undo it
    app.switch_page("pages/train.py").run()
    app.button(key="train_start").click().run()  # a click in a page survives (it was lost in legacy mode)
    runs = list(app.session_state[state.TAB].runs.values())
    assert len(runs) == 1 and not app.exception
    runs[0].trainer.stop()
