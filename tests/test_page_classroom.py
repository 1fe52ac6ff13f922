"""The Class page and the class's parts on other pages, through the real app (AppTest): start and join, the
board filled by a real training, the teacher's tools, follow me, and predict-then-reveal on two pages.

AppTest sessions of one pytest process share the server's st.cache_resource, so a teacher and students
here are in one class on one server, as in a classroom."""

import csv
import io
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gptviz import classroom as cr
from helpers import wait_until
from ui import state
from ui.classroom import room
from ui.state import Classroom as K

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def session(page="pages/classroom.py") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def seat(at):
    return at.session_state[state.TAB].seat


@pytest.fixture
def teacher():
    at = session()
    at.button(key=K.START).click().run()
    assert not at.exception, at.exception
    return at


def join(code, name, page="pages/classroom.py"):
    at = session()
    at.text_input(key=K.CODE).input(code.lower()).run()
    at.text_input(key=K.NAME).input(name).run()
    at.button(key=K.JOIN).click().run()
    assert not at.exception, at.exception
    if page != "pages/classroom.py":
        at.switch_page(page).run()
    return at


def frame(at, column: str):
    """The dataframe on screen with this column (AppTest finds dataframes by position, not key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def texts(at) -> str:
    return " ".join(m.value for m in [*at.markdown, *at.caption, *at.info, *at.warning, *at.error])


def test_start_a_class_gives_a_code_and_a_private_teacher_link(teacher):
    s = seat(teacher)
    assert s.secret and room().is_teacher(s.code, s.secret)
    assert f"{s.code[:3]} {s.code[3:]}" in texts(teacher)
    link = teacher.get("code")[0].proto.code_text
    assert f"class={s.code}" in link and f"teacher={s.secret}" in link
    assert teacher.text_input[0].value.endswith(f"classroom?class={s.code}")  # the student link has no secret


def test_joining_needs_a_real_code_and_a_student_can_leave(teacher):
    code = seat(teacher).code
    stranger = join("ZZZZZZ" if code != "ZZZZZZ" else "YYYYYY", "Eve")
    assert seat(stranger) is None and "no class with that code" in texts(stranger)
    at = join(code, "Ann")
    assert seat(at).code == code and seat(at).secret is None and "Ann" in texts(at)
    assert "Ann" in room().students(code).values()
    at.button(key=K.LEAVE).click().run()
    assert seat(at) is None and "Ann" not in room().students(code).values()
    assert at.button(key=K.JOIN) is not None


def test_the_code_alone_does_not_make_a_student_the_teacher(teacher):
    s = seat(teacher)
    at = join(s.code, "Mallory")
    assert all(b.key != K.CLEAR for b in at.button)
    assert all(b.key != K.PUSH for b in at.sidebar.button)
    forged = AppTest.from_file(APP, default_timeout=90)
    forged.query_params["class"], forged.query_params["teacher"] = s.code, s.code
    forged.run()
    forged.switch_page("pages/classroom.py").run()
    assert seat(forged) is None  # a wrong secret in the link: just the join form, code filled in
    assert forged.text_input(key=K.CODE).value == s.code


def test_the_teacher_link_gives_the_rights_back_in_a_new_session(teacher):
    s = seat(teacher)
    again = AppTest.from_file(APP, default_timeout=90)
    again.query_params["class"], again.query_params["teacher"] = s.code, s.secret
    again.run()
    again.switch_page("pages/classroom.py").run()
    assert seat(again).secret == s.secret and any(b.key == K.PUSH for b in again.sidebar.button)


def train_small(at, n_head: int):
    at.switch_page("pages/train.py").run()
    at.select_slider(key="train_n_embd").set_value(32).run()
    at.slider(key="train_n_layer").set_value(1).run()
    at.select_slider(key="train_n_head").set_value(n_head).run()
    at.slider(key="train_max_iters").set_value(20).run()
    at.slider(key="train_eval_interval").set_value(20).run()
    at.button(key="train_start").click().run()
    runs = at.session_state[state.TAB].runs
    assert wait_until(lambda: all(r.trainer.done for r in runs.values()), 120, every=0.3, before=at.run)
    at.run()  # the sidebar posts the finished run
    return runs[max(runs)]


def test_finished_runs_go_to_the_board_grouped_and_the_teacher_can_hide_clear_and_download(teacher):
    code = seat(teacher).code
    ann, bob = join(code, "Ann"), join(code, "Bob")
    train_small(ann, 1)
    run = train_small(bob, 4)
    board = room().board(code)
    assert sorted((e.name, e.settings["n_head"]) for e in board) == [("Ann", 1), ("Bob", 4)]
    assert board[1].val_loss == pytest.approx(run.trainer.history["val_loss"][-1])
    teacher.run()
    chart = json.loads(teacher.get("plotly_chart")[0].proto.spec)
    means, points = chart["data"]
    assert points["x"] == ["1", "4"] and means["x"] == ["1", "4"]
    groups = frame(teacher, "mean val loss")
    assert list(groups["n_head"]) == ["1", "4"] and list(groups["runs"]) == [1, 1]
    assert any("n_head 1 → 4" in i.value and "one seed" in i.value for i in teacher.info)
    csv_text = teacher.get("download_button")[0].proto  # the data is served by URL; check the engine's CSV
    assert csv_text is not None and len(list(csv.DictReader(io.StringIO(cr.board_csv(room().board(code)))))) == 2
    teacher.selectbox(key=K.HIDE).set_value(board[0].id)
    teacher.button(key=K.HIDE_BUTTON).click().run()
    assert [e.name for e in room().board(code)] == ["Bob"]
    bob.switch_page("pages/classroom.py").run()
    assert list(frame(bob, "student")["student"]) == ["Bob"]  # students see the board without the hidden run
    assert all(b.key != K.CLEAR for b in bob.button)
    teacher.button(key=K.CLEAR).click().run()
    assert room().board(code, hidden=True) == []


def test_a_student_can_take_a_run_back(teacher):
    code = seat(teacher).code
    ann = join(code, "Ann")
    run = train_small(ann, 2)
    assert [e.name for e in room().board(code)] == ["Ann"]
    ann.switch_page("pages/classroom.py").run()
    assert ann.multiselect(key=K.MINE).value == [run.id]
    ann.multiselect(key=K.MINE).unselect(run.id).run()
    assert room().board(code) == [] and seat(ann).posted[run.id] is None


def test_follow_me_applies_the_teachers_page_prompt_and_head_without_touching_the_students_runs(teacher):
    code = seat(teacher).code
    student = join(code, "Ann")
    student.session_state[state.train_setting("n_head")] = 8  # a setting of the student's own
    teacher.switch_page("pages/attention.py").run()
    teacher.session_state[state.PROMPT] = "ROMEO:\nWhat say you"
    teacher.run()
    teacher.selectbox(key=state.Attention.LAYER).set_value(2).run()
    teacher.selectbox(key=state.Attention.HEAD).set_value(3).run()
    teacher.sidebar.button(key=K.PUSH).click().run()
    assert not teacher.exception, teacher.exception
    f = room().following(code)
    assert (f.page, f.layer, f.head, f.model) == ("attention", 2, 3, "ckpt:shakespeare-char")
    student.run()  # what the follower's 1-second fragment triggers
    assert not student.exception, student.exception
    assert [t.value for t in student.title] == ["Attention"]  # switched to the teacher's page
    assert student.selectbox(key=state.Attention.LAYER).value == 2
    assert student.selectbox(key=state.Attention.HEAD).value == 3
    assert student.session_state[state.PROMPT] == "ROMEO:\nWhat say you"
    assert student.session_state[state.train_setting("n_head")] == 8
    # switched off: a new push is not applied
    student.sidebar.toggle(key=K.FOLLOW).set_value(False).run()
    teacher.selectbox(key=state.Attention.HEAD).set_value(1).run()
    teacher.sidebar.button(key=K.PUSH).click().run()
    student.run()
    assert room().following(code).head == 1 and student.session_state[state.Attention.HEAD] == 3
    assert [t.value for t in student.title] == ["Class"]  # AppTest reruns its own page: no switch this time
    student.sidebar.toggle(key=K.FOLLOW).set_value(True).run()  # on again: back to the teacher's view
    assert student.session_state[state.Attention.HEAD] == 1 and [t.value for t in student.title] == ["Attention"]


def test_predict_then_reveal_a_token(teacher):
    code = seat(teacher).code
    teacher.switch_page("pages/next_token.py").run()
    ann, bob = join(code, "Ann", "pages/next_token.py"), join(code, "Bob", "pages/next_token.py")
    teacher.button(key=K.ASK).click().run()
    assert not teacher.exception, teacher.exception
    q = room().question(code)
    assert q.kind == cr.TOKEN and q.choices[0][1] >= q.choices[-1][1]
    picks = []
    for at, guess in ((ann, None), (bob, "e")):
        at.run()
        assert all(c.key != "next_token_bars" for c in at.get("plotly_chart"))  # no bars before the guess
        picks.append(at.selectbox(key=K.ANSWER).value)
        if guess:
            at.text_input(key=K.TYPED).input(guess)
        at.button(key=K.SUBMIT).click().run()
        assert not at.exception, at.exception
        assert any(c.key == "next_token_bars" for c in at.get("plotly_chart"))  # the bars once answered
    picked = picks[0]
    assert room().question(code).counts() == {picked: 1, "e": 1} if picked != "e" else {"e": 2}
    teacher.run()
    assert "2** of 2 answered" in texts(teacher)
    teacher.button(key=K.REVEAL).click().run()
    reveal = json.loads(teacher.get("plotly_chart")[0].proto.spec)
    guessed, said = reveal["data"]
    assert sum(round(x * 2) for x in guessed["x"]) == 2 and said["x"][0] == pytest.approx(q.choices[0][1])
    bob.run()
    mine = json.loads(next(c for c in bob.get("plotly_chart") if c.key == K.REVEAL_CHART).proto.spec)["data"][0]
    assert "#D55E00" in mine["marker"]["color"]  # Bob's own guess in vermilion
    assert mine["y"][mine["marker"]["color"].index("#D55E00")] == "e"


def test_predict_the_previous_token_head(teacher):
    code = seat(teacher).code
    teacher.switch_page("pages/attention.py").run()
    ann = join(code, "Ann", "pages/attention.py")
    teacher.button(key=K.ASK).click().run()
    q = room().question(code)
    assert q.kind == cr.HEAD and q.grid == (4, 4) and len(q.scores) == 4
    ann.run()
    ann.selectbox(key=K.LAYER).set_value(1)
    ann.selectbox(key=K.HEAD).set_value(2)
    ann.button(key=K.SUBMIT).click().run()
    assert room().question(code).answers == {seat(ann).student: "L1 H2"}
    teacher.button(key=K.REVEAL).click().run()
    ann.run()
    fig = json.loads(next(c for c in ann.get("plotly_chart") if c.key == K.REVEAL_CHART).proto.spec)
    assert fig["data"][0]["z"][1][2] == 1 and sum(fig["data"][1]["z"], []) == pytest.approx(sum(q.scores, []))


def test_a_click_on_the_head_grid_is_read_as_layer_and_head():
    from ui.classroom import head_of_click

    assert head_of_click({"selection": {"cell": [{"layer": 1, "head": 3}]}}) == (1, 3)
    assert head_of_click({"selection": {"cell": {"layer": "2", "head": "0"}}}) == (2, 0)
    assert head_of_click({"selection": {"cell": []}}) is None and head_of_click(None) is None
    assert head_of_click({"selection": {"cell": [{"layer": "x"}]}}) is None


def test_a_follower_on_the_train_page_gets_a_link_instead_of_being_moved(teacher):
    code = seat(teacher).code
    student = join(code, "Ann")
    student.query_params["train_n_head"] = "2"  # the Train page binds its sliders to its link
    student.switch_page("pages/train.py").run()
    teacher.switch_page("pages/attention.py").run()
    teacher.selectbox(key=state.Attention.HEAD).set_value(3).run()
    teacher.sidebar.button(key=K.PUSH).click().run()
    student.run()
    assert not student.exception, student.exception
    assert [t.value for t in student.title] == ["Train"] and seat(student).pending == ("attention", 1)
    assert any("Open the teacher" in str(link.proto) for link in student.sidebar.get("page_link"))
    student.switch_page("pages/attention.py").run()  # the student opens it
    assert student.selectbox(key=state.Attention.HEAD).value == 3 and seat(student).pending is None
