"""einsumad's benchmark suite: ``python -m benchmarks --help``.

Every problem's derivative is checked against a hand-derived NumPy one before
it is timed; timings are interleaved and reported as ratios to that baseline.
See ``benchmarks/README.md``. Not part of the installed package.
"""
