"""``python -m lstm_numba``: see ``lstm_numba.cli``."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
