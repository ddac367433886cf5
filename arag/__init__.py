"""The ``arag`` command line (``python -m arag``)."""
