"""Layer 1, the core: the mechanism of differentiation, and nothing of the op library.

* :mod:`.tape`: traced values (:class:`~.tape.Tensor`), trace levels (per
  thread) and :func:`~.tape.bind`, which records every primitive call.
* :mod:`.primitive`: :class:`~.primitive.Primitive` and the declaration kinds;
  :mod:`.einsum`, :mod:`.elementwise`, :mod:`.linear` and :mod:`.general`
  derive each kind's rules; :mod:`.structural` holds the linear ops the
  machinery itself needs (reshape, index, stack, ...).
* :mod:`.accumulate` sums cotangents; :mod:`.backward` is the one backward pass.
* :mod:`.backend` is the one place that calls opt_einsum and writes NumPy
  source for a contraction; :mod:`.delta` is the symbolic Kronecker delta.
* :mod:`.pytree` is the one pytree walker; :mod:`.names` reads parameter names.

The core imports only :mod:`einsumad.algebra`.
"""
