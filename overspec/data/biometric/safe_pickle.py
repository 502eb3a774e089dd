"""A restricted unpickler for benchmark files that are pickles (insightface ``.bin`` pair sets).

A pickle can run any callable it names, so an untrusted ``.bin`` must never go through
``pickle.load``. This unpickler resolves only the globals that plain data needs -- bytes written
by protocol-2 pickles (``_codecs.encode`` with latin-1), bytearrays, and numpy arrays and scalars of non-object
dtypes -- and refuses every other global with a `UserError` before anything is called. Containers
(tuples, lists, dicts), bytes, strings, numbers and booleans need no globals at all.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
from typing import Any

import numpy as np

from overspec.errors import UserError


class _Refused(pickle.UnpicklingError):
    """A global the restricted unpickler does not allow."""


def _numpy_attr(module_suffix: str, name: str) -> Any:
    for prefix in ("numpy._core", "numpy.core"):  # numpy 2 and numpy 1 spellings
        try:
            return getattr(importlib.import_module(f"{prefix}.{module_suffix}"), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {module_suffix}.{name}")


def _plain_dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise _Refused("a numpy array of Python objects")
    return dtype


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles store bytes as _codecs.encode(text, "latin1"); nothing else is allowed.
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591") or not isinstance(text, str):
        raise _Refused(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1")


def _plain_bytearray(*args: Any) -> bytearray:
    # Protocols < 5 store bytearray(b) as builtins.bytearray(text, "latin-1").
    if len(args) == 2:
        return bytearray(_latin1_encode(*args))
    if len(args) > 1 or (args and not isinstance(args[0], (bytes, list))):
        raise _Refused("builtins.bytearray with arguments other than bytes")
    return bytearray(*args)


def _refuse_objects(dtype: Any) -> None:
    if isinstance(dtype, np.dtype) and dtype.hasobject:
        raise _Refused("a numpy array of Python objects")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    real_reconstruct = _numpy_attr("multiarray", "_reconstruct")
    real_frombuffer = _numpy_attr("numeric", "_frombuffer")
    real_scalar = _numpy_attr("multiarray", "scalar")

    def reconstruct(cls: Any, shape: Any, dtype: Any) -> Any:  # protocol <= 4 arrays
        if cls is not np.ndarray:
            raise _Refused("numpy _reconstruct of a class other than numpy.ndarray")
        return real_reconstruct(cls, shape, dtype)

    def frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> Any:  # protocol 5 arrays
        _refuse_objects(dtype)
        return real_frombuffer(buffer, dtype, shape, order)

    def scalar(dtype: Any, *data: Any) -> Any:  # numpy scalars such as numpy.bool_
        _refuse_objects(dtype)
        return real_scalar(dtype, *data)

    allowed: dict[tuple[str, str], Any] = {
        ("_codecs", "encode"): _latin1_encode,
        ("builtins", "bytearray"): _plain_bytearray,
        ("__builtin__", "bytearray"): _plain_bytearray,  # protocol < 3 spelling
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _plain_dtype,
    }
    for prefix in ("numpy.core", "numpy._core"):
        allowed[(f"{prefix}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{prefix}.multiarray", "scalar")] = scalar
        allowed[(f"{prefix}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("a persistent id")


def restricted_load(path: str | os.PathLike, what: str = "benchmark file") -> Any:
    """Unpickle `path` allowing only plain data (bytes, str, numbers, bools, containers, numpy arrays).

    Python-2 pickles (str for bytes) are retried with ``encoding="bytes"``, as insightface does.
    """
    data = _read(path, what)
    for kwargs in ({}, {"encoding": "bytes"}):
        try:
            return _RestrictedUnpickler(io.BytesIO(data), **kwargs).load()
        except UnicodeDecodeError:
            continue  # a Python-2 pickle: try again with str read as bytes
        except _Refused as refused:
            raise UserError(
                f"{path} is not a plain-data {what}: it references {refused}, which the restricted reader "
                "refuses to run; rebuild the file from images, or get it from a trusted source."
            ) from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, MemoryError) as err:
            raise UserError(f"{path} is not a readable {what} ({type(err).__name__}: {err}); re-download or rebuild it.") from None
    raise UserError(f"{path} is not a readable {what} (text that is neither ASCII nor bytes); re-download or rebuild it.")


def _read(path: str | os.PathLike, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise UserError(f"The {what} {path} does not exist; check the path in the config.") from None
    except IsADirectoryError:
        raise UserError(f"The {what} {path} is a folder, not a file; point the config at the file.") from None
