"""``python -m arag``: the command line."""

import sys

from arag.cli import run

if __name__ == "__main__":
    sys.exit(run())
