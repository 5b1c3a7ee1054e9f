"""DY Images search: the Streamlit UI and the `dyimages` operator CLI, over plain search functions."""
