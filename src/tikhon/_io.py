"""Model files without pickle: ``model.save(path)`` / ``tikhon.load(path)`` (the same as
``save_model(obj, path)`` / ``load_model(path)`` here) for ``LogisticRegression``,
``Ridge``, ``LogisticRegressionCV``, ``RidgeCV`` and ``PathResult``.

A model file is one ZIP archive (the ``.npz`` container NumPy writes) holding

* ``metadata.json``: ``{"format": "tikhon-model", "format_version": 2, "estimator":
  KIND, "tikhon_version", "params": {...}, "fitted": {name: value}, "arrays": {NAME:
  {"dtype", "shape"}}}`` -- human readable (``unzip -p model.npz metadata.json``). A
  value (a parameter or a fitted attribute, decoded by the role its name has) is plain
  JSON, ``{"__float__": "nan"}``, ``{"__dict__": [[key, value], ...]}``,
  ``{"__tuple__": [...]}``, ``{"__ndarray__": dtype, "values"}`` (a small parameter
  array), ``{"__splitter__": "KFold", "params"}``, a reference ``{"__array__": NAME}``
  (``"item": true`` for a NumPy scalar), labels ``{"dtype", "values"}``, arrays by label
  ``{"labels", "arrays"}``, histories ``{"lengths", "records"}`` or a path result
  ``{"__record__": "PathResult", "fields": {...}}``;
* one ``NAME.npy`` member per declared array, nothing else.

Format version 1 (LogisticRegression and Ridge only) is read too.

Nothing in a model file is executed or unpickled: the class is looked up in a fixed
table, parameters are plain JSON, arrays are numeric or text. Loading is bounded: the
size of every member is known from the ZIP directory and the metadata before a byte of
it is inflated (limits below), the metadata's size, nesting and numbers are capped
before it is parsed, and anything the metadata does not declare is refused. Arrays must
have the dtype and shape their role needs (coefficients: float32/float64, finite,
shapes consistent with ``n_features_in_`` and ``classes_``). Any violation, truncation,
corruption (each member's CRC is checked), other format or newer version raises
:class:`ModelFileError` naming the file and the problem.

Saving writes a uniquely named temporary file in the target's directory, fsyncs it and
renames it over the target (``os.replace``): an interrupted save leaves the old file,
and no other file is touched.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import json
import math
import os
import re
import struct
import tempfile
import zipfile
import zlib

import numpy as np

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "MAX_MODEL_BYTES", "ModelFileError", "load_model", "save_model"]

FORMAT_NAME = "tikhon-model"
FORMAT_VERSION = 2
_METADATA = "metadata.json"

# ---- limits. Each is checked before the bytes it bounds are inflated or parsed: a
# 1 MB file can inflate to gigabytes, so sizes come from the ZIP directory and the
# metadata's declarations, never from reading first.
MAX_METADATA_BYTES = 8 << 20  # parameters, scalars, labels: real files take a few KB; 8 MB holds 10^5 labels
MAX_JSON_DEPTH = 16  # the layout nests 7 deep (a CV's path records); json's parser recurses in C
MAX_JSON_NUMBER_CHARS = 100  # int64 needs 20 digits, a float's repr 24; int() of 10^5 digits is slow, then refused
MAX_MODEL_BYTES = 256 << 20  # default cap on all arrays together (2^25 float64); load_model(max_bytes=) raises it
MAX_MEMBERS = 4096  # ZIP entries (a 5-fold CV has ~80, whatever its grid); zipfile makes an object per entry
MAX_DIRECTORY_BYTES = MAX_MEMBERS * 1024  # the ZIP directory zipfile reads whole (our entries take ~60 bytes)
MAX_NPY_HEADER_BYTES = 4096  # an .npy header is one short dict (numpy itself allows 10000)
MAX_TEXT_CHARS = 4096  # one string: a label, a feature name, a solver name
_READ_CHUNK = 1 << 20  # arrays are inflated into their final buffer in pieces of this size

_ARRAY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")  # coef_, paths_.0.coefs
# dtype strings are matched before numpy parses them (np.dtype accepts structured and
# subarray forms and raises SyntaxError on some strings)
_ARRAY_DTYPE = re.compile(r"[<>|](f[48]|i[48]|b1|U[0-9]{1,5})")
_LABEL_DTYPE = re.compile(r"[<>|]([biuf][1248]|U[0-9]{1,5})")
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)


class ModelFileError(ValueError):
    """A model file cannot be read: truncated, corrupt, hostile, not a tikhon model, or a newer version."""


class _Invalid(Exception):
    """A problem with the file being read; ``load_model`` turns it into ModelFileError with the path."""


# What a damaged ZIP member can raise on reading: CRC mismatch, truncation, a flipped
# flag bit (NotImplementedError: "compressed patched data"; RuntimeError: "encrypted").
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError,
               RuntimeError, struct.error)


def _kinds():
    """The classes a model file may hold, by the name it stores (a fixed table: nothing is looked up)."""
    from .cv import LogisticRegressionCV, RidgeCV
    from .estimators import LogisticRegression, Ridge
    from .path import PathResult

    return {cls.__name__: cls for cls in (LogisticRegression, Ridge, LogisticRegressionCV, RidgeCV, PathResult)}


# ---- what each kind stores: attribute -> role (how it is encoded, decoded and checked)
_LINEAR = {
    "n_features_in_": "n_features", "feature_names_in_": "names", "coef_": "coef", "intercept_": "intercept",
    "n_iter_": "iterations", "converged_": "flag", "certificate_": "real", "objective_": "real",
    "duality_gap_": "real", "history_": "history", "backend_": "text", "solver_": "text",
}
_FITTED = {
    "LogisticRegression": {**_LINEAR, "classes_": "labels"},
    "Ridge": _LINEAR,
    "LogisticRegressionCV": {**_LINEAR, "classes_": "labels", "Cs_": "floats", "C_": "real_or_floats",
                             "cv_scores_": "floats", "train_scores_": "floats", "scores_": "floats_by_label",
                             "coefs_paths_": "floats_by_label", "paths_": "paths", "refit_path_": "path"},
    "RidgeCV": {**_LINEAR, "alphas_": "floats", "alpha_": "real_or_floats", "best_score_": "real_or_floats",
                "cv_method_": "text", "cv_results_": "floats",
                "cv_scores_": "floats", "train_scores_": "floats", "paths_": "paths", "refit_path_": "path"},
}
_PATH_FIELDS = {
    "model": "text", "param_name": "text", "grid": "floats", "lams": "floats", "coefs": "floats",
    "intercepts": "floats", "objectives": "floats", "n_iter": "counts", "certificates": "floats",
    "duality_gaps": "floats", "converged": "flags", "seconds": "floats", "criterion": "text",
    "method": "text", "solver": "text_or_none", "backend": "text", "decomposition_seconds": "real",
    "classes": "labels_or_none", "histories": "histories",
}
# array roles: the dtype kinds and sizes each may hold
_ARRAY_ROLES = {"coef": ("f", (4, 8)), "floats": ("f", (4, 8)), "counts": ("i", (4, 8)), "flags": ("b", (1,)),
                "names": ("U", None)}
_STORED_KINDS = {"f": (4, 8), "i": (4, 8), "b": (1,), "U": None}  # what any .npy member may hold


# ================================================================ JSON values
def _to_json(value, what):
    """A parameter or scalar as JSON (no arbitrary objects)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        if abs(int(value)) >= 10 ** (MAX_JSON_NUMBER_CHARS - 1):  # digits and sign within what load reads
            raise ValueError(f"cannot save {what}: {value} has more than {MAX_JSON_NUMBER_CHARS} digits")
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if np.isfinite(value):
            return value
        return {"__float__": repr(value)}  # nan / inf / -inf, which JSON cannot hold
    if isinstance(value, dict):  # e.g. class_weight {label: weight}: keys may be non-strings
        return {"__dict__": [[_to_json(k, what), _to_json(v, what)] for k, v in value.items()]}
    if isinstance(value, list):
        return [_to_json(v, what) for v in value]
    if isinstance(value, tuple):  # e.g. RidgeCV's default alphas: kept a tuple, as get_params gives it
        return {"__tuple__": [_to_json(v, what) for v in value]}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.ndim <= 1:  # e.g. Cs=np.logspace(..)
        return {"__ndarray__": value.dtype.str, "values": [_to_json(v, what) for v in value.tolist()]}
    splitter = _encode_splitter(value)
    if splitter is not None:
        return splitter
    raise TypeError(f"cannot save {what} of type {type(value).__name__} in a model file (only None, bool, "
                    f"int, float, str, lists, dicts and {'/'.join(_splitters())} splitters are stored)")


def _from_json(value):
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return _decode_real(value, "a number")
        if set(value) == {"__dict__"} and isinstance(value["__dict__"], list):
            pairs = value["__dict__"]
            if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
                raise _Invalid("a stored dict is not a list of [key, value] pairs")
            return {_hashable(_from_json(k)): _from_json(v) for k, v in pairs}
        if set(value) == {"__tuple__"} and isinstance(value["__tuple__"], list):
            return tuple(_from_json(v) for v in value["__tuple__"])
        if set(value) == {"__splitter__", "params"}:
            return _decode_splitter(value)
        if set(value) == {"__ndarray__", "values"}:
            return _decode_classes({"dtype": value["__ndarray__"], "values": value["values"]}, "a parameter array")
        raise _Invalid(f"unexpected JSON object with keys {sorted(value)[:5]}")
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def _splitters():
    """scikit-learn splitters a ``cv`` parameter may hold in a file (rebuilt from their parameters)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    return {"KFold": KFold, "StratifiedKFold": StratifiedKFold}


def _encode_splitter(value):
    table = _splitters()
    if table.get(type(value).__name__) is not type(value):
        return None
    params = {key: getattr(value, key) for key in ("n_splits", "shuffle", "random_state")}
    if not (params["random_state"] is None or isinstance(params["random_state"], (int, np.integer))):
        raise TypeError(f"cannot save a {type(value).__name__} whose random_state is a "
                        f"{type(params['random_state']).__name__}; give it an int or None")
    return {"__splitter__": type(value).__name__, "params": {k: _to_json(v, "cv") for k, v in params.items()}}


def _decode_splitter(value):
    cls = _splitters().get(value["__splitter__"])
    params = value["params"]
    if cls is None or not isinstance(params, dict) or set(params) - {"n_splits", "shuffle", "random_state"}:
        raise _Invalid(f"cv splitter {value['__splitter__']!r} is not one a model file may hold")
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise _Invalid(f"cv splitter {value['__splitter__']} has invalid parameters ({exc})") from None


def _encode_real(value, what):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"cannot save {what}: expected a real number, got {type(value).__name__}")
    return _to_json(float(value), what)


def _decode_real(raw, what):
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, dict) and set(raw) == {"__float__"} and raw["__float__"] in ("nan", "inf", "-inf"):
        return float(raw["__float__"])
    raise _Invalid(f"{what} is not a number")


# ---- parsing metadata.json within limits
def _json_depth(raw):
    """The deepest nesting of ``[`` and ``{`` in JSON text (strings skipped), in linear time."""
    codes = np.frombuffer(_JSON_STRING.sub(b'""', raw), dtype=np.uint8)
    steps = ((codes == ord("[")) | (codes == ord("{"))).astype(np.int64) - ((codes == ord("]")) | (codes == ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def _json_int(text):
    if len(text) > MAX_JSON_NUMBER_CHARS:
        raise _Invalid(f"{_METADATA} holds a number of {len(text)} digits (at most {MAX_JSON_NUMBER_CHARS})")
    return int(text)


def _json_float(text):
    if len(text) > MAX_JSON_NUMBER_CHARS:
        raise _Invalid(f"{_METADATA} holds a number of {len(text)} characters (at most {MAX_JSON_NUMBER_CHARS})")
    value = float(text)
    if not math.isfinite(value):
        raise _Invalid(f"{_METADATA} holds the number {text}, which overflows a float")
    return value


def _json_constant(name):
    raise _Invalid(f"{_METADATA} holds {name}, which is not JSON (non-finite numbers are stored as objects)")


def _json_object(pairs):
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _Invalid(f"{_METADATA} repeats a key in one object")
    return out


def _parse_metadata(raw):
    depth = _json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise _Invalid(f"{_METADATA} nests {depth} levels deep (at most {MAX_JSON_DEPTH})")
    try:
        return json.loads(raw.decode("utf-8"), parse_int=_json_int, parse_float=_json_float,
                          parse_constant=_json_constant, object_pairs_hook=_json_object)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Invalid(f"{_METADATA} is not valid JSON ({exc})") from None


# ================================================================ labels and arrays
def _encode_classes(classes):
    classes = np.asarray(classes)
    if classes.dtype.kind not in "biufUO":
        raise TypeError(f"cannot save classes_ of dtype {classes.dtype}")
    values = [_to_json(c.item() if hasattr(c, "item") else c, "a class label") for c in classes]
    return {"dtype": classes.dtype.str if classes.dtype.kind != "O" else "object", "values": values}


def _decode_classes(entry, what):
    if not (isinstance(entry, dict) and set(entry) == {"dtype", "values"} and isinstance(entry["values"], list)
            and isinstance(entry["dtype"], str)):
        raise _Invalid(f"{what} is not a list of labels with a dtype")
    values = [_from_json(v) for v in entry["values"]]
    if not all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
        raise _Invalid(f"{what} holds a label that is not a number or a string")
    if entry["dtype"] == "object":
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    try:
        if not _LABEL_DTYPE.fullmatch(entry["dtype"]):
            raise TypeError
        dtype = np.dtype(entry["dtype"])
        if dtype.str != entry["dtype"] or dtype.itemsize > 4 * MAX_TEXT_CHARS:
            raise TypeError
        return np.asarray(values, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise _Invalid(f"{what} cannot be read as labels of dtype {entry['dtype']!r}") from None


def _dtype_problem(dtype, kinds, what):
    """Why ``dtype`` may not be stored (``kinds``: kind -> allowed item sizes), or None."""
    dtype = np.dtype(dtype)
    sizes = kinds.get(dtype.kind, ())
    if dtype.fields is not None or dtype.subdtype is not None or sizes == () or (
            sizes is not None and dtype.itemsize not in sizes) or (
            dtype.kind == "U" and dtype.itemsize > 4 * MAX_TEXT_CHARS):
        wanted = {"f": "float32/float64", "i": "int32/int64", "b": "bool", "U": "text"}
        return f"{what} has dtype {dtype}; it must be {' or '.join(wanted[k] for k in kinds)}"
    return None


def _declared_spec(name, spec):
    """``(dtype, shape, nbytes)`` of a declaration ``{"dtype": str, "shape": [int, ...]}``."""
    if not (isinstance(spec, dict) and set(spec) == {"dtype", "shape"} and isinstance(spec["dtype"], str)
            and isinstance(spec["shape"], list) and len(spec["shape"]) <= 8
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in spec["shape"])):
        raise _Invalid(f"array {name} is not declared as {{dtype, shape}}")
    dtype = np.dtype(spec["dtype"]) if _ARRAY_DTYPE.fullmatch(spec["dtype"]) else None
    if dtype is None or dtype.str != spec["dtype"]:
        raise _Invalid(f"array {name} declares dtype {spec['dtype'][:20]!r}; model files hold float32/float64, "
                       "int32/int64, bool or text arrays")
    problem = _dtype_problem(dtype, _STORED_KINDS, f"array {name}")
    if problem:
        raise _Invalid(problem)
    shape = tuple(spec["shape"])
    return dtype, shape, math.prod(shape) * dtype.itemsize


class _Reader:
    """Reads the declared arrays of an open archive: sizes checked before inflating."""

    def __init__(self, archive, infos, declared, max_bytes):
        self.archive, self.infos, self.cache, self.specs = archive, infos, {}, {}
        if not isinstance(declared, dict):
            raise _Invalid("'arrays' is not an object")
        total = 0
        for name, spec in declared.items():
            if not (isinstance(name, str) and len(name) <= 200 and _ARRAY_NAME.fullmatch(name)):
                raise _Invalid(f"array name {name!r} is not valid")
            dtype, shape, nbytes = self.specs[name] = _declared_spec(f"{name}.npy", spec)
            total += nbytes
            if total > max_bytes:
                raise _Invalid(f"array {name}.npy ({dtype.str} {list(shape)}, {nbytes} bytes) makes the arrays "
                               f"larger than the {max_bytes}-byte limit (load_model(path, max_bytes=...) raises it)")
        members = set(infos) - {_METADATA}
        for member in sorted(members - {f"{name}.npy" for name in self.specs}):
            raise _Invalid(f"member {member!r} is not declared in {_METADATA}")
        for name in self.specs:
            if f"{name}.npy" not in members:
                raise _Invalid(f"array {name}.npy is missing")
            size, nbytes = infos[f"{name}.npy"].file_size, self.specs[name][2]
            if not nbytes < size <= nbytes + MAX_NPY_HEADER_BYTES:  # from the ZIP directory: nothing inflated
                raise _Invalid(f"array {name}.npy inflates to {size} bytes, but its declared dtype and shape "
                               f"take {nbytes} (plus a header of at most {MAX_NPY_HEADER_BYTES})")

    def array(self, ref, what):
        """The array a reference ``{"__array__": name}`` points to (read once)."""
        if not (isinstance(ref, dict) and "__array__" in ref and set(ref) <= {"__array__", "item"}
                and isinstance(ref["__array__"], str) and isinstance(ref.get("item", False), bool)):
            raise _Invalid(f"{what} is not an array reference")
        name = ref["__array__"]
        if name not in self.specs:
            raise _Invalid(f"{what} refers to array {name!r}, which is not declared")
        if name not in self.cache:
            self.cache[name] = self._read(name)
        value = self.cache[name]
        if ref.get("item"):
            if value.ndim != 0:
                raise _Invalid(f"{what} is stored as a scalar but array {name}.npy has shape {value.shape}")
            return value[()]
        return value

    def unused(self):
        return sorted(set(self.specs) - set(self.cache))

    def _read(self, name):
        member, info = f"{name}.npy", self.infos[f"{name}.npy"]
        dtype, shape, nbytes = self.specs[name]
        try:
            with self.archive.open(info) as stream:
                prefix = stream.read(min(info.file_size, MAX_NPY_HEADER_BYTES))
                header = io.BytesIO(prefix)
                got_shape, fortran, got_dtype = _npy_header(header, member)
                if got_dtype.str != dtype.str or tuple(got_shape) != shape:
                    raise _Invalid(f"array {member} holds {got_dtype.str} {list(got_shape)}, "
                                   f"metadata declares {dtype.str} {list(shape)}")
                start = header.tell()
                if start + nbytes != info.file_size:
                    raise _Invalid(f"array {member} is {info.file_size} bytes; its header and shape make "
                                   f"{start + nbytes}")
                flat = np.empty(math.prod(shape), dtype=dtype)
                buffer = memoryview(flat.view(np.uint8))
                _fill(buffer, prefix[start:], stream, member)
        except _ZIP_ERRORS as exc:  # CRC mismatch, truncated member, damaged header
            raise _Invalid(f"array {member} is corrupt ({type(exc).__name__}: {exc})") from None
        return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)


def _npy_header(header, member):
    """``(shape, fortran_order, dtype)`` from an .npy header (at most MAX_NPY_HEADER_BYTES)."""
    try:
        version = np.lib.format.read_magic(header)
        read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}[version]
        return read(header, max_header_size=MAX_NPY_HEADER_BYTES)
    except Exception as exc:  # numpy's parser of untrusted text also raises tokenize.TokenError, KeyError...
        raise _Invalid(f"array {member} has an unreadable .npy header ({type(exc).__name__}: {exc})") from None


def _fill(buffer, head, stream, member):
    """Copy ``head`` then the stream's next bytes into ``buffer``, exactly filling it."""
    buffer[:len(head)] = head
    filled = len(head)
    while filled < len(buffer):
        chunk = stream.read(min(_READ_CHUNK, len(buffer) - filled))
        if not chunk:
            raise _Invalid(f"array {member} is truncated")
        buffer[filled:filled + len(chunk)] = chunk
        filled += len(chunk)
    if stream.read(1):
        raise _Invalid(f"array {member} is longer than its shape")


class _Writer:
    """Collects the arrays of one file; an array object met twice is stored once."""

    def __init__(self):
        self.arrays, self._names = {}, {}

    def array(self, value, name, role=None, item=False):
        value = np.asarray(value)
        if value.dtype.kind == "O" and role == "names":  # feature names: strings
            value = value.astype(str)
        problem = _dtype_problem(value.dtype, dict([_ARRAY_ROLES[role]]) if role else _STORED_KINDS, name)
        if problem:
            raise TypeError(f"cannot save {problem}")
        if id(value) not in self._names:
            self._names[id(value)] = name
            self.arrays[name] = value  # held: ids stay unique while writing
        ref = {"__array__": self._names[id(value)]}
        return {**ref, "item": True} if item else ref


# ================================================================ roles: encode and decode
def _encode(role, value, name, writer):
    """One fitted value as JSON (arrays go to ``writer``) by its role."""
    if role in _ARRAY_ROLES:
        return writer.array(value, name, role)
    if role == "intercept":
        if isinstance(value, np.ndarray):
            return writer.array(value, name, "floats")
        if isinstance(value, np.floating):
            return writer.array(np.asarray(value), name, "floats", item=True)
        return _encode_real(value, name)
    if role == "iterations":
        return writer.array(value, name, "counts") if isinstance(value, np.ndarray) else _to_json(int(value), name)
    if role == "real":
        return _encode_real(value, name)
    if role == "real_or_floats":  # RidgeCV's alpha_: a float, or one per target (alpha_per_target)
        return writer.array(value, name, "floats") if isinstance(value, np.ndarray) else _encode_real(value, name)
    if role == "flag":
        return bool(value)
    if role == "n_features":
        return int(value)
    if role in ("text", "text_or_none"):
        if value is None and role == "text_or_none":
            return None
        if not isinstance(value, str):
            raise TypeError(f"cannot save {name}: expected a string, got {type(value).__name__}")
        return value
    if role in ("labels", "labels_or_none"):
        return None if value is None and role == "labels_or_none" else _encode_classes(value)
    if role == "history":
        return writer.array(np.asarray(value, dtype=np.float64).reshape(-1, 2), name, "floats")
    if role == "histories":
        if value is None:
            return None
        records = [np.asarray(h, dtype=np.float64).reshape(-1, 2) for h in value if h is not None]
        return {"lengths": [-1 if h is None else len(h) for h in value],
                "records": writer.array(np.concatenate(records) if records else np.zeros((0, 2)), name, "floats")}
    if role == "floats_by_label":  # keys: labels as classes_ holds them (numpy scalars)
        if isinstance(value, np.ndarray):  # use_legacy_attributes=False: one array
            return writer.array(value, name, "floats")
        keys = np.empty(len(value), dtype=object) if not value else np.asarray(list(value))
        return {"labels": _encode_classes(keys),
                "arrays": [writer.array(v, f"{name}.{i}", "floats") for i, v in enumerate(value.values())]}
    if role == "path":
        return _encode_path(value, name, writer)
    if role == "paths":
        return [_encode_path(p, f"{name}.{i}", writer) for i, p in enumerate(value)]
    raise AssertionError(role)


def _decode(role, raw, what, reader):
    """One fitted value from its JSON (and the arrays it refers to), by its role."""
    if role in _ARRAY_ROLES:
        value = _checked_array(reader.array(raw, what), role, what)
        return value.astype(object) if role == "names" else value  # scikit-learn keeps feature names as objects
    if role == "intercept":
        if isinstance(raw, dict) and "__array__" in raw:
            return _checked_array(reader.array(raw, what), "floats", what)
        return _decode_real(raw, what)
    if role == "iterations":
        if isinstance(raw, dict):
            return _checked_array(reader.array(raw, what), "counts", what)
        return _decode_count(raw, what, 0)
    if role == "real":
        return _decode_real(raw, what)
    if role == "real_or_floats":
        if isinstance(raw, dict) and "__array__" in raw:
            return _checked_array(reader.array(raw, what), "floats", what)
        return _decode_real(raw, what)
    if role == "flag":
        if not isinstance(raw, bool):
            raise _Invalid(f"{what} is not true or false")
        return raw
    if role == "n_features":
        return _decode_count(raw, what, 1)
    if role in ("text", "text_or_none"):
        if raw is None and role == "text_or_none":
            return None
        if not (isinstance(raw, str) and len(raw) <= MAX_TEXT_CHARS):
            raise _Invalid(f"{what} is not a string")
        return raw
    if role in ("labels", "labels_or_none"):
        return None if raw is None and role == "labels_or_none" else _decode_classes(raw, what)
    if role == "history":
        return _history(_decode("floats", raw, what, reader), what)
    if role == "histories":
        return None if raw is None else _decode_histories(raw, what, reader)
    if role == "floats_by_label":
        if isinstance(raw, dict) and "__array__" in raw:  # use_legacy_attributes=False: one array
            return _decode("floats", raw, what, reader)
        if not (isinstance(raw, dict) and set(raw) == {"labels", "arrays"} and isinstance(raw["arrays"], list)):
            raise _Invalid(f"{what} is not a dict of arrays by label")
        keys = _decode_classes(raw["labels"], what)
        if len(keys) != len(raw["arrays"]) or len(set(keys.tolist())) != len(keys):
            raise _Invalid(f"{what}: its labels and arrays do not pair up")
        return {k: _decode("floats", v, what, reader) for k, v in zip(keys, raw["arrays"])}
    if role == "path":
        return _decode_path(raw, what, reader)
    if role == "paths":
        if not isinstance(raw, list):
            raise _Invalid(f"{what} is not a list")
        return [_decode_path(p, f"{what}[{i}]", reader) for i, p in enumerate(raw)]
    raise AssertionError(role)


def _checked_array(value, role, what):
    problem = _dtype_problem(value.dtype, dict([_ARRAY_ROLES[role]]), what)
    if problem:
        raise _Invalid(problem)
    return value


def _decode_count(raw, what, least):
    if not (isinstance(raw, int) and not isinstance(raw, bool) and raw >= least):
        raise _Invalid(f"{what} is not an integer >= {least}")
    return raw


def _history(records, what):
    if records.ndim != 2 or records.shape[1] != 2:
        raise _Invalid(f"{what} has shape {records.shape}, expected (n, 2): (seconds, objective) pairs")
    return [(float(t), float(v)) for t, v in records]


def _decode_histories(raw, what, reader):
    if not (isinstance(raw, dict) and set(raw) == {"lengths", "records"} and isinstance(raw["lengths"], list)
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= -1 for n in raw["lengths"])):
        raise _Invalid(f"{what} is not a list of histories")
    records = _history(_decode("floats", raw["records"], what, reader), what)
    if sum(n for n in raw["lengths"] if n > 0) != len(records):
        raise _Invalid(f"{what}: the history lengths do not add up to the {len(records)} records")
    out, start = [], 0
    for n in raw["lengths"]:
        out.append(None if n < 0 else records[start:start + n])
        start += max(n, 0)
    return out


def _encode_path(path, name, writer):
    fields = {}
    for field in dataclasses.fields(path):
        role = _PATH_FIELDS.get(field.name)
        if role is None:
            raise TypeError(f"tikhon._io does not know PathResult field {field.name!r}: add it to _PATH_FIELDS")
        fields[field.name] = _encode(role, getattr(path, field.name), f"{name}.{field.name}" if name else field.name,
                                     writer)
    return {"__record__": "PathResult", "fields": fields}


def _decode_path(raw, what, reader):
    if not (isinstance(raw, dict) and set(raw) == {"__record__", "fields"} and raw["__record__"] == "PathResult"
            and isinstance(raw["fields"], dict)):
        raise _Invalid(f"{what} is not a PathResult record")
    return _build_path(raw["fields"], what, reader)


def _build_path(fields, what, reader):
    cls = _kinds()["PathResult"]
    known = {f.name: f for f in dataclasses.fields(cls)}
    for name in fields:
        if name not in known or name not in _PATH_FIELDS:
            raise _Invalid(f"{what} has the unknown field {name!r}")
    missing = [n for n, f in known.items() if n not in fields
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise _Invalid(f"{what} lacks the fields {missing}")
    path = cls(**{name: _decode(_PATH_FIELDS[name], raw, f"{what}.{name}", reader) for name, raw in fields.items()})
    problem = _path_problem(path)
    if problem:
        raise _Invalid(f"{what}: {problem}")
    return path


# ================================================================ consistency of what was read (or is saved)
def _real_problem(value, what, finite):
    """Why ``value`` is not a real float array (finite if asked), or None."""
    value = np.asarray(value)
    problem = _dtype_problem(value.dtype, {"f": (4, 8)}, what)
    if problem is None and finite and not _all_finite(value):
        problem = f"{what} holds NaN or infinity"
    return problem


def _all_finite(value):
    """Without an array-sized temporary (min and max propagate NaN)."""
    return value.size == 0 or bool(np.isfinite(value.min()) and np.isfinite(value.max()))


def _linear_problem(est, classifier):
    """Why a linear model's attributes contradict each other, or None."""
    required = ("n_features_in_", "coef_", "intercept_") + (("classes_",) if classifier else ())
    for attr in required:
        if not hasattr(est, attr):
            return f"{attr} is missing"
    d, coef, intercept = est.n_features_in_, np.asarray(est.coef_), np.asarray(est.intercept_)
    problem = _real_problem(coef, "coef_", True) or _real_problem(intercept, "intercept_", True)
    if problem:
        return problem
    if classifier:
        classes = np.asarray(est.classes_)
        if classes.ndim != 1 or classes.size < 2 or len(set(classes.tolist())) != classes.size:
            return f"classes_ must list at least two distinct labels, got {classes.size}"
        rows = 1 if classes.size == 2 else classes.size
        if coef.shape != (rows, d) or intercept.shape != (rows,):
            return (f"coef_ {coef.shape} and intercept_ {intercept.shape} do not fit {classes.size} classes and "
                    f"{d} features: expected ({rows}, {d}) and ({rows},)")
    elif not ((coef.shape == (d,) and intercept.ndim == 0)
              or (coef.ndim == 2 and coef.shape[1] == d and coef.shape[0] >= 1 and intercept.shape == coef.shape[:1])):
        return (f"coef_ {coef.shape} and intercept_ {intercept.shape} do not fit {d} features: expected ({d},) "
                f"and a scalar, or (n_targets, {d}) and (n_targets,)")
    names = getattr(est, "feature_names_in_", None)
    if names is not None and np.shape(names) != (d,):
        return f"feature_names_in_ has shape {np.shape(names)}, expected ({d},)"
    for path in [*getattr(est, "paths_", []), getattr(est, "refit_path_", None)]:
        if path is not None and path.coefs.shape[-1] != d:
            return f"a stored path has {path.coefs.shape[-1]} features, the model {d}"
    return None


def _path_problem(path):
    """Why a PathResult's fields contradict each other, or None. Shapes: ``coefs``
    (n_grid, d) and ``intercepts`` (n_grid,) for one output, (n_grid, K, d) and
    (n_grid, K) for ``K`` (three or more classes, or several targets); ``grid`` and
    ``lams`` (n_grid,), or (n_grid, K) for per-output penalties."""
    model_param = {"logistic": "C", "ridge": "alpha"}
    if model_param.get(path.model) != path.param_name or path.method not in ("warm_start", "eigh"):
        return f"model {path.model!r}, param_name {path.param_name!r}, method {path.method!r} are not valid"
    coefs = np.asarray(path.coefs)
    problem = _real_problem(coefs, "coefs", True) or _real_problem(path.intercepts, "intercepts", True)
    if problem is None and (coefs.ndim not in (2, 3) or min(coefs.shape) < 1):
        problem = f"coefs has shape {coefs.shape}, expected (n_grid, n_features) or (n_grid, n_outputs, n_features)"
    if problem is None and np.shape(path.intercepts) != coefs.shape[:-1]:
        problem = f"intercepts has shape {np.shape(path.intercepts)}, expected {coefs.shape[:-1]} like coefs"
    if problem:
        return problem
    n_grid = coefs.shape[0]
    per_output = (n_grid, coefs.shape[1]) if coefs.ndim == 3 else None
    kinds = {"f": "floats", "i": "counts", "b": "flags"}
    for name, kind in (("grid", "f"), ("lams", "f"), ("objectives", "f"), ("n_iter", "i"),
                       ("certificates", "f"), ("duality_gaps", "f"), ("converged", "b"), ("seconds", "f")):
        value = np.asarray(getattr(path, name))
        problem = _dtype_problem(value.dtype, dict([_ARRAY_ROLES[kinds[kind]]]), name)
        allowed = [(n_grid,), per_output] if name in ("grid", "lams") else [(n_grid,)]
        if problem or value.shape not in allowed:
            return problem or f"{name} has shape {value.shape}, expected ({n_grid},) like coefs"
    if not (_all_finite(np.asarray(path.grid)) and np.all(np.asarray(path.grid) > 0)):
        return "grid holds a value that is not finite and positive"
    classes = path.classes
    if (path.model == "ridge") != (classes is None) or (
            classes is not None and (np.ndim(classes) != 1 or len(set(np.asarray(classes).tolist())) < 2)):
        return "classes must be two or more distinct labels for a logistic path, None for ridge"
    if classes is not None and (coefs.ndim == 3) != (len(classes) > 2) or (
            coefs.ndim == 3 and classes is not None and coefs.shape[1] != len(classes)):
        return (f"coefs has shape {coefs.shape} for {len(classes)} classes: expected (n_grid, n_features) for two, "
                "(n_grid, n_classes, n_features) for more")
    if path.histories is not None and len(path.histories) != n_grid:
        return f"histories has {len(path.histories)} entries, expected {n_grid}"
    return None


def _problem(kind, obj):
    if kind == "PathResult":
        return _path_problem(obj)
    return _linear_problem(obj, kind.startswith("LogisticRegression"))


# ================================================================ save
def save_model(obj, path):
    """Write a fitted tikhon estimator or a :class:`tikhon.PathResult` to ``path``.

    The file (see the module docstring) is written to a new temporary file beside
    ``path``, fsynced and renamed over ``path``: an interrupted save leaves ``path`` as
    it was and touches no other file. Raises ``TypeError`` for what cannot be stored
    (another class, a callable parameter), ``ValueError`` for a model whose attributes
    are inconsistent or not finite or too large for the file's limits, and ``OSError``
    naming ``path`` when it cannot be written. Arrays beyond :data:`MAX_MODEL_BYTES` are
    written, and read back with ``load_model(path, max_bytes=...)``. Returns ``path``.
    """
    kind = _kind_of(obj)
    if kind != "PathResult":
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(obj)
    path = os.fspath(path)
    problem = _problem(kind, obj)
    if problem:
        raise ValueError(f"cannot save this {kind} to {path!r}: {problem}")
    metadata, arrays = _metadata(kind, obj)
    text = json.dumps(metadata, indent=1, sort_keys=True, allow_nan=False).encode()
    if len(text) > MAX_METADATA_BYTES or len(arrays) >= MAX_MEMBERS:  # what load_model would refuse
        raise ValueError(f"cannot save this {kind} to {path!r}: its metadata takes {len(text)} bytes and "
                         f"{len(arrays)} arrays, more than a model file holds ({MAX_METADATA_BYTES} bytes, "
                         f"{MAX_MEMBERS - 1} arrays)")

    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(_METADATA, text)
            for name, value in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=value.nbytes > (1 << 30)) as member:
                    np.lib.format.write_array(member, np.asarray(value, order="C"), allow_pickle=False)

    _write_atomically(path, write)
    return path


def _kind_of(obj):
    kinds = _kinds()
    name = type(obj).__name__
    if kinds.get(name) is not type(obj):
        raise TypeError(f"save_model writes tikhon estimators and path results ({', '.join(kinds)}), "
                        f"got {type(obj).__name__}")
    return name


def _metadata(kind, obj):
    """``(metadata dict, {name: array})`` of ``obj``."""
    from . import __version__

    writer = _Writer()
    if kind == "PathResult":
        params, fitted = {}, _encode_path(obj, "", writer)["fields"]
    else:
        params = {key: _to_json(value, f"parameter {key!r}") for key, value in obj.get_params().items()}
        fitted = {attr: _encode(role, getattr(obj, attr), attr, writer)
                  for attr, role in _FITTED[kind].items() if hasattr(obj, attr)}
    metadata = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "estimator": kind, "tikhon_version": __version__,
        "params": params, "fitted": fitted,
        "arrays": {name: {"dtype": a.dtype.str, "shape": list(a.shape)} for name, a in writer.arrays.items()},
    }
    return metadata, writer.arrays


def _write_atomically(path, write):
    """Run ``write(file)`` on a new temporary file beside ``path``, then rename it to ``path``."""
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "cannot write a model file over a directory", path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot write model file here ({exc.strerror})", path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _new_file_mode(path))
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(exc, OSError):
            raise type(exc)(exc.errno, f"cannot write model file ({exc.strerror or exc})", path) from exc
        raise
    _fsync_directory(directory)


def _new_file_mode(path):
    """An existing file's permissions, else those ``open`` would give (mkstemp's are 0600)."""
    with contextlib.suppress(OSError):
        return os.stat(path).st_mode & 0o7777
    return 0o666 & ~_umask()


def _umask():
    """The process umask, read without setting it where Linux allows (os.umask is process-wide)."""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(directory):
    """Make the rename durable (where directories can be opened: not on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ================================================================ load
def load_model(path, *, max_bytes=MAX_MODEL_BYTES):
    """Read a file written by :func:`save_model`: a fitted estimator or a PathResult,
    as the file's ``estimator`` entry says.

    ``max_bytes`` caps the arrays' total size (default :data:`MAX_MODEL_BYTES`); it is
    checked, with every other limit, before anything is inflated. Raises
    :class:`ModelFileError` (a ``ValueError``) for a file that breaks a rule, is
    truncated or corrupt, of another format or a newer format version;
    ``FileNotFoundError`` when ``path`` does not exist.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path!r} does not exist")
    try:
        return _load(path, max_bytes)
    except _Invalid as exc:
        problem = " ".join(str(exc).split())  # one line
        raise ModelFileError(f"cannot read model file {path!r}: {problem}") from None


def _load(path, max_bytes):
    _check_zip_directory(path)
    try:
        archive = zipfile.ZipFile(path)
    except _ZIP_ERRORS as exc:
        raise _Invalid(f"not a tikhon model file or truncated ({exc})") from None
    with archive:
        infos = _members(archive)
        metadata = _read_metadata(archive, infos)
        reader = _Reader(archive, infos, metadata["arrays"], max_bytes)
        try:
            obj = _build(metadata, reader)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:  # a gap in the checks
            raise _Invalid(f"malformed model ({type(exc).__name__}: {exc})") from None
        unused = reader.unused()
        if unused:
            raise _Invalid(f"arrays {unused} are declared but not used")
        return obj


def _check_zip_directory(path):
    """Refuse a ZIP directory listing more entries than a model has before zipfile parses
    it (one object per entry: a small file can list millions). zipfile's own reader of the
    end record is private; without it zipfile's parse is the only check."""
    end_record = getattr(zipfile, "_EndRecData", None)
    if end_record is None:
        return
    try:
        with open(path, "rb") as f:
            end = end_record(f)
    except _ZIP_ERRORS:
        return  # zipfile reports it
    if end is None:
        return
    entries, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
    if entries > MAX_MEMBERS or size > MAX_DIRECTORY_BYTES:
        raise _Invalid(f"its ZIP directory lists {entries} members in {size} bytes; a model file has at most "
                       f"{MAX_MEMBERS} members")


def _members(archive):
    infos = archive.infolist()
    by_name = {info.filename: info for info in infos}
    if len(by_name) != len(infos):
        raise _Invalid("a member name appears twice")
    for info in infos:
        if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Invalid(f"member {info.filename!r} is encrypted or compressed by a method model files do not use")
    return by_name


def _read_metadata(archive, infos):
    info = infos.get(_METADATA)
    if info is None:
        raise _Invalid(f"no {_METADATA} inside: not a tikhon model file")
    if info.file_size > MAX_METADATA_BYTES:  # from the ZIP directory, before inflating it
        raise _Invalid(f"{_METADATA} inflates to {info.file_size} bytes, larger than the {MAX_METADATA_BYTES} "
                       "a model's metadata may take")
    try:
        with archive.open(info) as stream:
            raw = stream.read(MAX_METADATA_BYTES + 1)
    except _ZIP_ERRORS as exc:  # CRC mismatch, truncated member, damaged header
        raise _Invalid(f"corrupt {_METADATA} ({exc})") from None
    metadata = _parse_metadata(raw)
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise _Invalid(f"format is {metadata.get('format') if isinstance(metadata, dict) else None!r}, "
                       f"expected {FORMAT_NAME!r}")
    version = metadata.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _Invalid(f"format_version {version!r} is not an integer")
    if version > FORMAT_VERSION:
        raise _Invalid(f"format version {version} is newer than this tikhon reads ({FORMAT_VERSION}); it was "
                       f"written by tikhon {metadata.get('tikhon_version', '?')}: upgrade tikhon")
    if version < 1:
        raise _Invalid(f"format version {version} is not valid")
    keys = {"format", "format_version", "estimator", "tikhon_version", "params", "fitted", "arrays"}
    if version == 1:
        keys.add("classes")
    unknown = set(metadata) - keys
    if unknown:
        raise _Invalid(f"{_METADATA} has unknown keys {sorted(unknown)}")
    for key in ("estimator", "fitted", "arrays"):
        if key not in metadata:
            raise _Invalid(f"{_METADATA} lacks {key!r}")
    return _from_version_1(metadata) if version == 1 else metadata


def _from_version_1(metadata):
    """Version 1's layout in version 2's: each array was the attribute of its own name
    (``scalar``: a float), and the classes had a top-level entry."""
    fitted, arrays = metadata.get("fitted"), metadata.get("arrays")
    if not isinstance(fitted, dict) or not isinstance(arrays, dict):
        raise _Invalid("'fitted' or 'arrays' is not an object")
    fitted, specs = dict(fitted), {}
    for name, spec in arrays.items():
        spec = dict(spec) if isinstance(spec, dict) else spec
        scalar = spec.pop("scalar", False) if isinstance(spec, dict) else False
        fitted[name] = {"__array__": name, "item": True} if scalar is True else {"__array__": name}
        specs[name] = spec
    if metadata.get("classes") is not None:
        fitted["classes_"] = metadata["classes"]
    return {**{k: v for k, v in metadata.items() if k != "classes"}, "fitted": fitted, "arrays": specs}


def _build(metadata, reader):
    kinds = _kinds()
    kind, fitted, params = metadata["estimator"], metadata["fitted"], metadata.get("params", {})
    if not isinstance(kind, str) or kind not in kinds:
        raise _Invalid(f"unknown estimator {kind!r}; expected one of {', '.join(kinds)}")
    if not isinstance(fitted, dict) or not isinstance(params, dict):
        raise _Invalid("'fitted' or 'params' is not an object")
    if kind == "PathResult":
        if params:
            raise _Invalid("a PathResult has no parameters")
        return _build_path(fitted, "the path", reader)
    cls = kinds[kind]
    params = {key: _from_json(value) for key, value in params.items()}
    unknown = set(params) - set(cls().get_params())
    if unknown:
        raise _Invalid(f"unknown {kind} parameters {sorted(unknown)}")
    estimator = cls(**params)
    roles = _FITTED[kind]
    for attr, raw in fitted.items():
        if attr not in roles:
            raise _Invalid(f"unexpected fitted attribute {attr!r} for a {kind}")
        setattr(estimator, attr, _decode(roles[attr], raw, attr, reader))
    problem = _problem(kind, estimator)
    if problem:
        raise _Invalid(problem)
    return estimator
