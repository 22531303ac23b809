"""``python -m sustainml.cli``: the same command as the ``sustainml`` console script (the
supervisor of ``sustainml up`` starts its children this way)."""

from sustainml.cli.main import main

main()
