"""Array libraries: what an operand is, read from its attributes, and where it lives.

einsumad computes in the operands' own library: NumPy, Dask, CuPy, PyTorch, or
any library that follows the Python array API standard. Everything the
machinery asks of a value goes through this module:

* :func:`shape`, :func:`ndim`, :func:`dtype` read attributes (``x.shape``,
  ``x.dtype``); they never call ``np.shape`` or ``np.asarray``, which would
  compute a Dask array (losing its laziness) or copy a GPU tensor to the host;
* :func:`dtype_kind` says whether a dtype of any library is real (``"f"``),
  complex (``"c"``), integer (``"i"``, ``"u"``) or boolean (``"b"``);
* :func:`array_namespace` is the operands' namespace: ``numpy`` itself for NumPy
  arrays and Python numbers (the fast path, untouched), else the array API
  namespace that ``array_api_compat`` gives (``array_api_compat.torch``, ...) or
  that the array declares (``__array_namespace__``). Operands of two libraries
  in one call are an error naming which operand came from where;
* :func:`zeros`, :func:`ones` and :func:`asarray` make arrays *like* a given
  one: the same library and device.

Python numbers and NumPy scalars are numbers, welcome beside any library's
arrays (``2.0 * x`` keeps ``x``'s dtype, as NumPy's weak scalars do).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .delta import KroneckerDelta
from .tape import MixedLibrariesError, Tensor, unbox

__all__ = [
    "shape", "ndim", "dtype", "dtype_kind", "is_complex", "is_numpy",
    "array_namespace", "library_name", "namespace_named", "device",
    "zeros", "ones", "asarray", "full_like_scalar", "to_numpy", "MixedLibrariesError", "dispatch", "dense",
]

_NUMBERS = (int, float, complex, np.generic)


# ================================================================= attributes


def shape(x: Any) -> tuple[int, ...]:
    """The shape of ``x`` (boxed or not), from its ``shape`` attribute.

    >>> shape(np.ones((2, 3))), shape(2.0)
    ((2, 3), ())
    """
    while type(x) is Tensor:
        x = x.value
    if type(x) is np.ndarray:
        return x.shape
    s = getattr(x, "shape", None)
    if s is None:
        return np.shape(x)  # numbers, lists
    return s if type(s) is tuple else tuple(s)


def ndim(x: Any) -> int:
    """The number of axes of ``x``."""
    return len(shape(x))


def dtype(x: Any) -> Any:
    """The dtype of ``x`` in its own library (``torch.float32`` for a torch tensor);
    NumPy's default dtype for a Python number."""
    while type(x) is Tensor:
        x = x.value
    d = getattr(x, "dtype", None)
    if d is not None:
        return d
    return np.result_type(x) if isinstance(x, (int, float, complex)) else np.asarray(x).dtype


@functools.lru_cache(maxsize=256)
def _kind_of(d: Any) -> str:
    name = str(d).rsplit(".", 1)[-1]  # torch.float32, array_api_strict.complex128, float64
    try:
        return str(np.dtype(name).kind)
    except TypeError:
        for word, kind in (("complex", "c"), ("float", "f"), ("uint", "u"), ("int", "i"), ("bool", "b")):
            if word in name:
                return kind
    return "O"


def dtype_kind(d: Any) -> str:
    """NumPy's one-letter kind of a dtype of any library: ``"f"`` real floating,
    ``"c"`` complex, ``"i"``/``"u"`` integer, ``"b"`` boolean.

    >>> dtype_kind(np.dtype("float32")), dtype_kind(np.dtype("complex64"))
    ('f', 'c')
    """
    if type(d) is np.dtype or isinstance(d, np.dtype):
        return d.kind
    if isinstance(d, type):  # Python number types (float, complex) and NumPy scalar types
        return np.dtype(d).kind
    return _kind_of(d)


def is_complex(x: Any) -> bool:
    """Whether ``x`` holds complex numbers (a cheap test on NumPy arrays)."""
    if type(x) is np.ndarray:
        return x.dtype.kind == "c"
    if isinstance(x, complex):
        return True
    if isinstance(x, (int, float)):
        return False
    d = getattr(unbox(x), "dtype", None)
    return d is not None and dtype_kind(d) == "c"


def is_numpy(x: Any) -> bool:
    """NumPy arrays, NumPy scalars and Python numbers: the values of the fast path."""
    return type(x) is np.ndarray or isinstance(x, (np.ndarray, *_NUMBERS))


# ================================================================= namespaces


_NAMESPACE_BY_TYPE: dict[type, Any] = {}
_NAMESPACE_BY_NAME: dict[str, Any] = {"numpy": np}


def _bridge() -> Any:
    """``array_api_compat``, imported when a first non-NumPy array arrives (None when it is
    not installed: the core needs only NumPy; other libraries need the bridge or the standard)."""
    try:
        import array_api_compat
    except ImportError:
        return None
    return array_api_compat


def _namespace_of_type(x: Any) -> Any:
    kind = type(x)
    xp = _NAMESPACE_BY_TYPE.get(kind)
    if xp is not None:
        return xp
    own = getattr(x, "__array_namespace__", None)
    bridge = _bridge()
    if bridge is not None:
        try:
            xp = bridge.array_namespace(x)
        except TypeError:
            xp = None
    if xp is None and own is not None:
        xp = own()
    if xp is None:
        hint = (
            "" if bridge is not None else
            " (for PyTorch, Dask or CuPy arrays install array-api-compat: pip install 'einsumad[backends]')"
        )
        raise TypeError(
            f"einsumad cannot compute with an operand of type {kind.__module__}.{kind.__qualname__}: it "
            f"is no NumPy array and follows no known array API{hint}"
        )
    if getattr(xp, "__name__", "") == "array_api_compat.numpy":
        xp = np
    _NAMESPACE_BY_TYPE[kind] = xp
    _NAMESPACE_BY_NAME.setdefault(library_name(xp), xp)
    return xp


def _describe(x: Any) -> str:
    kind = type(x)
    where = device(x)
    at = f", device {where}" if where is not None and str(where) not in ("cpu", "CPU_DEVICE") else ""
    return f"{kind.__module__}.{kind.__qualname__}{at}"


def array_namespace(*arrays: Any) -> Any:
    """The array library of the operands: ``numpy`` for NumPy arrays and Python
    numbers, else the operands' array API namespace (``array_api_compat.torch``,
    ``array_api_compat.dask.array``, ``array_api_strict``, ...). Ops write their
    implementations against it (``xp.tanh(x)``) with the standard's functions.

    Raises:
        MixedLibrariesError: (a ``TypeError``) when the operands come from two
            libraries, or from two devices of one library; the message says
            which operand came from where.

    >>> array_namespace(np.ones(2), 2.0) is np
    True
    """
    xp: Any = None
    for a in arrays:
        if type(a) is np.ndarray or isinstance(a, _NUMBERS) or a is None:
            continue
        a = unbox(a)
        if isinstance(a, (np.ndarray, *_NUMBERS)):
            continue
        if type(a) is KroneckerDelta:
            if a.namespace is np:
                continue
            other = a.namespace
        else:
            other = _namespace_of_type(a)
        if xp is None:
            xp = other
        elif other is not xp:
            raise _mixed(arrays)
    if xp is None:
        return np
    if xp is not np:
        _check_one_library(arrays, xp)
    return xp


def _check_one_library(arrays: tuple, xp: Any) -> None:
    """No NumPy array beside a foreign one, and one device."""
    devices = set()
    for a in arrays:
        a = unbox(a)
        if isinstance(a, np.ndarray) or (type(a) is KroneckerDelta and a.namespace is np):
            raise _mixed(arrays)
        if not isinstance(a, _NUMBERS) and a is not None:
            d = device(a)
            if d is not None:
                devices.add(str(d))
    if len(devices) > 1:
        raise _mixed(arrays)


def _mixed(arrays: tuple) -> MixedLibrariesError:
    parts = []
    for i, a in enumerate(arrays):
        a = unbox(a)
        if a is None or isinstance(a, (int, float, complex)):
            continue
        parts.append(f"operand {i} is a {_describe(a)}")
    return MixedLibrariesError(
        "operands come from different array libraries or devices: " + "; ".join(parts)
        + ". einsumad computes in the operands' own library, so give every operand of one call "
        "the same library and device (e.g. torch.as_tensor(x), dask.array.from_array(x), "
        "or np.asarray(x) to stay with NumPy)"
    )


def library_name(xp: Any) -> str:
    """A short name for a namespace: ``numpy``, ``torch``, ``dask``, ``cupy``, ``jax``,
    or the module name of any other array API library.

    >>> library_name(np)
    'numpy'
    """
    if xp is np:
        return "numpy"
    name = getattr(xp, "__name__", type(xp).__name__)
    if name.startswith("array_api_compat."):
        name = name[len("array_api_compat."):]
    if name in ("dask.array", "jax.numpy"):
        name = name.split(".")[0]
    return str(name)


def namespace_named(name: str) -> Any:
    """The namespace :func:`library_name` called ``name`` (one seen before)."""
    return _NAMESPACE_BY_NAME[name]


def device(x: Any) -> Any:
    """The device an array lives on (None for NumPy arrays and numbers)."""
    x = unbox(x)
    if isinstance(x, (np.ndarray, *_NUMBERS)):
        return None
    if type(x) is KroneckerDelta:
        return x.device
    d = getattr(x, "device", None)
    if d is None or callable(d):
        bridge = _bridge()
        try:
            return None if bridge is None else bridge.device(x)
        except (TypeError, ValueError):
            return None
    return d


# ================================================================= making arrays like another


def zeros(shape_: tuple[int, ...], dtype_: Any, like: Any = None) -> Any:
    """Zeros of ``shape_`` and ``dtype_`` in the library (and on the device) of ``like``."""
    xp = np if like is None else array_namespace(like)
    if xp is np:
        return np.zeros(shape_, dtype=dtype_)
    return xp.zeros(tuple(shape_), dtype=dtype_, device=device(like))


def ones(shape_: tuple[int, ...], dtype_: Any, like: Any = None) -> Any:
    """Ones of ``shape_`` and ``dtype_`` in the library (and on the device) of ``like``."""
    xp = np if like is None else array_namespace(like)
    if xp is np:
        return np.ones(shape_, dtype=dtype_)
    return xp.ones(tuple(shape_), dtype=dtype_, device=device(like))


def asarray(x: Any, like: Any = None) -> Any:
    """``x`` as an array of ``like``'s library: foreign arrays are kept as they are,
    anything else (lists, numbers, NumPy scalars) becomes a NumPy array unless
    ``like`` is foreign."""
    if type(x) is np.ndarray:
        return x
    if not isinstance(x, (list, tuple, *_NUMBERS)) and getattr(x, "shape", None) is not None:
        return x  # an array of some library
    xp = np if like is None else array_namespace(like)
    if xp is np:
        return np.asarray(x)
    return xp.asarray(x, device=device(like))


def full_like_scalar(value: Any, like: Any) -> Any:
    """The number ``value`` as a 0-d array of ``like``'s library, device and dtype
    (complex when ``value`` is complex and ``like`` real)."""
    xp = np if like is None else array_namespace(like)
    if xp is np:
        return np.asarray(value, dtype=np.result_type(dtype(like) if like is not None else value, value))
    d = dtype(like)
    if isinstance(value, complex) and dtype_kind(d) != "c":
        d = xp.complex64 if str(d).endswith("float32") else xp.complex128
    return xp.asarray(value, dtype=d, device=device(like))


def dense(x: Any) -> Any:
    """``x``, with a symbolic Kronecker delta materialised in its own library."""
    return x.materialize() if type(x) is KroneckerDelta else x


def _numbers_as_arrays(args: tuple, xp: Any) -> tuple:
    """Python numbers among ``args`` as 0-d arrays like the first (non-boolean) array among them."""
    if not any(isinstance(a, _NUMBERS) for a in args):
        return args
    arrays = [a for a in args if not isinstance(a, _NUMBERS)]
    like = next((a for a in arrays if dtype_kind(dtype(a)) != "b"), arrays[0])
    return tuple(full_like_scalar(a, like) if isinstance(a, _NUMBERS) else a for a in args)


def dispatch(numpy_function: Any, name: str | Any, numbers: bool = False) -> Any:
    """An implementation that calls ``numpy_function`` on NumPy arrays and Python
    numbers (the fast path, exactly as before) and the operands' namespace's
    function ``name`` on any other library's arrays.

    ``name`` is a function name of the array API standard (``"tanh"``), or a
    function ``(xp, *args, **params)``. Python numbers beside another library's
    array become 0-d arrays of its dtype first, unless ``numbers`` says the
    function takes them (operators do).

    >>> tanh = dispatch(np.tanh, "tanh")
    >>> tanh(np.zeros(2))
    array([0., 0.])
    """
    if isinstance(name, str):
        def call(xp: Any, *args: Any, **params: Any) -> Any:
            return getattr(xp, name)(*(args if numbers else _numbers_as_arrays(args, xp)), **params)
        label = name
    else:
        call = name
        label = getattr(numpy_function, "__name__", "implementation")

    def implementation(*args: Any, **params: Any) -> Any:
        for a in args:
            if type(a) is not np.ndarray and not isinstance(a, _NUMBERS):
                xp = array_namespace(*args)
                if xp is not np:
                    return call(xp, *(dense(a) for a in args), **params)
                break
        return numpy_function(*args, **params)

    implementation.__name__ = label
    implementation.__wrapped__ = numpy_function  # type: ignore[attr-defined]
    return implementation


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy copy of an array of any library (a Dask array is computed, a GPU
    tensor copied to the host): for tests, checks and printing.

    >>> to_numpy([1.0, 2.0])
    array([1., 2.])
    """
    x = unbox(x)
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):  # torch
        return np.asarray(x.detach().cpu())
    if hasattr(x, "compute"):  # dask
        return np.asarray(x.compute())
    if hasattr(x, "get") and type(x).__module__.startswith("cupy"):
        return x.get()  # type: ignore[no-any-return]
    try:
        return np.asarray(x)
    except (TypeError, RuntimeError, ValueError):
        return np.from_dlpack(x)
