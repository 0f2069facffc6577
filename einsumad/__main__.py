"""``python -m einsumad``: the command line (see :mod:`einsumad._cli`)."""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
