"""Streamlit UI: score, simulate, history, analytics and models pages (``vigil ui``).

``app.py`` is the script Streamlit runs; ``views/`` holds one small module per page, and the
modules beside it do the work without Streamlit (options, API client, scoring, queries).
"""
