"""Class: a teacher opens a class, students join with its code, and everyone's finished runs meet on one board."""

import streamlit as st

from gptviz import classroom as cr
from gptviz import viz
from gptviz.runs import LABELS, fmt
from ui import classroom, state
from ui.classroom import room, seat, spaced, teacher
from ui.common import intro
from ui.entry import require_app
from ui.state import Classroom as K


def header():
    st.title("Class")
    intro("The teacher starts a class and reads its code aloud; students join with it. Every finished run of a "
          "student in the class goes to the class board (each one can be taken back), so the class sees its "
          "results side by side: try a different n_head each, train, and look at the board together.")


def start_or_join():
    left, right = st.columns(2, border=True)
    with left:
        st.subheader("Teach")
        st.caption("Start a class: you get a short code for the projector and a teacher link to keep private.")
        st.button("Start a class", key=K.START, on_click=classroom.start, type="primary", icon="🏫")
    with right:
        st.subheader("Join")
        st.text_input("Class code", key=K.CODE, max_chars=3 * cr.CODE_LENGTH, placeholder="e.g. K7Q 3MX")
        st.text_input("Your name on the board", key=K.NAME, max_chars=cr.MAX_NAME,
                      help="Shown next to your runs. No account: any name will do.")
        st.button("Join the class", key=K.JOIN, on_click=classroom.join, icon="🙋")


def teacher_panel(s):
    st.markdown(f"## Class code: `{spaced(s.code)}`")
    st.caption(f"{len(room().students(s.code))} students joined. Students open the Class page and type the code, "
               "or open the student link.")
    st.text_input("Student link", classroom.student_link(s), disabled=True)
    with st.expander("Your teacher link (keep it private: it gives the teacher's rights in any browser)"):
        st.code(classroom.teacher_link(s), language=None)
    st.button("End the class", key=K.END, on_click=classroom.end, icon="🛑",
              help="Removes the board and the questions for everyone.")


def student_panel(s):
    st.markdown(f"## Class `{spaced(s.code)}` · you are **{s.name}**")
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    st.session_state.setdefault(K.POST, True)
    c1.toggle("Put my finished runs on the class board", key=K.POST,
              help="Only the settings, val loss, size and time go to the board: never your text.")
    c2.button("Leave the class", key=K.LEAVE, on_click=classroom.leave)
    finished = {rid: state.runs()[rid].name for rid in s.posted if rid in state.runs()
                and classroom.val_loss(state.runs()[rid]) is not None}
    if finished:
        st.session_state[K.MINE] = [rid for rid in finished if s.posted[rid] is not None]
        st.multiselect("My runs on the board", list(finished), format_func=finished.get, key=K.MINE,
                       on_change=classroom.my_runs_changed, help="Untick a run to take it off the board.")


@st.fragment(run_every=classroom.REFRESH_S)
def board():
    """Redrawn every second: runs appear as they finish, without a reload."""
    s = seat()
    if s is None:
        st.rerun(scope="app")
    is_teacher = teacher(s)
    entries = room().board(s.code, hidden=is_teacher)
    st.subheader(f"The class board · {sum(not e.hidden for e in entries)} runs")
    if not entries:
        st.info("No runs yet: train a model on the **Train** page; it appears here when it finishes.", icon="📋")
        return
    shown = [e for e in entries if not e.hidden]
    key = group_picker(s, entries, is_teacher)
    groups = cr.group_by(shown, key)
    if groups:
        left, right = st.columns([3, 2])
        left.plotly_chart(viz.board_chart(groups, LABELS[key], lambda v: fmt(key, v)), theme=None, width="stretch",
                          key=K.CHART)
        right.dataframe(cr.group_rows(groups, key), hide_index=True, key=K.GROUPS)
        line = cr.board_verdict(groups, key)
        if line:
            right.info(line, icon="⚖️")
    st.dataframe(cr.board_rows(entries), hide_index=True, key=K.TABLE)
    if is_teacher:
        teacher_tools(s, entries)


def group_picker(s, entries, is_teacher: bool) -> str:
    current = room().grouped_by(s.code)
    if not is_teacher:
        st.caption(f"Grouped by **{LABELS[current]}** (the teacher chooses).")
        return current
    options = list(dict.fromkeys([*cr.differing(entries), current]))
    st.session_state[K.GROUP_BY] = current
    st.selectbox("Group the runs by", options, format_func=LABELS.get, key=K.GROUP_BY,
                 on_change=classroom.group_changed)
    return current


def teacher_tools(s, entries):
    c1, c2, c3, c4 = st.columns([3, 1, 1, 2], vertical_alignment="bottom")
    names = {e.id: f"{e.name} · val {e.val_loss:.3f}" + (" (hidden)" if e.hidden else "") for e in entries}
    if st.session_state.get(K.HIDE) not in names:
        st.session_state[K.HIDE] = next(iter(names))
    c1.selectbox("A run", list(names), format_func=names.get, key=K.HIDE)
    c2.button("Hide", key=K.HIDE_BUTTON, on_click=classroom.hide, args=(False,), width="stretch")
    c3.button("Show", key=K.SHOW_BUTTON, on_click=classroom.hide, args=(True,), width="stretch")
    c4.download_button("Download the board (CSV)", data=cr.board_csv(entries), file_name=f"class-{s.code}.csv",
                       mime="text/csv", key=K.CSV, on_click="ignore", icon="⬇️")
    st.button("Clear the board", key=K.CLEAR, on_click=classroom.clear, icon="🧹")


def main():
    require_app()
    header()
    classroom.error()
    s = seat()
    if s is None:
        start_or_join()
        return
    if teacher(s):
        teacher_panel(s)
    else:
        student_panel(s)
    board()
    st.caption("A class lives in this server's memory while its teacher keeps it open (it ends after "
               f"{cr.TEACHER_GONE_S / 3600:.0f} hours without the teacher); a server restart ends every class.")


main()
