"""The command line: ``python -m einsumad vjp ...`` and ``python -m einsumad check ...``.

``vjp`` shows the swap rule at work: for every operand of an einsum, the
subscripts of its vector-Jacobian product and, where one exists, the matrix
form a matrix-calculus text would write. ``check`` runs
:func:`einsumad.check_grads` on random data of the given shapes.

Exit status: 0 on success, 1 when a gradient check fails, 2 on bad input
(malformed subscripts, shapes that do not parse or do not fit), reported in one
line ``einsumad: error: ...`` on stderr.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from typing import Any, Callable, NoReturn, Sequence

import numpy as np

from .. import version
from ..algebra.errors import EinsumError
from ..algebra.matrix import default_names, matrix_form_details
from ..algebra.subscripts import parse, resolve
from ..algebra.swap import vjp_subscripts
from ..ops.einsum import einsum
from ..ops.einsum_path import einsum_path
from ..transforms.autodiff import jvp, vjp
from ..transforms.extend import defjvp, defvjp, primitive
from .testing import _check_grads

__all__ = ["main"]

PROG = "python -m einsumad"

#: ``check`` refuses operands and output larger than this many elements in all...
MAX_ELEMENTS = 10**7
#: ... or an einsum whose one evaluation costs more flops than this: the check
#: evaluates it once per element of small operands and per random direction.
MAX_FLOPS = 10**9

_DESCRIPTION = """\
einsumad: automatic differentiation in tensor index notation.

Every VJP is a subscript swap: the output's term and operand k's term trade
places. `vjp` prints the swapped subscripts (and their matrix form); `check`
compares reverse mode, forward mode and finite differences on random data."""

_VJP_EPILOG = """\
The VJP with respect to operand k is the einsum of the cotangent g (shaped like
the output) with the other operands, whose result carries operand k's term.

examples:
  python -m einsumad vjp "ij,j->i"               # W^T g: the transpose appears by itself
  python -m einsumad vjp "ij,jk->ik" --names A,B
  python -m einsumad vjp "batch in, in out -> batch out"
"""

_CHECK_EPILOG = """\
Operands are standard normal random arrays of the given shapes. Each shape is
sizes joined by 'x' (3x4); a scalar operand is '()'. Exits 1 if a derivative
disagrees with central finite differences.

examples:
  python -m einsumad check "ij,jk->ik" --shapes 3x4,4x5
  python -m einsumad check "ii->" --shapes 4x4 --order 2
  python -m einsumad check "i->ij" --shapes 3 --sizes j=2 --dtype float32
  python -m einsumad check "ij,j->i" --shapes 3x4,4 --wrong-vjp 0   # see a failure report
"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit with status 2."""

    def error(self, message: str) -> NoReturn:
        _fail(message)


class _BadInput(Exception):
    """Input the command line rejects (exit status 2)."""


def _report(message: str) -> None:
    """One line on stderr: the first line of ``message`` (a subscript pointer is dropped)."""
    lines = str(message).strip().splitlines()
    print(f"einsumad: error: {lines[0] if lines else 'bad input'}", file=sys.stderr)


def _fail(message: str) -> NoReturn:
    _report(message)
    raise SystemExit(2)


def _parser() -> _Parser:
    parser = _Parser(
        prog=PROG, description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"einsumad {version.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{vjp,check}", required=True)

    vjp = commands.add_parser(
        "vjp",
        help="print every operand's VJP subscripts and matrix form",
        description="Print, for every operand of an einsum, the VJP subscripts given by the\n"
        "swap rule and their matrix form (where every term has at most two indices).",
        epilog=_VJP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    vjp.add_argument("subscripts", help='einsum subscripts, e.g. "ij,j->i"')
    vjp.add_argument("--names", help="comma-separated operand names for the matrix form, e.g. W,a")
    vjp.set_defaults(run=_run_vjp)

    check = commands.add_parser(
        "check",
        help="check the einsum's derivatives against finite differences on random data",
        description="Run einsumad.check_grads on an einsum of random operands: reverse mode,\n"
        "forward mode and central finite differences must agree.",
        epilog=_CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("subscripts", help='einsum subscripts, e.g. "ij,jk->ik"')
    check.add_argument(
        "--shapes", required=True, help="operand shapes, comma-separated, e.g. 3x4,4x5"
    )
    check.add_argument(
        "--sizes", help="sizes of output indices found in no operand, e.g. j=3,k=2"
    )
    check.add_argument(
        "--seed", type=_seed, default=0, help="random seed, a non-negative integer (default 0)"
    )
    check.add_argument(
        "--dtype", choices=("float32", "float64"), default="float64",
        help="dtype of the operands (default float64); derivatives are checked on float64 "
        "copies against finite differences, and in this dtype against float64",
    )
    check.add_argument(
        "--order", type=int, choices=(1, 2), default=1, help="derivative order (default 1)"
    )
    check.add_argument("--names", help="comma-separated operand names for the report")
    check.add_argument(
        "--wrong-vjp", type=int, metavar="K", default=None,
        help="demonstration: give operand K a deliberately wrong VJP (twice the true one) "
        "to see how a broken rule is reported",
    )
    check.set_defaults(run=_run_check)
    return parser


def _seed(text: str) -> int:
    """A non-negative integer (NumPy's seeds); argparse reports anything else."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: give a non-negative integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid seed {value}: give a non-negative integer")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 check failed, 2 bad input).

    Args:
        argv: the arguments after ``python -m einsumad`` (default: ``sys.argv[1:]``).

    >>> main(["vjp", "ij,j->i", "--names", "W,a"])  # doctest: +NORMALIZE_WHITESPACE
    einsum ij,j->i   matrix form: W a   (cotangent g, term i)
    operand  name  term  VJP subscripts  matrix form
    0        W     ij    i,j->ij         g a^T
    1        a     j     i,ij->j         W^T g
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    # Subscripts may start with "-" ("->", an einsum of no operand): argparse would
    # read them as an option, so they are hidden behind a placeholder while parsing.
    hidden = {f"\x00{k}": a for k, a in enumerate(argv) if a.startswith("->")}
    argv = [f"\x00{k}" if a.startswith("->") else a for k, a in enumerate(argv)]
    try:
        args = _parser().parse_args(argv)  # --help and --version exit 0, bad usage 2
        for key, value in vars(args).items():
            if isinstance(value, str) and value in hidden:
                setattr(args, key, hidden[value])
        return int(args.run(args))
    except (_BadInput, EinsumError) as error:
        _report(str(error))
        return 2
    except MemoryError:
        _report("out of memory: use smaller shapes")
        return 2
    except (ValueError, RuntimeError, ArithmeticError, TypeError, IndexError) as error:
        # The input reached NumPy or the checker and was refused there: one line that
        # says what failed (the exception's type and message), never a traceback.
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        _report(f"{argv[0] if argv else 'einsumad'} failed on this input: {type(error).__name__}: {first}")
        return 2
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 2


# ===================================================================== vjp


def _names(text: str | None, terms: Sequence[Sequence[str]]) -> list[str]:
    if text is None:
        try:
            return list(default_names(terms))
        except IndexError:  # more operands than default_names has letters: number them
            return [f"x{k}" for k in range(len(terms))]
    names = [n.strip() for n in text.split(",")]
    if len(names) != len(terms) or not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names):
        raise _BadInput(
            f"--names {text!r}: give {len(terms)} comma-separated name(s), one per operand"
        )
    return names


def _encodable(text: str) -> bool:
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows
    )


def _run_vjp(args: argparse.Namespace) -> int:
    sub = parse(args.subscripts)
    names = _names(args.names, sub.inputs)
    cot = "G" if len(sub.output) == 2 else "g"
    while cot in names:
        cot += "_out"
    ascii_only = not _encodable("⊙")

    def render(subscripts: str, operand_names: list[str]) -> str:
        details = matrix_form_details(subscripts, operand_names, ascii=ascii_only)
        return details.text if details.text is not None else f"(none): {details.reason}"

    explicit = str(sub)
    head = f"einsum {explicit}"
    head += f"   matrix form: {render(explicit, names)}"
    head += f"   (cotangent {cot}, term {_term(sub.output, sub.named)})"
    rows = [["operand", "name", "term", "VJP subscripts", "matrix form"]]
    for k, term in enumerate(sub.inputs):
        swapped = vjp_subscripts(args.subscripts, k)
        others = [n for j, n in enumerate(names) if j != k]
        rows.append([str(k), names[k], _term(term, sub.named), swapped, render(swapped, [cot, *others])])
    print(head)
    print(_table(rows))
    return 0


def _term(term: Sequence[str], named: bool) -> str:
    text = (" " if named else "").join(term)
    return text if text else "(scalar)"


# ===================================================================== check


_SHAPE = re.compile(r"\d+(x\d+)*")


def _parse_shapes(text: str) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    for piece in text.split(","):
        piece = piece.strip().lower()
        if piece in ("()", "", "scalar"):
            shapes.append(())
        elif _SHAPE.fullmatch(piece):
            shapes.append(tuple(int(n) for n in piece.split("x")))
        else:
            raise _BadInput(
                f"--shapes {text!r}: {piece!r} is not a shape; write sizes joined by 'x' "
                "(3x4), '()' for a scalar, and separate operands with commas"
            )
    return shapes


def _parse_sizes(text: str | None) -> dict[str, int]:
    sizes: dict[str, int] = {}
    if not text:
        return sizes
    for piece in text.split(","):
        match = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\d+)\s*", piece)
        if not match:
            raise _BadInput(f"--sizes {text!r}: {piece.strip()!r} is not index=size (e.g. j=3)")
        sizes[match.group(1)] = int(match.group(2))
    return sizes


def _einsum_fun(subscripts: str, sizes: dict[str, int], wrong: int | None, n: int) -> Callable:
    """``ops -> einsum(subscripts, *ops)``, optionally with operand ``wrong``'s VJP doubled."""
    if wrong is None:
        return lambda *ops: einsum(subscripts, *ops, sizes=sizes)
    if not 0 <= wrong < n:
        raise _BadInput(f"--wrong-vjp {wrong}: there is no operand {wrong} (there are {n})")
    def broken_einsum(*ops: Any) -> Any:
        return einsum(subscripts, *ops, sizes=sizes)

    prim = primitive(broken_einsum)

    def along(k: int, ops: tuple) -> Callable:
        def partial(x: Any) -> Any:
            return einsum(subscripts, *ops[:k], x, *ops[k + 1 :], sizes=sizes)

        return partial

    def vjp_maker(k: int) -> Callable:
        factor = 2.0 if k == wrong else 1.0
        return lambda ans, *ops: lambda g: vjp(along(k, ops), ops[k])[1](g)[0] * factor

    def jvp_rule(k: int) -> Callable:
        return lambda t, ans, *ops: jvp(along(k, ops), (ops[k],), (t,))[1]

    defvjp(prim, *[vjp_maker(k) for k in range(n)])
    defjvp(prim, *[jvp_rule(k) for k in range(n)])
    return prim


def _run_check(args: argparse.Namespace) -> int:
    sub = parse(args.subscripts)
    shapes = _parse_shapes(args.shapes)
    if len(shapes) != len(sub.inputs):
        raise _BadInput(
            f"--shapes gives {len(shapes)} shape(s) but {args.subscripts!r} has "
            f"{len(sub.inputs)} operand(s)"
        )
    sizes = _parse_sizes(args.sizes)
    names = _names(args.names, sub.inputs)
    dtype = np.dtype(args.dtype)
    try:  # do the shapes fit the subscripts? (checked on the shapes, before any array exists)
        spec = resolve(sub, shapes, sizes)
        _, path = einsum_path(args.subscripts, *shapes, sizes=sizes)
    except (EinsumError, ValueError) as error:
        message = re.sub(r"pass sizes=\{'(\w+)': n\}", r"pass --sizes \1=N", str(error))
        raise _BadInput(message) from None
    out_shape = spec.shape(spec.output)
    elements = sum(math.prod(s) for s in shapes) + math.prod(out_shape)
    if elements > MAX_ELEMENTS or path.forward_flops > MAX_FLOPS:
        what = (
            f"the operands and the output hold {elements:.3g} elements (at most {MAX_ELEMENTS:.0e})"
            if elements > MAX_ELEMENTS
            else f"one evaluation costs {path.forward_flops:.3g} flops (at most {MAX_FLOPS:.0e})"
        )
        raise _BadInput(
            f"--shapes {args.shapes!r}: too large to check on random data: {what}, and the "
            "check evaluates the einsum many times; use smaller shapes"
        )
    out = einsum(args.subscripts, *[np.zeros(s, dtype) for s in shapes], sizes=sizes)
    rng = np.random.default_rng(args.seed)
    operands = tuple(rng.standard_normal(s).astype(dtype) for s in shapes)
    fun = _einsum_fun(args.subscripts, sizes, args.wrong_vjp, len(shapes))
    report = _check_grads(
        fun, operands, args.order, ("rev", "fwd"), None, None, None, args.seed, names=names
    )
    shown = ", ".join("x".join(map(str, s)) or "()" for s in shapes)
    print(
        f"check_grads on einsum {sub} with random {dtype} operands of shapes {shown} "
        f"(seed {args.seed}, order {args.order}; output shape {np.shape(out)})"
    )
    header = ["operand", "name", "term", "shape", "rev", "fwd"]
    if args.order == 2:
        header += ["order 2"]
    rows = [header + ["max |error|", "checked"]]
    for k, (term, shape) in enumerate(zip(sub.inputs, shapes)):
        mine = [o for o in report.outcomes if o.position == k]

        def verdict(found: list) -> str:
            return "-" if not found else "ok" if all(o.ok for o in found) else "FAIL"

        row = [str(k), names[k], _term(term, sub.named), "x".join(map(str, shape)) or "()"]
        row += [verdict([o for o in mine if o.mode == m and o.order == 1]) for m in ("rev", "fwd")]
        if args.order == 2:
            row.append(verdict([o for o in mine if o.order == 2]))
        first = [o for o in mine if o.order == 1]
        worst = max((o.max_error for o in mine), default=0.0)
        row += [f"{worst:.1e}", first[0].how if first else "-"]
        rows.append(row)
    print(_table(rows))
    if report.failed:
        print()
        print(report.message())
        return 1
    print("all derivatives agree with central finite differences")
    return 0
