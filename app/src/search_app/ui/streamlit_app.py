"""DY Images search UI: ``streamlit run app/src/search_app/ui/streamlit_app.py``.

A thin script: the search page is :func:`search_app.ui.search.render`, the status page the script
``status_page.py`` beside this one; the logic lives in plain modules.
"""

import streamlit as st

from search_app.ui import search

st.set_page_config(page_title="DY Images", page_icon=":material/image_search:", layout="wide")
page = st.navigation(
    [
        st.Page(search.render, title="Search", icon=":material/image_search:", url_path="search", default=True),
        st.Page("status_page.py", title="Status", icon=":material/monitor_heart:"),
    ]
)
page.run()
