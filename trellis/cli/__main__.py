"""``python -m trellis.cli``: the same as the ``trellis`` command."""

from trellis.cli import main

main()
