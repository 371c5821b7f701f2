"""`python -m infbench` is the same as the `infbench` command."""

from infbench.cli import main

main()
