"""A two-hidden-layer MLP, written with einsum, trained with Adam on scikit-learn's digits.

The 1797 8x8 images of handwritten digits ship with scikit-learn (no download).
Every layer is a named-index einsum::

    hidden[batch, hidden] = tanh( x[batch, in] W1[in, hidden] + b1[hidden] )

and the loss is the cross-entropy ``-mean_batch sum_class onehot * log_softmax``.
The gradient of every weight comes from the swap rule: for the first layer,
``"batch in, in hidden -> batch hidden"`` gives ``"batch hidden, batch in -> in hidden"``
(that is, ``X^T delta``). Training uses ``ea.optim.Adam`` and ``ea.optim.fit``.

Needs the ``examples`` extra (scikit-learn, matplotlib).
Run: ``python examples/mlp_digits.py [--png PATH] [--quick]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import einsumad as ea

LAYERS = (64, 128, 64, 10)


def init_params(rng: np.random.Generator, dtype=np.float32) -> dict:
    params = {}
    for k, (fan_in, fan_out) in enumerate(zip(LAYERS[:-1], LAYERS[1:]), start=1):
        params[f"W{k}"] = (rng.normal(size=(fan_in, fan_out)) / np.sqrt(fan_in)).astype(dtype)
        params[f"b{k}"] = np.zeros(fan_out, dtype=dtype)
    return params


def logits(params: dict, x):
    h = ea.tanh(ea.einsum("batch in, in hidden -> batch hidden", x, params["W1"]) + params["b1"])
    h = ea.tanh(ea.einsum("batch in, in hidden -> batch hidden", h, params["W2"]) + params["b2"])
    return ea.einsum("batch hidden, hidden class -> batch class", h, params["W3"]) + params["b3"]


def cross_entropy(params: dict, x, onehot):
    log_p = ea.log_softmax(logits(params, x), axis=-1)
    return -ea.einsum("batch class, batch class ->", onehot, log_p) / x.shape[0]


def accuracy(params: dict, x, labels) -> float:
    return float(np.mean(np.argmax(logits(params, x), axis=1) == labels))


def load_data(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=seed, stratify=digits.target
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1.0   # +1: some pixels are always 0
    x_train = ((x_train - mean) / std).astype(np.float32)
    x_test = ((x_test - mean) / std).astype(np.float32)
    return x_train, x_test, y_train, y_test


def save_loss_curve(history: list[float], test_accuracy: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, len(history) + 1)
    ax.plot(epochs, history, marker="o", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.set_yscale("log")
    right = ax.twinx()
    right.plot(epochs, test_accuracy, color="tab:green", marker="s", label="test accuracy")
    right.set_ylabel("test accuracy")
    right.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title("MLP on scikit-learn digits (einsumad + Adam)")
    fig.legend(loc="lower center", ncol=2)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(quick: bool = False, png: str | Path = "mlp_digits_loss.png") -> dict:
    start = time.perf_counter()
    x_train, x_test, y_train, y_test = load_data()
    onehot = ea.one_hot(y_train, 10, dtype=np.float32)
    params = init_params(np.random.default_rng(0))
    epochs = 2 if quick else 20
    test_accuracy: list[float] = []

    def report(epoch, params, loss):
        test_accuracy.append(accuracy(params, x_test, y_test))
        return f"test accuracy {test_accuracy[-1]:.4f}"

    params, history = ea.optim.fit(
        cross_entropy,
        params,
        ea.optim.minibatches(x_train, onehot, batch_size=32, seed=0),
        ea.optim.Adam(learning_rate=3e-3),
        epochs=epochs,
        callback=report,
    )
    seconds = time.perf_counter() - start
    final = accuracy(params, x_test, y_test)
    assert all(p.dtype == np.float32 for p in params.values())
    save_loss_curve(history, test_accuracy, Path(png))
    print(f"test accuracy {final:.4f} on {len(y_test)} held-out digits after {epochs} epochs; "
          f"{seconds:.1f} s; loss curve saved to {png}")
    assert history[-1] < history[0]
    assert final >= (0.80 if quick else 0.95), final
    return {"test_accuracy": final, "seconds": seconds, "history": history}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (for the tests)")
    parser.add_argument("--png", default="mlp_digits_loss.png", help="where to save the loss curve")
    args = parser.parse_args()
    main(quick=args.quick, png=args.png)
