"""Page script: status (see ui_status)."""

from search_app import ui_status

ui_status.render()
