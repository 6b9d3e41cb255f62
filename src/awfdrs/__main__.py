"""``python -m awfdrs`` is the ``awfdrs`` command."""

from awfdrs.cli import main

main()
