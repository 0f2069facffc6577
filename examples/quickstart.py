"""Backprop through one layer in index notation: where the transpose comes from.

For ``z_i = W_ij a_j + b_i`` and ``a'_i = tanh(z_i)``, the gradient of a loss with
respect to ``a`` is ``(W^T delta) * tanh'(z)``. Nobody transposes W by hand here:
the VJP of ``ij,j->i`` with respect to ``a`` is the swapped einsum ``i,ij->j``.

Run: python examples/quickstart.py
"""

import numpy as np

import einsumad as ea


def main() -> None:
    rng = np.random.default_rng(0)
    W, a, b = rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=3)
    target = rng.normal(size=3)

    def loss(W, a, b):
        z = ea.einsum("ij,j->i", W, a) + b
        return 0.5 * ea.sum((ea.tanh(z) - target) ** 2)

    grad_a = ea.grad(loss, argnums=1)(W, a, b)

    # The same gradient by the textbook formula: delta = dL/dz, then W^T delta.
    z = W @ a + b
    delta = (np.tanh(z) - target) * (1 - np.tanh(z) ** 2)
    print("einsumad     dL/da =", grad_a)
    print("W^T delta    dL/da =", W.T @ delta)
    print("the transpose comes from the swap: ij,j->i  =>", ea.vjp_subscripts("ij,j->i", 1))
    assert np.allclose(grad_a, W.T @ delta)


if __name__ == "__main__":
    main()
