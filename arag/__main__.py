"""``python -m arag``: the command line."""

import sys

from arag.cli import main

if __name__ == "__main__":
    sys.exit(main())
