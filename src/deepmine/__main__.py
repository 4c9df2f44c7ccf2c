"""`python -m deepmine` runs the CLI (also used by torchrun)."""

from deepmine.cli import main

main()
