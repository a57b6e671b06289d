"""``python -m embodireward <command>``: the same as the ``embodireward`` console script."""
from embodireward.commands import cli

cli()
