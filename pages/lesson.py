"""The page the app opens on: the lecture's path through the app, one button per step."""

import streamlit as st

from ui import lesson, state
from ui.common import intro
from ui.entry import require_app


def header():
    st.title("Let's build GPT: a lesson")
    intro("Nine steps from text to a GPT and its first circuit, in the order of Karpathy's lecture. Each button sets the step up — "
          "the right text, preset or model, the right page and settings — and says what to look for. Every page "
          "stays in the sidebar; a teacher can switch on *Larger text* there for a projector.")


def step_card(number: int, step: lesson.Step, current: bool):
    with st.container(border=True, key=state.Lesson.card(number)):
        st.markdown(f"### {'👉 ' if current else ''}{number}. {step.title}")
        st.markdown(step.text)
        st.markdown(f"**What to look for:** {step.look_for}")
        st.button(step.button, key=state.Lesson.button(number), on_click=lesson.set_up, args=(step,),
                  type="primary" if current else "secondary", icon="▶️")


def upcoming(steps: list[lesson.Step], done: str | None) -> int:
    """The step after the one set up last (the first when none was)."""
    titles = [s.title for s in steps]
    return titles.index(done) + 1 if done in titles else 0


def main():
    require_app()
    lesson.follow()
    header()
    current = upcoming(lesson.STEPS, state.get(state.Lesson.DONE))
    for n, step in enumerate(lesson.STEPS):
        step_card(n + 1, step, current=n == current)


main()
