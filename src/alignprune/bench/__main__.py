"""``python -m alignprune.bench``: every comparison, or those named with ``--only``."""

from .cli import main

if __name__ == "__main__":
    main()
