"""The .t7 deserializer: real Torch7 files decode exactly, bad files fail clearly."""

from __future__ import annotations

import glob
import os
import struct

import numpy as np
import pytest
import torchfile
from fixtures_t7 import REAL_DIR, T7_DIR, read_raw

from migrate.core.errors import CorruptFileError, MigrateError, TooLargeError, TruncatedFileError
from migrate.readers.torch7 import t7file
from migrate.readers.torch7.module import T7Module, lua_list


def _path(name: str) -> str:
    path = os.path.join(T7_DIR, name)
    if not os.path.exists(path):
        pytest.skip(f"{name} not in ../shared")
    return path


def test_every_real_file_decodes(shared_dir):
    files = glob.glob(os.path.join(T7_DIR, "*.t7")) + glob.glob(
        os.path.join(REAL_DIR, "**", "*.t7"), recursive=True)
    assert len(files) > 300
    for path in files:
        t7file.load(path)  # raises on failure


def test_lua_table_values(shared_dir):
    table = t7file.load(_path("misc_table.t7"))
    assert table[b"num"] == 3.5 and table[b"int"] == 42 and table[b"str"] == b"hello"
    assert table[b"flag"] is True and table[b"no"] is False
    assert lua_list(table[b"list"]) == [1, 2, b"x"]
    assert table[b"nested"][b"a"][b"b"][b"c"] == b"deep"
    assert table[b"t1"] is table[b"t2"]  # one tensor referenced twice stays one object
    assert table[b"long"].tolist() == [1, -2, 3000000000]
    assert table[b"byte"].tolist() == [0, 255] and table[b"byte"].dtype == np.uint8
    assert table[b"int32"].tolist() == [7, -7]
    assert table[b"empty"].size == 0
    assert table[b"self_ref"] is table


def test_non_contiguous_view_equals_contiguous_copy(shared_dir):
    view = t7file.load(_path("misc_noncontig_tensor.t7"))
    contiguous = t7file.load(_path("misc_noncontig_tensor_contig.t7"))
    assert view.shape == (7, 3) and not view.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(view, contiguous)


def test_four_byte_longs_decode_like_eight_byte_longs(shared_dir):
    long4 = T7Module(t7file.load(_path("misc_lenet_long4.t7")), "model")
    long8 = T7Module(t7file.load(_path("a_lenet_float.t7")), "model")
    for a, b in zip(long4.children(), long8.children(), strict=True):
        assert a.cls == b.cls
        for name in ("weight", "bias"):
            if b.tensor(name) is not None:
                np.testing.assert_array_equal(a.tensor(name), b.tensor(name))


def test_ascii_file_decodes_the_stored_input(shared_dir):
    stored = t7file.load(_path("g_ascii_lenet_float_input.t7"))
    np.testing.assert_allclose(stored, read_raw("g_ascii_lenet_float_input")[0], rtol=1e-7)
    model = T7Module(t7file.load(_path("g_ascii_lenet_double.t7")), "model")
    assert [m.cls for m in model.children()][0] == "nn.SpatialConvolution"


def test_lists_of_tensors_that_crash_plain_torchfile(shared_dir):
    path = _path("c_residual_keepstate_float.t7")
    with pytest.raises(ValueError):  # torchfile's list heuristic compares arrays with ==
        torchfile.load(path)
    assert T7Module(t7file.load(path), "model").cls == "nn.Sequential"


def test_cuda_tensors_load_as_float32(shared_dir):
    path = os.path.join(REAL_DIR, "spynet", "modelL1_3.t7")
    if not os.path.exists(path):
        pytest.skip("real SpyNet files not present")
    conv = T7Module(t7file.load(path), "model").children()[0]
    assert conv.cls == "cudnn.SpatialConvolution"
    assert conv.fields["weight"].dtype == np.float32


# --- files written here byte by byte, in the Torch7 binary format -------------------

def _int(v):
    return struct.pack("<i", v)


def _long(v):
    return struct.pack("<q", v)


def _string(s: bytes):
    return _int(len(s)) + s


def _tensor_file(cls: bytes, storage_cls: bytes, values: bytes, count: int, size=None):
    size = [count] if size is None else size
    out = _int(4) + _int(1) + _string(b"V 1") + _string(cls)
    out += _int(len(size)) + b"".join(_long(s) for s in size) + _long(1) + _long(1)
    out += _int(4) + _int(2) + _string(b"V 1") + _string(storage_cls) + _long(count) + values
    return out


def test_half_tensor():
    values = np.array([1.5, -2.0, 0.25], dtype="<f2")
    data = _tensor_file(b"torch.HalfTensor", b"torch.HalfStorage", values.tobytes(), 3)
    loaded = t7file.loads(data)
    assert loaded.dtype == np.float16 and loaded.tolist() == [1.5, -2.0, 0.25]


def test_truncated_storage_is_a_clear_error():
    values = np.arange(10, dtype="<f4").tobytes()
    data = _tensor_file(b"torch.FloatTensor", b"torch.FloatStorage", values, 10)
    with pytest.raises(TruncatedFileError, match="storage of 10 values"):
        t7file.loads(data[:-8], name="cut.t7")


def test_huge_declared_storage_is_refused_before_allocation():
    data = _tensor_file(b"torch.FloatTensor", b"torch.FloatStorage", b"", 10**15)
    with pytest.raises(MigrateError):
        t7file.loads(data)
    with pytest.raises(TooLargeError):
        t7file.loads(_tensor_file(b"torch.FloatTensor", b"torch.FloatStorage",
                                  b"\0" * 400, 100), max_bytes=100)


def test_tensor_view_outside_its_storage_is_refused():
    values = np.arange(4, dtype="<f4").tobytes()
    data = _tensor_file(b"torch.FloatTensor", b"torch.FloatStorage", values, 4, size=[9])
    with pytest.raises(CorruptFileError, match="past its storage"):
        t7file.loads(data)


def test_random_bytes_and_empty_input_fail_cleanly(tmp_path):
    rng = np.random.default_rng(1)
    with pytest.raises(MigrateError):
        t7file.loads(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.t7"
    empty.write_bytes(b"")
    with pytest.raises(TruncatedFileError, match="empty.t7"):
        t7file.load(empty)


def test_deep_nesting_is_an_error_not_a_crash():
    depth = t7file.MAX_DEPTH + 10
    # {[1] = {[1] = {...}}}: table tag, index, one entry, key 1, then the value
    head = b"".join(_int(3) + _int(i + 1) + _int(1) + _int(1) + struct.pack("<d", 1.0)
                    for i in range(depth))
    with pytest.raises(CorruptFileError, match="nested"):
        t7file.loads(head + _int(0))
