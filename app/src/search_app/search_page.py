"""Page script: search (see ui_search)."""

from search_app import ui_search

ui_search.render()
