import sys

from arag.cli import main

sys.exit(main())
