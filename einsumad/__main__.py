"""``python -m einsumad``: the command line (see :mod:`einsumad.tools.cli`)."""

from .tools.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
