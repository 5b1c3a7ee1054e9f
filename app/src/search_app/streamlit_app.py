"""DY Images search UI: ``streamlit run app/src/search_app/streamlit_app.py``.

A thin script: the pages live in ``search_page.py`` and ``status_page.py``, the logic in plain modules.
"""

import streamlit as st

st.set_page_config(page_title="DY Images", page_icon=":material/image_search:", layout="wide")
page = st.navigation(
    [
        st.Page("search_page.py", title="Search", icon=":material/image_search:", default=True),
        st.Page("status_page.py", title="Status", icon=":material/monitor_heart:"),
    ]
)
page.run()
