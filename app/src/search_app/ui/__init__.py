"""The Streamlit UI: the entry script, its pages, their controls and results, and the per-process resources."""
