"""`python -m sandbay` is the CLI."""

from sandbay.cli.main import main

main()
