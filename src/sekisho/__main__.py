"""`python -m sekisho`: the same command line as `sekisho`."""

from sekisho.cli import app

app(prog_name="sekisho")
