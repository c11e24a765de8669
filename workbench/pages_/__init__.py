"""Page scripts: Streamlit runs each file (st.Page); each also exposes its render function."""
