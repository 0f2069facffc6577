"""Layer 4, the tools: what explains, replays and checks a program.

* :mod:`.derive`: ``ea.derive``, a program's derivation in index, matrix and LaTeX notation;
* :mod:`.program`: staged programs and the one code emitter; :mod:`.compile`:
  ``ea.compile`` and ``ea.codegen`` on top of it;
* :mod:`.testing`: ``ea.check_grads`` and ``ea.check_gradient``;
* :mod:`.optim`: optimisers and a training loop; :mod:`.cli`: ``python -m einsumad``.

Tools may import every lower layer; nothing imports a tool.
"""
