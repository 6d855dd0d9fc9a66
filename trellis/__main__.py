"""``python -m trellis``: the command line, where the ``trellis`` script is not on the PATH."""

from trellis.cli import cli

cli(prog_name="trellis")
