import streamlit as st

from ui.entry import require_app

require_app()
st.title('train')
