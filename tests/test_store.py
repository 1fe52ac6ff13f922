"""Runs kept per browser tab on the server: tokens, expiry, deletion, and a reload taking them over."""

import secrets
import time

from streamlit.testing.v1 import AppTest

from gptviz import sessions
from gptviz.sessions import TabStore
from test_page_train import latest, poll_until, small
from ui import state


def test_a_tab_is_found_by_its_token_and_by_nothing_else():
    store = TabStore(ttl=60)
    tab, other = store.new(), store.new()
    assert len(tab.token) == 32 and tab.token != other.token
    assert store.find(tab.token) is tab and store.find(other.token) is other
    for wrong in (secrets.token_urlsafe(24), tab.token[:-1], tab.token + "x", None, 42, "../" + tab.token[3:]):
        assert store.find(wrong) is None, wrong


def test_tabs_expire_after_their_time_to_live_unless_seen_and_their_runs_are_dropped():
    dropped = []
    store = TabStore(ttl=0.3, on_drop=lambda tab: dropped.append(dict(tab.runs)))
    kept, left, empty = store.new(), store.new(), store.new()
    kept.runs[1] = left.runs[2] = "a run"
    for _ in range(4):  # one tab is seen every 0.1 s, the others never
        time.sleep(0.1)
        assert store.touch(kept)
    assert store.find(left.token) is None and store.find(empty.token) is None
    assert dropped == [{2: "a run"}, {}] or dropped == [{}, {2: "a run"}]
    assert left.runs == {}  # a session still holding the object sees them gone too
    assert not store.touch(left) and store.touch(kept) and kept.runs == {1: "a run"}
    store.drop(kept)  # the student deletes everything
    assert store.find(kept.token) is None and kept.runs == {}


def test_an_empty_tab_is_forgotten_sooner_than_one_with_runs():
    store = TabStore(ttl=3600)
    empty, busy = store.new(), store.new()
    busy.uploads["mine"] = "a checkpoint"
    empty.last_seen = busy.last_seen = time.monotonic() - sessions.EMPTY_TTL_S - 1
    store.sweep()
    assert store.find(empty.token) is None and store.find(busy.token) is busy


def test_the_time_to_live_comes_from_one_environment_variable(monkeypatch):
    monkeypatch.setenv(sessions.TTL_ENV, "0.5")
    assert sessions.ttl_s() == 1800 and TabStore().ttl == 1800
    monkeypatch.setenv(sessions.TTL_ENV, "soon")
    assert sessions.ttl_s() == 12 * 3600
    monkeypatch.delenv(sessions.TTL_ENV)
    assert sessions.ttl_s() == sessions.DEFAULT_TTL_HOURS * 3600


def _reloaded_tab(token):
    """What app.py does in a reloaded tab once the browser has sent back the token it kept."""
    import streamlit as st

    from ui import state, store

    state.init()
    store.adopt(token)
    st.write(f"{len(state.runs())} runs, model {st.session_state[state.MODEL]}")


def test_a_reload_takes_over_the_tabs_runs_and_a_wrong_token_gets_nothing(app):
    train = small(app.switch_page("pages/train.py").run(), iters=20)
    train.button(key="train_start").click().run()
    assert poll_until(train, lambda: latest(train).trainer.done)
    train.run()  # the picker switches to a run on the first full rerun after it finished
    tab = train.session_state[state.TAB]
    assert state.tabs().find(tab.token) is tab and tab.model == f"run:{latest(train).id}"

    reloaded = AppTest.from_function(_reloaded_tab, args=(tab.token,)).run()
    assert reloaded.session_state[state.TAB] is tab and not reloaded.exception
    assert reloaded.markdown[0].value == f"1 runs, model run:{latest(train).id}"
    for stranger in (secrets.token_urlsafe(24), "not a token"):
        other = AppTest.from_function(_reloaded_tab, args=(stranger,)).run()
        assert other.session_state[state.TAB] is not tab and other.markdown[0].value.startswith("0 runs")


def test_delete_removes_the_picked_run_from_the_tab(app):
    train = small(app.switch_page("pages/train.py").run(), iters=20)
    train.button(key="train_start").click().run()
    assert poll_until(train, lambda: latest(train).trainer.done)
    train.run()  # the picker switches to a run on the first full rerun after it finished
    assert train.selectbox(key=state.MODEL).value.startswith("run:")
    train.button(key=state.DELETE_MODEL).click().run()
    assert train.session_state[state.TAB].runs == {} and not train.exception
    assert train.selectbox(key=state.MODEL).value == "ckpt:shakespeare-char"
    assert not any(o.startswith("🧪") for o in train.selectbox(key=state.MODEL).options)


def test_an_expired_tab_loses_its_runs_and_a_training_stops(app, monkeypatch):
    train = small(app.switch_page("pages/train.py").run(), iters=5000)
    train.button(key="train_start").click().run()
    run = latest(train)
    assert poll_until(train, lambda: run.trainer.step > 0)
    monkeypatch.setattr(state.tabs(), "ttl", 0.5)  # GPTVIZ_RUNS_TTL_HOURS, as if the tab had been away
    time.sleep(1.0)
    train.run()
    assert train.session_state[state.TAB].runs == {} and not train.exception
    run.trainer.join(30)
    assert run.trainer.status == "stopped"


def test_the_heartbeat_follows_the_token_so_a_reloaded_tab_keeps_a_training_alive(app):
    train = small(app.switch_page("pages/train.py").run(), iters=5000)
    train.button(key="train_start").click().run()
    run = latest(train)
    assert poll_until(train, lambda: run.trainer.step > 0)
    training = getattr(run.trainer, "trainer", run.trainer)  # the training itself (a student's run may share it)
    before = training.last_seen
    time.sleep(0.5)  # the old page is gone: nothing stamps the heartbeat
    AppTest.from_function(_reloaded_tab, args=(train.session_state[state.TAB].token,)).run()
    assert training.last_seen >= before + 0.5  # the new page's heartbeat
    assert run.trainer.status == "running"  # adopted, not restarted
    run.trainer.stop()
    run.trainer.join(30)
