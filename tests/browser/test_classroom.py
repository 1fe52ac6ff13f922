"""A class in three real browser contexts: a teacher and two students, each their own Streamlit session."""

import re

from tools.class_shots import answer_token, ask, goto, join, pick, push, reveal, start_class, train
from tools.chromium import wait_idle

from .conftest import screenshot


def head_picked(page) -> str:
    box = page.locator("[data-testid=stMain] [data-testid=stSelectbox]").filter(
        has=page.get_by_text("Head", exact=True)).first
    return box.locator("input").input_value()  # a searchable selectbox shows its value in its input


def test_a_lesson_with_a_board_follow_me_and_a_question(browser, server):
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1600}) for _ in range(3)]
    try:
        teacher, ann, bob = (c.new_page() for c in contexts)
        code = start_class(teacher, server.url)
        assert re.fullmatch(r"[A-Z2-9]{6}", code) and not set(code) & set("0O1I")
        join(ann, server.url, code, "Ann")
        join(bob, server.url, code, "Bob")
        assert bob.get_by_role("button", name="Clear the board").count() == 0  # students get no teacher tools

        train(ann, server.url, n_head=1)
        train(bob, server.url, n_head=4)
        # the teacher's board fills by itself (no reload): two runs, grouped by n_head
        teacher.get_by_text("The class board · 2 runs").wait_for(timeout=30_000)
        wait_idle(teacher)
        groups = teacher.locator("[data-testid=stDataFrame]").first
        assert groups.get_by_text("mean val loss").count() == 1
        board = teacher.locator("[data-testid=stPlotlyChart] .js-plotly-plot").first
        xs = board.evaluate("el => el.data.map(t => t.x)")
        assert xs[0] == ["1", "4"] and xs[1] == ["1", "4"]  # the group means joined, a point per run
        assert teacher.get_by_text(re.compile("n_head 1 → 4")).count() == 1  # the verdict for the setting
        screenshot(teacher, "class-board")

        # follow me: the teacher opens Attention, picks head 2 and pushes. Ann (on the Class page) is taken
        # there; Bob stays on Train, whose sliders live in its link, and gets a link to the teacher's page
        ann.goto(f"{server.url}/classroom")
        wait_idle(ann)
        goto(teacher, "Attention", "Attention")
        pick(teacher, "Head", "head 2")
        assert head_picked(teacher) == "head 2"
        push(teacher)
        bob.get_by_role("link", name="Open the teacher's page").click(timeout=15_000)
        for name, student in (("Ann", ann), ("Bob", bob)):
            student.locator("h1").filter(has_text="Attention").first.wait_for(timeout=90_000)  # a busy host, cold server
            wait_idle(student)
            screenshot(student, f"class-followed-{name}")
            assert head_picked(student) == "head 2", name

        # predict, then reveal: the question reaches both students, who answer before the bars show
        goto(teacher, "Next token", "Next token")
        ask(teacher, "which token comes next?")
        for student, typed in ((ann, "e"), (bob, None)):
            student.locator("h1").filter(has_text="Next token").first.wait_for(timeout=15_000)
            answer_token(student, typed)
        reveal(teacher, 2)
        chart = teacher.locator("[data-testid=stPlotlyChart] .js-plotly-plot").first
        answers = chart.evaluate("el => el.data[0].text.map(Number).reduce((a, b) => a + b, 0)")
        assert answers == 2
        ann.get_by_text("The class guessed").wait_for(timeout=15_000)  # the reveal reaches the students too
        screenshot(teacher, "class-reveal")
    finally:
        for c in contexts:
            c.close()
