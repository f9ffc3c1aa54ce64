"""``python -m daemon``: the same as the ``clientlove`` command."""

from daemon.cli import main

main()
