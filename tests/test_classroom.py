"""The class engine (gptviz.classroom): codes, the teacher's rights, isolation between classes, the board's
groups and verdict, bounds, expiry, and the figures built from it."""

import csv
import io
import threading

import plotly.graph_objects as go
import pytest

from gptviz import classroom as cr
from gptviz.classroom import Classroom, ClassroomError
from gptviz.viz import board_chart, head_picker_spec, head_reveal_chart, token_reveal_chart

SETTINGS = {"corpus": "tinyshakespeare", "tokenizer": "char", "vocab": 65, "n_layer": 2, "n_head": 2, "n_embd": 32,
            "block_size": 32, "dropout": 0.0, "pos_embd": True, "mlp": True, "residual": True, "layernorm": True,
            "batch_size": 8, "learning_rate": 1e-3, "max_iters": 100, "eval_interval": 50, "seed": 1337}


def run(**kw):
    return {**SETTINGS, **kw}


@pytest.fixture
def room():
    c = Classroom()
    code, secret = c.open()
    for s in ("ann", "bob", "cy"):
        c.join(code, s, s.title())
    return c, code, secret


def test_codes_are_readable_aloud_and_typed_loosely():
    c = Classroom()
    codes = {c.open()[0] for _ in range(30)}
    assert len(codes) == 30
    assert all(len(code) == 6 and not set(code) & set("0O1I") for code in codes)
    code = next(iter(codes))
    assert c.find(f" {code[:3].lower()}-{code[3:]} ") is not None  # lower case, a space or a dash still finds it
    assert cr.normal_code("AB0DEF") is None and cr.normal_code("x" * 10_000) is None and cr.normal_code(5) is None


def test_the_code_alone_gives_no_teacher_rights(room):
    c, code, secret = room
    assert c.is_teacher(code, secret) and not c.is_teacher(code, code) and not c.is_teacher(code, "")
    assert not c.is_teacher(code, None) and not c.is_teacher(code, secret + "x")
    c.post(code, "ann", "Ann", run(), 2.1, 1000, 3.0)
    for wrong in (code, "", None, secret[:-1]):
        with pytest.raises(ClassroomError, match="teacher"):
            c.clear(code, wrong)
        with pytest.raises(ClassroomError, match="teacher"):
            c.push(code, wrong, page="attention", layer=1)
        with pytest.raises(ClassroomError, match="teacher"):
            c.hide(code, wrong, 1)
        with pytest.raises(ClassroomError, match="teacher"):
            c.ask(code, wrong, cr.TOKEN, "ROMEO")
    assert len(c.board(code)) == 1 and c.following(code).version == 0 and c.question(code) is None


def test_one_class_cannot_see_or_write_anothers_board():
    c = Classroom()
    a, secret_a = c.open()
    b, secret_b = c.open()
    c.join(a, "ann", "Ann")
    c.post(a, "ann", "Ann", run(), 2.0, 10, 1.0)
    assert [e.name for e in c.board(a)] == ["Ann"] and c.board(b) == []
    with pytest.raises(ClassroomError, match="Join"):  # a member of class a posting to class b
        c.post(b, "ann", "Ann", run(), 2.0, 10, 1.0)
    with pytest.raises(ClassroomError, match="teacher"):  # a's teacher has no rights in b
        c.clear(b, secret_a)
    c.push(b, secret_b, page="attention", head=3)
    assert c.following(a).version == 0 and c.following(b).head == 3


def test_board_entries_carry_no_uploaded_text_and_bounded_names(room):
    c, code, _ = room
    c.post(code, "ann", "A" * 500 + "\n\x00", run(corpus="my secret diary.txt", tokenizer="x" * 5000, notes="hi"),
           2.0, 10, 1.0)
    (e,) = c.board(code)
    assert e.settings["corpus"] == cr.OWN_TEXT and "tokenizer" not in e.settings and "notes" not in e.settings
    assert e.name == "A" * cr.MAX_NAME
    assert cr.clean_name("  ") == "anonymous" and cr.clean_name(None) == "anonymous"
    for bad in (float("nan"), float("inf"), -1, "2.0x", None):
        with pytest.raises(ClassroomError):
            c.post(code, "ann", "Ann", run(), bad, 10, 1.0)


def test_group_by_a_setting_gives_mean_range_count_and_the_train_pages_verdict(room):
    c, code, secret = room
    for student, heads, loss in [("ann", 1, 2.50), ("bob", 1, 2.46), ("cy", 4, 2.20), ("ann", 4, 2.24), ("bob", 2, 2.3)]:
        c.post(code, student, student, run(n_head=heads), loss, 1000 + heads, 5.0)
    entries = c.board(code)
    groups = cr.group_by(entries, "n_head")
    assert [g.value for g in groups] == [1, 2, 4] and [len(g.entries) for g in groups] == [2, 1, 2]
    assert groups[0].mean == pytest.approx(2.48) and groups[0].spread == pytest.approx(0.02)
    assert cr.differing(entries) == ["n_head"]
    rows = cr.group_rows(groups, "n_head")
    assert rows[2] == {"n_head": "4", "runs": 2, "mean val loss": 2.22, "± (half the range)": 0.02, "lowest": 2.2,
                       "highest": 2.24}
    line = cr.board_verdict(groups, "n_head")
    assert line.startswith("n_head 1 → 4: parameters 1,001 → 1,004, val loss 2.480 ± 0.020 → 2.220 ± 0.020 (−0.260)")
    assert line.endswith("— beyond seed noise: every seed of one beats every seed of the other.")
    c.post(code, "cy", "cy", run(n_head=1), 2.21, 1001, 5.0)  # the ranges now overlap
    assert "within seed noise" in cr.board_verdict(cr.group_by(c.board(code), "n_head"), "n_head")
    assert cr.board_verdict(cr.group_by(entries[:1], "n_head"), "n_head") is None


def test_hide_and_clear(room):
    c, code, secret = room
    first = c.post(code, "ann", "Ann", run(), 2.0, 10, 1.0)
    c.post(code, "bob", "Bob", run(n_head=4), 2.1, 10, 1.0)
    c.hide(code, secret, first)
    assert [e.name for e in c.board(code)] == ["Bob"]
    assert [(e.name, e.hidden) for e in c.board(code, hidden=True)] == [("Ann", True), ("Bob", False)]
    assert cr.board_rows(c.board(code, hidden=True))[0]["hidden"] is True
    c.hide(code, secret, first, hidden=False)
    assert len(c.board(code)) == 2
    c.clear(code, secret)
    assert c.board(code, hidden=True) == []


def test_csv_has_every_setting_and_no_formulas(room):
    c, code, _ = room
    c.post(code, "ann", "=cmd()", run(n_head=4), 2.123456, 1234, 7.25)
    rows = list(csv.DictReader(io.StringIO(cr.board_csv(c.board(code)))))
    assert rows[0]["student"] == "'=cmd()" and rows[0]["n_head"] == "4" and rows[0]["val loss"] == "2.1235"
    assert rows[0]["parameters"] == "1234" and rows[0]["seconds"] == "7.2" and rows[0]["text"] == "tinyshakespeare"


def test_push_is_versioned_and_bounded(room):
    c, code, secret = room
    v1 = c.push(code, secret, page="attention", model="ckpt:shakespeare-char", prompt="x" * 10_000, layer=1, head=2,
                query=5)
    f = c.following(code)
    assert (f.version, f.page, f.model, f.layer, f.head, f.query) == (v1, "attention", "ckpt:shakespeare-char", 1, 2, 5)
    assert len(f.prompt) == cr.MAX_TEXT
    v2 = c.push(code, secret, page="../../etc/passwd", layer=-1, head=True, query="3")
    f = c.following(code)
    assert v2 == v1 + 1 and f.page is None and f.layer is None and f.head is None and f.query is None


def test_questions_collect_one_answer_per_student_until_revealed(room):
    c, code, secret = room
    q = c.ask(code, secret, cr.TOKEN, "ROMEO:", model="ckpt:m", choices=[("e", 0.5), (" ", 0.3)] + [("z", 0)] * 500)
    assert len(c.question(code).choices) == cr.MAX_CHOICES
    assert c.answer(code, "ann", q, "e") and c.answer(code, "bob", q, " ") and c.answer(code, "ann", q, " ")
    assert c.question(code).counts() == {" ": 2}
    with pytest.raises(ClassroomError, match="Join"):
        c.answer(code, "stranger", q, "e")
    with pytest.raises(ClassroomError, match="teacher"):
        c.reveal(code, "nope", q)
    c.reveal(code, secret, q)
    assert not c.answer(code, "cy", q, "e")  # too late
    assert c.question(code).revealed and len(c.question(code).answers) == 2
    c.answer(code, "cy", 999, "e")  # an unknown question changes nothing
    h = c.ask(code, secret, cr.HEAD, "ROMEO:", grid=(2, 4), scores=[[0.1] * 4, [0.9, 0, 0, 0]])
    assert c.answer(code, "cy", h, "L1 H0") and c.question(code).kind == cr.HEAD
    assert cr.parse_head("L1 H0") == (1, 0) and cr.parse_head("nonsense") is None and cr.parse_head(None) is None


def test_caps_are_enforced_before_storing(monkeypatch):
    c = Classroom(max_classes=2)
    c.open(), c.open()
    with pytest.raises(ClassroomError, match="classes open"):
        c.open()
    assert len(c) == 2
    monkeypatch.setattr(cr, "MAX_ENTRIES", 3)
    monkeypatch.setattr(cr, "MAX_STUDENTS", 2)
    c2 = Classroom()
    code, secret = c2.open()
    c2.join(code, "a", "A"), c2.join(code, "b", "B")
    with pytest.raises(ClassroomError, match="full"):
        c2.join(code, "c", "C")
    c2.join(code, "a", "A again")  # a member may rename
    for _ in range(3):
        c2.post(code, "a", "A", run(), 2.0, 1, 1)
    with pytest.raises(ClassroomError, match="board is full"):
        c2.post(code, "a", "A", run(), 2.0, 1, 1)
    for i in range(cr.MAX_QUESTIONS + 5):
        c2.ask(code, secret, cr.TOKEN, f"q{i}")
    assert len(c2._get(code).questions) == cr.MAX_QUESTIONS


def test_a_class_ends_when_its_teacher_is_gone_long_and_survives_while_present():
    now = [0.0]
    c = Classroom(clock=lambda: now[0], gone_s=100)
    code, secret = c.open()
    now[0] = 90
    assert c.is_teacher(code, secret)  # the teacher's page checks in
    now[0] = 180
    assert c.find(code) is not None
    now[0] = 300
    assert c.find(code) is None and len(c) == 0


def test_many_threads_post_at_once():
    c = Classroom()
    code, _ = c.open()
    for i in range(8):
        c.join(code, f"s{i}", f"S{i}")
    threads = [threading.Thread(target=lambda i=i: [c.post(code, f"s{i}", "x", run(), 2.0, 1, 1) for _ in range(20)])
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [e.id for e in c.board(code)]
    assert len(ids) == 160 == len(set(ids))


def valid(fig):
    """Plotly's own validation (the builders skip it): raises on an unknown property or a bad value."""
    go.Figure(fig.to_dict())
    return fig


def test_figures(room):
    c, code, _ = room
    for student, heads, loss in [("ann", 1, 2.5), ("bob", 1, 2.4), ("cy", 4, 2.2)]:
        c.post(code, student, student.title(), run(n_head=heads), loss, 10, 1)
    fig = valid(board_chart(cr.group_by(c.board(code), "n_head"), "n_head"))
    means, points = fig.data
    assert list(points.x) == ["1", "1", "4"] and list(points.y) == [2.5, 2.4, 2.2]
    assert list(means.x) == ["1", "4"] and list(means.y) == pytest.approx([2.45, 2.2])
    assert list(means.error_y.array) == pytest.approx([0.05, 0.0])
    fig = valid(token_reveal_chart([("e", 0.6), (" ", 0.3)], {"e": 1, "q": 3}, mine="q"))
    guessed, said = fig.data
    assert list(guessed.y) == list(said.y) == ["e", "␣", "q"]  # whitespace made visible
    assert list(guessed.x) == [0.25, 0.0, 0.75] and list(said.x) == [0.6, 0.3, 0.0]
    assert list(guessed.marker.color)[2] != list(guessed.marker.color)[0]  # the student's own guess stands out
    fig = valid(head_reveal_chart([[0, 2], [1, 0]], [[0.1, 0.9], [0.2, 0.0]], mine=(0, 1)))
    assert [list(r) for r in fig.data[0].z] == [[0, 2], [1, 0]] and len(fig.layout.shapes) == 2
    spec = head_picker_spec(2, 3, picked=(1, 2))
    assert len(spec["data"]["values"]) == 6 and [v["name"] for v in spec["data"]["values"] if v["picked"]] == ["L1 H2"]
