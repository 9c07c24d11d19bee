"""Data files, as the command line and the benchmark read them.

The format is read from the content, not the name (a name that promises another format
is an error only where the content cannot be read as anything else):

* svmlight/LIBSVM text: ``label index:value ...`` (one-based indices, ``#`` comments);
* dense text: the label, then one column per feature, separated by commas (CSV) or by
  whitespace, with an optional header line (detected: a line whose feature fields are not
  numbers); ``label_column`` picks ``"first"`` (default), ``"last"`` or a header name;
  labels may be numbers or text;
* ``.npz``: arrays ``X`` and ``y``, or a CSR matrix written by ``scipy.sparse.save_npz``
  plus an optional ``y``; ``.npy``: the 2-D feature matrix only (labels from ``labels``);

text compressed by gzip, bz2 or xz too (recognized by its magic bytes). ``n_features``
sets the width of sparse data the way LIBLINEAR's ``predict`` does: features beyond it
are ignored, missing ones are zero (:attr:`DataFile.ignored` counts what was dropped).
Dense data keeps its columns: they have no indices to pad or cut by.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

__all__ = ["DataFile", "DataFileError", "MIN_CLASS_SHARE", "TaskOfLabels", "compression_of", "infer_task",
           "load_data_file", "open_data", "read_data_file", "set_width", "sniff"]

# --task auto: integer labels with three or more values are classes when each labels this
# share of the rows at least (dna: 23%, letter: 4%); else a numeric target (abalone's ages 1..29)
MIN_CLASS_SHARE = 0.01

# magic bytes of the compressions read; the name of each is the one its file extension uses
COMPRESSIONS = {"gz": (b"\x1f\x8b", gzip.open), "bz2": (b"BZh", bz2.open), "xz": (b"\xfd7zXZ\x00", lzma.open)}
_NPY_MAGIC, _ZIP_MAGICS = b"\x93NUMPY", (b"PK\x03\x04", b"PK\x05\x06")
_HEAD_BYTES = 1 << 16  # enough lines to tell the formats apart
_SVM_TOKEN = re.compile(r"^(?:[+-]?\d+|qid):")  # "3:0.5", "-1:2" (refused later, with its index), "qid:7"


class DataFileError(ValueError):
    """A data file that cannot be read; the message names the file and what is wrong."""


@dataclass
class DataFile:
    """What :func:`read_data_file` read: ``X``, ``y`` (``None`` when the file holds no
    labels), the format found (``svmlight``, ``csv``, ``text``, ``npz``, ``npy``), the
    compression (``gz``, ``bz2``, ``xz`` or ``None``), the header name of the label column
    (dense text with a header), and, when ``n_features`` cut the data, ``ignored``:
    ``(the file's own width, nonzeros dropped)``."""

    X: object
    y: np.ndarray | None
    format: str
    compression: str | None = None
    label_name: str | None = None
    ignored: tuple | None = None


def _compression_of(magic):
    return next((name for name, (sig, _) in COMPRESSIONS.items() if magic.startswith(sig)), None)


def compression_of(path):
    """``gz``, ``bz2``, ``xz`` or ``None``: the compression of the file ``path``, from its first bytes."""
    with open(path, "rb") as raw:
        return _compression_of(raw.read(8))


def open_data(path, compression=None):
    """``path`` opened for reading bytes, decompressed when ``compression`` names one."""
    return COMPRESSIONS[compression][1](path, "rb") if compression else open(path, "rb")


def _looks_binary(head):
    """NUL bytes, or more than 1% control characters: not a text data file."""
    if b"\x00" in head:
        return True
    controls = sum(head.count(bytes([c])) for c in range(32) if c not in b"\t\n\r\f\v")
    return controls > 0.01 * max(len(head), 1)


def _text_lines(head, complete):
    """The data lines of the head of a text file: no blank lines, no ``#`` comments, and
    without the last line when the head cut it (``complete`` is False)."""
    lines = head.decode("utf-8", errors="replace").splitlines()
    if not complete and lines:
        lines = lines[:-1]
    return [(k, line.strip()) for k, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]


def _text_format(lines):
    """``svmlight``, ``csv`` or ``text`` (whitespace-separated) from the first data lines."""
    for _, line in lines:
        tokens = line.split("#", 1)[0].split()
        if any(_SVM_TOKEN.match(t) for t in tokens[1:]):
            return "svmlight"
    if any("," in line for _, line in lines):
        return "csv"
    if any(len(line.split()) > 1 for _, line in lines):
        return "text"
    return "svmlight"  # labels alone (or nothing): svmlight rows without features


def sniff(path):
    """``(format, compression, head lines)`` of the data file ``path``, from its content.

    Raises :class:`DataFileError` for binary content that is none of the formats read, and
    where the name promises ``.npy`` / ``.npz`` or a compression the content does not have
    and the content is not text either."""
    compression = compression_of(path)
    with open_data(path, compression) as f:
        head = f.read(_HEAD_BYTES)
        complete = len(head) < _HEAD_BYTES or not f.read(1)
    name = os.path.basename(path).lower()
    if head.startswith(_NPY_MAGIC) or head.startswith(_ZIP_MAGICS):
        kind = "npy" if head.startswith(_NPY_MAGIC) else "npz"
        if compression:
            raise DataFileError(f"cannot read data file {path!r}: a {compression}-compressed .{kind} file; "
                                f"decompress it first")
        return kind, None, []
    for kind in ("npy", "npz"):
        if name.endswith("." + kind):
            raise DataFileError(f"cannot read data file {path!r}: the name ends in .{kind} but the content is "
                                f"not an .{kind} file")
    if _looks_binary(head):
        promised = next((c for c in COMPRESSIONS if name.endswith("." + c)), None)
        what = f"not {promised}-compressed although the name ends in .{promised}" if promised and not compression \
            else "binary content"
        raise DataFileError(f"cannot read data file {path!r}: {what}; expected svmlight/LIBSVM, CSV or "
                            f"whitespace-separated text (plain, gzip, bz2 or xz), .npz or .npy")
    lines = _text_lines(head, complete)
    if lines and all(len(line.split()) == 1 and "," not in line for _, line in lines) \
            and not _is_number(lines[0][1]):
        raise DataFileError(f"cannot read data file {path!r}: one field per line, and {lines[0][1]!r} is not a "
                            f"label: no features; expected svmlight/LIBSVM (label index:value ...) or dense text "
                            f"(the label, then the feature columns)")
    return _text_format(lines), compression, lines


def read_data_file(path, dtype=np.float64, n_features=None, labels=None, need_labels=True,
                   label_column=None) -> DataFile:
    """Read the data file ``path`` (any format of this module) into a :class:`DataFile`.

    ``labels``: a ``.npy`` file of labels that replaces the file's; ``need_labels``:
    refuse a file without labels; ``label_column``: for dense text, ``"first"`` (``None``,
    the default), ``"last"`` or a header name. ``n_features``: the width of sparse data
    (see the module's docstring). Raises :class:`DataFileError` (a ``ValueError``) naming
    the file; an ``OverflowError`` of the svmlight parser (an index >= 2**31) is let
    through as it is."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataFileError(f"data file {path!r} does not exist")
    try:
        fmt, compression, lines = sniff(path)
        if fmt == "npz":
            X, y = _read_npz(path)
            found = DataFile(X, y, fmt)
        elif fmt == "npy":
            found = DataFile(np.load(path, allow_pickle=False, mmap_mode="r"), None, fmt)
        elif fmt == "svmlight":
            found = DataFile(*_read_svmlight(path, compression, dtype), fmt, compression)
        else:
            found = _read_dense(path, compression, fmt, lines, label_column, dtype)
    except DataFileError:
        raise
    except (ValueError, TypeError, OSError, EOFError) as exc:  # TypeError: e.g. an .npz shape of floats
        raise DataFileError(f"cannot read data file {path!r}: {' '.join(str(exc).split())}") from None
    if labels is not None:
        try:
            found.y = np.load(labels, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise DataFileError(f"cannot read labels file {labels!r}: {exc}") from None
    found.X = _as_dtype(path, found.X, dtype)
    if n_features is not None and sp.issparse(found.X):
        found.X, found.ignored = set_width(found.X, n_features)
    if found.y is not None:
        found.y = np.asarray(found.y).ravel()
        if found.y.shape[0] != found.X.shape[0]:
            raise DataFileError(f"{path}: {found.X.shape[0]} rows but {found.y.shape[0]} labels")
    elif need_labels:
        raise DataFileError(f"{path}: no labels (a .npy file holds X only: give --labels FILE.npy)")
    return found


def load_data_file(path, dtype=np.float64, n_features=None, labels=None, need_labels=True, label_column=None):
    """``(X, y)`` of :func:`read_data_file`; ``y`` is ``None`` when the file holds none."""
    found = read_data_file(path, dtype=dtype, n_features=n_features, labels=labels, need_labels=need_labels,
                           label_column=label_column)
    return found.X, found.y


def _read_npz(path):
    with np.load(path, allow_pickle=False) as npz:
        keys = set(npz.files)
        if {"data", "indices", "indptr", "shape"} <= keys:
            for name in ("indices", "indptr", "shape"):  # scipy would cast float indices silently
                if npz[name].dtype.kind not in "iu":
                    raise DataFileError(f"{path}: CSR {name} must be integers, got {npz[name].dtype}")
            X = sp.csr_matrix((npz["data"], npz["indices"], npz["indptr"]), shape=tuple(npz["shape"]))
        elif "X" in keys:
            X = npz["X"]
        else:
            raise DataFileError(f"{path}: an .npz data file holds arrays X and y, or a CSR matrix "
                                f"(scipy.sparse.save_npz) plus y; found {sorted(keys)}")
        return X, (npz["y"] if "y" in keys else None)


def _read_svmlight(path, compression, dtype):
    """``(X, y)`` at the file's own width (its largest index)."""
    from sklearn.datasets import load_svmlight_file

    with open_data(path, compression) as f:
        return load_svmlight_file(f, dtype=dtype)


def _as_dtype(path, X, dtype):
    if X.ndim != 2:
        raise DataFileError(f"{path}: the feature matrix must be 2-D, got shape {X.shape}")
    if sp.issparse(X):
        return X.tocsr().astype(dtype, copy=False)
    return np.asarray(X, dtype=dtype)


def set_width(X, n_features):
    """CSR ``X`` with ``n_features`` columns: narrower padded with zero columns, wider cut;
    returns ``(X, ignored)``, ``ignored`` = (the width it had, nonzeros dropped) when cut."""
    width = X.shape[1]
    if width <= n_features:
        return sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], n_features)), None
    cut = X[:, :n_features].tocsr()
    return cut, (width, int(X.nnz - cut.nnz))


# ---------------------------------------------------------------- dense text
def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _fields(line, fmt):
    parts = line.split(",") if fmt == "csv" else line.split()
    return [p.strip().strip('"').strip("'") for p in parts]


def _read_dense(path, compression, fmt, lines, label_column, dtype):
    """Dense text (``fmt`` ``csv`` or ``text``): the label column, the rest features."""
    first = _fields(lines[0][1], fmt)
    if len(first) < 2:
        raise DataFileError(f"{path}: a dense text file needs a label and at least one feature column; "
                            f"line {lines[0][0] + 1} has {len(first)} field")
    header = first if _is_header(first, label_column) else None
    index = _label_index(path, label_column, header, len(first))
    skip = lines[0][0] + 1 if header is not None else 0  # physical lines, comments included
    y, X = _load_table(path, compression, "," if fmt == "csv" else None, skip, index, len(first))
    return DataFile(np.asarray(X, dtype=dtype), y, fmt, compression,
                    label_name=header[index] if header is not None else None)


def _is_header(fields, label_column):
    """A first line is a header when a field that is not the label's is not a number
    (text labels such as ``spam`` are data); with a named label column, any text field."""
    texts = [k for k, f in enumerate(fields) if not _is_number(f)]
    if label_column not in (None, "first", "last"):
        return bool(texts)
    label = len(fields) - 1 if label_column == "last" else 0
    return any(k != label for k in texts)


def _label_index(path, label_column, header, n_fields):
    if label_column in (None, "first"):
        return 0
    if label_column == "last":
        return n_fields - 1
    if header is None:
        raise DataFileError(f"{path}: --label-column {label_column!r} needs a header line, and the file has "
                            f"none; use first or last")
    if label_column not in header:
        raise DataFileError(f"{path}: no column {label_column!r} in the header; columns: {', '.join(header)}")
    return header.index(label_column)


def _load_table(path, compression, delimiter, skip, index, n_fields):
    """``(labels, features)``: one pass with every column as a number when the labels are
    numbers (numpy refuses ragged rows), else the labels as text and the features apart."""
    def load(**options):
        with open_data(path, compression) as raw, io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as f, \
                warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": refused below
            return np.loadtxt(f, delimiter=delimiter, skiprows=skip, quotechar='"', ndmin=2, **options)

    try:
        table = load(dtype=np.float64)
    except ValueError as exc:
        labels = load(dtype=str, usecols=[index]).ravel()
        if all(_is_number(v) for v in labels):  # a feature field is not a number, or rows are ragged
            raise DataFileError(f"cannot read data file {path!r}: {_numpy_reason(exc)}") from None
        labels, features = labels, load(dtype=np.float64, usecols=[k for k in range(n_fields) if k != index])
    else:
        labels, features = table[:, index].copy(), np.delete(table, index, axis=1)
    if labels.shape[0] == 0:
        raise DataFileError(f"{path}: no data rows (a header line only)")
    return labels, features


def _numpy_reason(exc):
    """numpy's message without its advice to use ``usecols`` (which would drop columns)."""
    text = " ".join(str(exc).split()).split("; use `usecols`")[0]
    return text + ("; every line needs the same number of fields" if "number of columns" in text else "")


class TaskOfLabels(NamedTuple):
    """What :func:`infer_task` found: ``task``, and the distinct labels with their counts
    (``None`` for real-valued targets)."""

    task: str
    classes: np.ndarray | None
    counts: np.ndarray | None

    @property
    def n_classes(self):
        """K for logistic regression, 0 for ridge."""
        return int(self.classes.size) if self.task == "logistic" else 0


def infer_task(y):
    """The task of ``--task auto`` (``tikhon fit|plot`` and ``tikhon bench``) from the labels:
    ``logistic`` for text labels, two values, or integers whose every value labels at least
    :data:`MIN_CLASS_SHARE` of the rows (K classes); ``ridge`` for real numbers (NaN and
    infinity included) and other integers (abalone's ages 1..29: a numeric target)."""
    y = np.asarray(y)
    numeric = y.dtype.kind in "iufc"
    if numeric and y.dtype.kind != "i" and not (np.all(np.isfinite(y)) and np.all(y == np.round(y))):
        return TaskOfLabels("ridge", None, None)
    classes, counts = np.unique(y, return_counts=True)
    if not numeric or classes.size <= 2 or counts.min() >= MIN_CLASS_SHARE * y.size:
        return TaskOfLabels("logistic", classes, counts)
    return TaskOfLabels("ridge", classes, counts)
