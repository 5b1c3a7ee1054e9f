"""The ``dyimages`` command line: the typer app (main) and one module per command group."""
