"""The tab's token in the browser: a reload of the same tab gets its runs back.

A reload starts a new Streamlit session, so the session alone cannot remember anything. The token of
the tab's server-side store (gptviz.sessions) is kept in the tab's sessionStorage, which survives a
reload of that tab and nothing else: a new tab, another browser and a shared link (the Train page's
URL carries its sliders, never the token) start empty. A cookie would be shared by every tab of the
browser, and st.context can read cookies but not sessionStorage, so a tiny st.components.v2
component (no iframe, no build step) reads it and reports it.

The handshake: every session starts with a fresh token and offers it to the browser. A tab that
already holds a token asks for that one instead (on_token_change, before the next rerun): when the
server still knows it, the session adopts it; when not (expired, server restarted) the browser
keeps the fresh one.
"""

import streamlit as st

from . import state

_JS = """
export default function({data, setStateValue}) {
  const held = window.sessionStorage.getItem("gptviz-tab");
  if (held && held !== data.token && held !== data.asked) {
    setStateValue("token", held);  // a reload: ask the server for this tab's runs
  } else {
    window.sessionStorage.setItem("gptviz-tab", data.token);
  }
}
"""
_component = st.components.v2.component("gptviz_tab", js=_JS)


def adopt(token):
    """The browser asks for its tab's runs back: take them over when the server still knows the token."""
    st.session_state[state.TAB_ASKED] = token
    found = state.tabs().find(token)
    current = state.tab()
    if found is None or found is current:
        return
    found.runs.update(current.runs)  # anything started in the moment before the browser answered
    found.uploads.update(current.uploads)
    current.runs.clear()
    current.uploads.clear()
    state.tabs().drop(current)
    st.session_state[state.TAB] = found
    if found.model is not None:
        st.session_state[state.MODEL] = found.model
    state.heartbeat()


def _on_token():
    adopt(st.session_state[state.TAB_WIDGET].token)


def remember_tab():
    """Mount the (invisible) component that keeps the token in the tab; call it on every run of app.py."""
    with st.sidebar:
        _component(key=state.TAB_WIDGET, data={"token": state.tab().token, "asked": st.session_state[state.TAB_ASKED]},
                   on_token_change=_on_token, height=0)
