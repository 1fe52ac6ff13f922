"""gptviz: train a small GPT in your browser session, then look inside it.

    streamlit run app.py
"""

import streamlit as st

from ui import classroom, lesson, models, state, store, training
from ui.entry import running_app

st.set_page_config(page_title="gptviz", page_icon="🔎", layout="wide")
training.configure_torch()
state.init()

pages = st.navigation({
    "Learn": [
        st.Page("pages/lesson.py", title="Lesson", icon="🎓", default=True),
        st.Page("pages/averaging.py", title="The averaging trick", icon="➗"),
        st.Page("pages/classroom.py", title="Class", icon="🏫"),
    ],
    "Build": [
        st.Page("pages/data.py", title="Data & tokens", icon="🔤"),
        st.Page("pages/train.py", title="Train", icon="🏋️"),
    ],
    "Look inside": [
        st.Page("pages/attention.py", title="Attention", icon="👀"),
        st.Page("pages/head_steps.py", title="One head, step by step", icon="🔬"),
        st.Page("pages/embeddings.py", title="Embeddings", icon="🗺️"),
        st.Page("pages/next_token.py", title="Next token", icon="🎲"),
        st.Page("pages/layers.py", title="Inside the layers", icon="🧅"),
        st.Page("pages/neurons.py", title="MLP neurons", icon="💡"),
        st.Page("pages/compare.py", title="Compare", icon="⚖️"),
    ],
})

# Shared widgets come after st.navigation: created before it, their first change is lost.
classroom.follow_teacher(classroom.page_name(pages))  # before the picker: a push may set the model
models.picker()
classroom.sidebar(classroom.page_name(pages))
training.sidebar_status()
lesson.projector_switch()
store.remember_tab()  # last in the sidebar: its empty element leaves no gap between the widgets
with running_app():
    pages.run()
