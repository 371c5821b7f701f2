"""`python -m infbench` is the same as the `infbench` command."""

from .cli import main

main()
