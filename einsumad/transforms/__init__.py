"""Layer 3, the transformations and the extension API.

* :mod:`.autodiff`: ``grad``, ``value_and_grad``, ``vjp``, ``jvp``,
  ``jacobian``, ``jacfwd``, ``jacrev``, ``hessian``;
* :mod:`.extend`: ``primitive``, ``defvjp``, ``defvjp_all``, ``defjvp``.

They import the ops, the core and the algebra, never the tools.
"""
