"""Hostile model files: each is refused with ``ModelFileError`` (a one-line message naming
the file and the problem), in bounded memory, before anything large is inflated.

Every file here is a valid saved model with one thing changed, so each test checks
one rule of :mod:`tikhon._io`. The zip bombs (1 GiB members in a 1 MB file) are loaded
in a subprocess under an address-space limit (so a loader that inflates them fails
with MemoryError instead of taking the machine's memory) and with tracemalloc
measuring the peak of what loading allocated.
"""
from __future__ import annotations

import io
import json
import re
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib

import numpy as np
import pytest

import tikhon
from tikhon._io import ModelFileError, load_model

GIB = 1 << 30


# ---------------------------------------------------------------- crafting files
@pytest.fixture(scope="module")
def data():
    return tikhon.datasets.make_classification(300, 7, seed=3)


@pytest.fixture(scope="module")
def logistic_file(tmp_path_factory, data):
    X, y = data
    return tikhon.LogisticRegression(backend="numpy").fit(X, y).save(tmp_path_factory.mktemp("m") / "lr.npz")


@pytest.fixture(scope="module")
def ridge_file(tmp_path_factory, data):
    X, y = data
    return tikhon.Ridge(backend="numpy").fit(X, y).save(tmp_path_factory.mktemp("m") / "ridge.npz")


def _npy(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=array.dtype.hasobject)
    return buffer.getvalue()


def _npy_header(dtype, shape):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": tuple(shape)})
    return buffer.getvalue()


def _read(path):
    """``(metadata dict, {member: bytes})`` of a model file."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    return json.loads(members.pop("metadata.json")), members


def _declare(meta, name, dtype, shape):
    """Declare array ``name`` in the metadata (and point the attribute at it)."""
    meta["arrays"][name] = {**meta["arrays"].get(name, {}), "dtype": np.dtype(dtype).str, "shape": list(shape)}
    if meta["format_version"] >= 2:
        meta["fitted"][name] = {"__array__": name}


def _set_classes(meta, values):
    entry = {"dtype": np.asarray(values).dtype.str, "values": list(np.asarray(values).tolist())}
    if "classes" in meta:  # format 1
        meta["classes"] = entry
    else:
        meta["fitted"]["classes_"] = entry


def _craft(base, target, arrays=None, edit=None, extra=None, metadata_bytes=None):
    """Copy model file ``base`` to ``target`` with arrays replaced (and declared as
    they are), the metadata edited, extra members added, or raw metadata bytes."""
    meta, members = _read(base)
    for name, value in (arrays or {}).items():
        value = np.asarray(value)
        members[f"{name}.npy"] = _npy(value)
        _declare(meta, name, value.dtype, value.shape)
    if edit:
        edit(meta)
    members.update(extra or {})
    raw = metadata_bytes if metadata_bytes is not None else json.dumps(meta).encode()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", raw)
        for name, value in members.items():
            archive.writestr(name, value)
    return target


def _refused(path, match=None):
    """Loading ``path`` raises ModelFileError with a one-line message naming the file."""
    with pytest.raises(ModelFileError, match=match) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    return message


# ---------------------------------------------------------------- zip bombs
@pytest.fixture(scope="session")
def gib_of_zeros():
    """One raw deflate stream of 1 GiB of zero bytes (about 1 MB), made once."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    chunk = bytes(16 << 20)
    parts = [compressor.compress(chunk) for _ in range(GIB // len(chunk))]
    return b"".join(parts) + compressor.flush()


def _bomb_member(prefix, zeros_stream):
    """``(compressed, crc, size)`` of ``prefix`` followed by 1 GiB of zeros: the prefix is
    deflated and sync-flushed (byte-aligned, not final), then the shared zero stream."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_SYNC_FLUSH)
    crc, chunk = zlib.crc32(prefix), bytes(16 << 20)
    for _ in range(GIB // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    return head + zeros_stream, crc, len(prefix) + GIB


def _write_raw_zip(target, entries):
    """A ZIP of already deflated members: ``entries`` is ``[(name, compressed, crc, size)]``."""
    local, central = bytearray(), bytearray()
    for name, compressed, crc, size in entries:
        name_bytes = name.encode()
        fields = struct.pack("<HHHHHLLLHH", 20, 0, 8, 0, 0x21, crc, len(compressed), size, len(name_bytes), 0)
        central += b"PK\x01\x02" + struct.pack("<H", 20) + fields + struct.pack("<HHHLL", 0, 0, 0, 0, len(local))
        central += name_bytes
        local += b"PK\x03\x04" + fields + name_bytes + compressed
    end = b"PK\x05\x06" + struct.pack("<HHHHLLH", 0, 0, len(entries), len(entries), len(central), len(local), 0)
    with open(target, "wb") as f:
        f.write(bytes(local) + bytes(central) + end)
    return target


def _deflated(raw):
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(raw) + compressor.flush(), zlib.crc32(raw), len(raw)


def _bomb_file(base, target, zeros_stream, bomb, prefix, edit=None):
    """``base`` with member ``bomb`` replaced by ``prefix`` + 1 GiB of zeros."""
    meta, members = _read(base)
    if edit:
        edit(meta)
    entries = [("metadata.json", *_deflated(json.dumps(meta).encode()))]
    entries += [(name, *_deflated(raw)) for name, raw in members.items() if name != bomb]
    if bomb == "metadata.json":
        entries = entries[1:]
    entries.append((bomb, *_bomb_member(prefix, zeros_stream)))
    return _write_raw_zip(target, entries)


_CHILD = textwrap.dedent("""
    import json, resource, sys, tracemalloc
    from tikhon._io import load_model

    def vm_bytes():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))

    # 512 MB of address space beyond what the imports took: a loader that inflates the
    # bomb gets MemoryError here instead of gigabytes of the shared machine's memory
    resource.setrlimit(resource.RLIMIT_AS, (vm_bytes() + (512 << 20), resource.RLIM_INFINITY))
    tracemalloc.start()
    try:
        load_model(sys.argv[1])
        outcome = "loaded"
    except Exception as exc:
        outcome = type(exc).__name__ + ": " + str(exc)
    print(json.dumps({"outcome": outcome, "peak": tracemalloc.get_traced_memory()[1]}))
""")


def _load_bounded(path):
    """Load ``path`` in a subprocess under a memory limit: ``(outcome, peak bytes allocated)``."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the address-space limit of the bomb tests needs Linux")
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["outcome"], result["peak"]


def _assert_bounded_refusal(path, match):
    outcome, peak = _load_bounded(path)
    assert path.stat().st_size < 2 << 20  # a 1 MB file...
    assert outcome.startswith("ModelFileError") and match in outcome, outcome
    assert peak < 8 << 20, f"loading allocated {peak / 2**20:.0f} MB"  # ...refused using a few MB


def test_bomb_with_consistent_metadata(tmp_path, logistic_file, gib_of_zeros):
    """A coef_ of 2^27 float64 (1 GiB), declared so everywhere: more than MAX_MODEL_BYTES."""
    d = GIB // 8

    def declare(meta):
        _declare(meta, "coef_", "<f8", (1, d))
        meta["fitted"]["n_features_in_"] = d

    # the header is followed by exactly 1 GiB: the array's bytes
    path = _bomb_file(logistic_file, tmp_path / "bomb.npz", gib_of_zeros, "coef_.npy", _npy_header("<f8", (1, d)),
                      edit=declare)
    _assert_bounded_refusal(path, "larger than")


def test_bomb_behind_a_valid_small_array(tmp_path, logistic_file, gib_of_zeros):
    """coef_.npy holds the declared (1, 7) array, then 1 GiB of trailing zeros."""
    _, members = _read(logistic_file)
    path = _bomb_file(logistic_file, tmp_path / "bomb.npz", gib_of_zeros, "coef_.npy", members["coef_.npy"])
    _assert_bounded_refusal(path, "coef_.npy")


def test_bomb_in_metadata(tmp_path, logistic_file, gib_of_zeros):
    """metadata.json inflates to 1 GiB."""
    with zipfile.ZipFile(logistic_file) as archive:
        raw = archive.read("metadata.json")
    path = _bomb_file(logistic_file, tmp_path / "bomb.npz", gib_of_zeros, "metadata.json", raw)
    _assert_bounded_refusal(path, "metadata.json")


@pytest.mark.parametrize("declared", ["small", "huge"])
def test_npy_header_claims_8_tib(tmp_path, logistic_file, declared):
    """An .npy header claiming (1, 2^40) float64 = 8 TiB, declared (1, 7) or (1, 2^40)."""
    d = 1 << 40
    header = _npy_header("<f8", (1, d))

    def declare(meta):
        if declared == "huge":
            _declare(meta, "coef_", "<f8", (1, d))
            meta["fitted"]["n_features_in_"] = d

    path = _craft(logistic_file, tmp_path / "tib.npz", edit=declare, extra={"coef_.npy": header + bytes(56)})
    outcome, peak = _load_bounded(path)
    assert outcome.startswith("ModelFileError") and "coef_.npy" in outcome, outcome
    assert peak < 8 << 20


def test_too_many_members_refused_before_parsing_them(tmp_path, logistic_file):
    from tikhon._io import MAX_MEMBERS

    extra = {f"x{i}": b"" for i in range(MAX_MEMBERS + 1)}
    _refused(_craft(logistic_file, tmp_path / "many.npz", extra=extra), "members")


# ---------------------------------------------------------------- metadata JSON
def _meta_text(path):
    with zipfile.ZipFile(path) as archive:
        return archive.read("metadata.json").decode()


def test_deeply_nested_json(tmp_path, logistic_file):
    """100000 nested lists in a parameter: RecursionError in json before."""
    deep = "[" * 100_000 + "]" * 100_000
    text = _meta_text(logistic_file).replace('"class_weight": null', f'"class_weight": {deep}')
    assert deep in text
    _refused(_craft(logistic_file, tmp_path / "deep.npz", metadata_bytes=text.encode()), "nest")


def test_moderately_nested_json_beyond_the_limit(tmp_path, logistic_file):
    from tikhon._io import MAX_JSON_DEPTH

    deep = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    text = _meta_text(logistic_file).replace('"class_weight": null', f'"class_weight": {deep}')
    _refused(_craft(logistic_file, tmp_path / "deep.npz", metadata_bytes=text.encode()), "nest")


def test_huge_json_integer(tmp_path, logistic_file):
    """A 100000-digit integer (n_features_in_; n_iter_ is an array since issue 17): ValueError
    (int digits limit) before."""
    text = json.dumps(json.loads(_meta_text(logistic_file)))
    text = re.sub(r'"n_features_in_": \d+', '"n_features_in_": ' + "9" * 100_000, text)
    assert "9" * 100_000 in text
    _refused(_craft(logistic_file, tmp_path / "int.npz", metadata_bytes=text.encode()), "number")


@pytest.mark.parametrize("case", ["duplicate key", "NaN literal", "overflowing float", "top-level list",
                                  "unknown top-level key"])
def test_other_bad_json(tmp_path, logistic_file, case):
    text = json.dumps(json.loads(_meta_text(logistic_file)))
    text = {
        "duplicate key": re.sub(r'"n_features_in_": (\d+)', r'"n_features_in_": \1, "n_features_in_": 6', text),
        "NaN literal": text.replace('"objective_": ', '"objective_": NaN, "x": '),
        "overflowing float": text.replace('"certificate_": ', '"certificate_": 1e999, "y": '),
        "top-level list": "[" + text + "]",
        "unknown top-level key": text[:-1] + ', "surprise": 1}',
    }[case]
    _refused(_craft(logistic_file, tmp_path / "j.npz", metadata_bytes=text.encode()))


# ---------------------------------------------------------------- arrays: dtype and values
@pytest.mark.parametrize("dtype", ["complex128", "U3", "object", "int64", "bool", "float16", "S8",
                                   "structured"])
def test_coef_dtype_must_be_real_float(tmp_path, logistic_file, dtype):
    if dtype == "structured":
        coef = np.zeros((1, 7), dtype=[("a", "<f8")])
    elif dtype == "object":
        coef = np.array([[0.5] * 7], dtype=object)
    else:
        coef = np.ones((1, 7)).astype(dtype)
    _refused(_craft(logistic_file, tmp_path / "dtype.npz", arrays={"coef_": coef}), "coef_")


@pytest.mark.parametrize("case", ["all nan", "one nan", "inf", "-inf"])
def test_coef_must_be_finite(tmp_path, logistic_file, data, case):
    coef = tikhon.load(logistic_file).coef_.copy()
    if case == "all nan":
        coef[:] = np.nan
    else:
        coef[0, 3] = {"one nan": np.nan, "inf": np.inf, "-inf": -np.inf}[case]
    _refused(_craft(logistic_file, tmp_path / "nan.npz", arrays={"coef_": coef}), "coef_")


def test_intercept_must_be_finite(tmp_path, logistic_file):
    _refused(_craft(logistic_file, tmp_path / "nan.npz", arrays={"intercept_": np.array([np.nan])}),
             "intercept_")


def test_float32_coef_is_accepted(tmp_path, logistic_file, data):
    """The rule is real float, not float64 (coef_ may follow X's dtype)."""
    model = tikhon.load(logistic_file)
    path = _craft(logistic_file, tmp_path / "f32.npz", arrays={"coef_": model.coef_.astype(np.float32)})
    loaded = load_model(path)
    assert loaded.coef_.dtype == np.float32
    np.testing.assert_array_equal(loaded.coef_, model.coef_.astype(np.float32))


# ---------------------------------------------------------------- shapes against the metadata
LOGISTIC_SHAPES = {
    "coef 2 rows, 2 classes": dict(arrays={"coef_": np.zeros((2, 7)), "intercept_": np.zeros(2)}),
    "coef 1-D": dict(arrays={"coef_": np.zeros(7)}),
    "coef 3-D": dict(arrays={"coef_": np.zeros((1, 1, 7))}),
    "coef 6 features, n_features_in_ 7": dict(arrays={"coef_": np.zeros((1, 6))}),
    "intercept 2 for 1 row": dict(arrays={"intercept_": np.zeros(2)}),
    "intercept 2-D": dict(arrays={"intercept_": np.zeros((1, 1))}),
    "3 classes, 1 row": dict(edit=lambda m: _set_classes(m, [0.0, 1.0, 2.0])),
    "1 class": dict(edit=lambda m: _set_classes(m, [1.0]), arrays={"coef_": np.zeros((1, 7))}),
    "duplicate classes": dict(edit=lambda m: _set_classes(m, [1.0, 1.0])),
    "3 classes, 2 rows": dict(edit=lambda m: _set_classes(m, [0.0, 1.0, 2.0]),
                              arrays={"coef_": np.zeros((2, 7)), "intercept_": np.zeros(2)}),
    "feature names 3 for 7 features": dict(arrays={"feature_names_in_": np.array(["a", "b", "c"])}),
    "history 3 columns": dict(arrays={"history_": np.zeros((4, 3))}),
    "n_features_in_ 0": dict(edit=lambda m: m["fitted"].update(n_features_in_=0),
                             arrays={"coef_": np.zeros((1, 0))}),
    "n_features_in_ a string": dict(edit=lambda m: m["fitted"].update(n_features_in_="7")),
    "converged_ a list": dict(edit=lambda m: m["fitted"].update(converged_=[1])),
    "n_iter_ negative": dict(edit=lambda m: m["fitted"].update(n_iter_=-1)),
}


@pytest.mark.parametrize("case", list(LOGISTIC_SHAPES))
def test_logistic_shapes_must_match_metadata(tmp_path, logistic_file, case):
    _refused(_craft(logistic_file, tmp_path / "shape.npz", **LOGISTIC_SHAPES[case]))


RIDGE_SHAPES = {
    "coef (d,), intercept (2,)": dict(arrays={"intercept_": np.zeros(2)}),
    "coef (2, d), scalar intercept": dict(arrays={"coef_": np.zeros((2, 7))}),
    "coef (2, d), intercept (3,)": dict(arrays={"coef_": np.zeros((2, 7)), "intercept_": np.zeros(3)}),
    "coef (d - 1,)": dict(arrays={"coef_": np.zeros(6)}),
    "coef 3-D": dict(arrays={"coef_": np.zeros((1, 1, 7)), "intercept_": np.zeros(1)}),
    "nan intercept": dict(arrays={"intercept_": np.array(np.nan)}),
    "ridge with classes": dict(edit=lambda m: _set_classes(m, [0.0, 1.0])),
}


@pytest.mark.parametrize("case", list(RIDGE_SHAPES))
def test_ridge_shapes_must_match_metadata(tmp_path, ridge_file, case):
    _refused(_craft(ridge_file, tmp_path / "shape.npz", **RIDGE_SHAPES[case]))


def test_array_contradicting_its_declaration(tmp_path, logistic_file):
    """The .npy header says (1, 6); the metadata says (1, 7)."""
    _refused(_craft(logistic_file, tmp_path / "c.npz", extra={"coef_.npy": _npy(np.zeros((1, 6)))}), "coef_.npy")


# ---------------------------------------------------------------- what the metadata does not declare
@pytest.mark.parametrize("member", ["extra.npy", "coef_.npy.bak", "../escape.npy", "notes.txt"])
def test_undeclared_member_refused(tmp_path, logistic_file, member):
    _refused(_craft(logistic_file, tmp_path / "u.npz", extra={member: _npy(np.zeros(3))}), "not declared")


def test_declared_array_referenced_by_nothing_refused(tmp_path, logistic_file):
    def declare(meta):
        meta["arrays"]["spare"] = {"dtype": "<f8", "shape": [3]}

    _refused(_craft(logistic_file, tmp_path / "s.npz", edit=declare, extra={"spare.npy": _npy(np.zeros(3))}))


def test_unknown_fitted_attribute_refused(tmp_path, logistic_file):
    _refused(_craft(logistic_file, tmp_path / "a.npz", edit=lambda m: m["fitted"].update(__class__="x")),
             "__class__")


def test_array_too_big_for_the_budget_refused_before_reading(tmp_path, logistic_file):
    """The declared sizes are summed before any member is read: max_bytes lowers the cap."""
    path = tmp_path / "ok.npz"
    path.write_bytes(open(logistic_file, "rb").read())
    with pytest.raises(ModelFileError, match="larger than"):
        load_model(path, max_bytes=64)
    assert load_model(path).coef_.shape == (1, 7)


def test_a_large_valid_model_loads_in_its_own_size(tmp_path, logistic_file):
    """A 64 MB coef_ (within the limit) is inflated straight into its array: the load
    allocates its size plus about a megabyte (before: the member's bytes, then the array)."""
    import tracemalloc

    d = 1 << 23

    def declare(meta):
        meta["fitted"]["n_features_in_"] = d

    path = _craft(logistic_file, tmp_path / "big.npz", arrays={"coef_": np.zeros((1, d))}, edit=declare)
    tracemalloc.start()
    try:
        model = load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert model.coef_.shape == (1, d)
    assert peak < 8 * d + (4 << 20), f"peak {peak / 2**20:.1f} MB for a {8 * d / 2**20:.0f} MB array"


def test_npy_header_that_numpys_parser_chokes_on(tmp_path, logistic_file):
    """A '{' in coef_.npy's header dict: numpy's fallback tokenizer raised tokenize.TokenError
    (found by the header fuzz test in test_io.py)."""
    _, members = _read(logistic_file)
    npy = bytearray(members["coef_.npy"])
    npy[42] = ord("{")
    _refused(_craft(logistic_file, tmp_path / "h.npz", extra={"coef_.npy": bytes(npy)}), "coef_.npy")
