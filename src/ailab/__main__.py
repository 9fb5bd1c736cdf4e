"""`python -m ailab` runs the CLI."""

from ailab.cli import main

main()
