"""Layer 0, the index algebra: pure functions on strings, no arrays.

* :mod:`.subscripts` parses user subscripts and resolves them against shapes
  into a :class:`~.subscripts.Spec` (one symbol per axis); every subscript error
  is raised there.
* :mod:`.swap` is the swap rule and what follows from it: VJP and JVP
  subscripts, broadcasting as an index assignment, pairwise steps of a path,
  contracting a Kronecker delta, fusing two einsums.
* :mod:`.letters` is the one relabeller from internal symbols to readable letters.
* :mod:`.matrix` writes subscripts in matrix notation.
* :mod:`.rearrange` parses einops-style rearrange patterns.
* :mod:`.errors` holds the library's exception types.

Nothing in this package imports from the rest of einsumad.
"""
