"""Streamlit glue shared by app.py and the pages: session state, the model registry, common widgets."""
