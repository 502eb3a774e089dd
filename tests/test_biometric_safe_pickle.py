"""The restricted unpickler for .bin benchmark files: plain data loads, anything executable is refused."""

import os
import pickle
import subprocess

import numpy as np
import pytest

from overspec.data.biometric.safe_pickle import restricted_load
from overspec.errors import UserError


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _RunsSubprocess:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.call, (["touch", str(self.marker)],))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_plain_data_loads_under_every_protocol(tmp_path, protocol):
    payload = (
        [b"\xff\xd8jpeg", bytearray(b"png")],
        [True, False, np.bool_(True)],
        np.array([True, False]),
        np.arange(6, dtype=np.float32).reshape(2, 3),
        {"name": "lfw", "n": 3, "x": 1.5},
    )
    path = tmp_path / "set.bin"
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    loaded = restricted_load(path)
    assert loaded[0] == [b"\xff\xd8jpeg", bytearray(b"png")]
    assert loaded[1] == [True, False, True]
    assert np.array_equal(loaded[2], [True, False]) and loaded[2].dtype == bool
    assert np.array_equal(loaded[3], np.arange(6).reshape(2, 3)) and loaded[3].dtype == np.float32
    assert loaded[4] == {"name": "lfw", "n": 3, "x": 1.5}


@pytest.mark.parametrize("evil", [_RunsShell, _RunsSubprocess])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_code_execution_is_refused_before_anything_runs(tmp_path, evil, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "lfw.bin"
    path.write_bytes(pickle.dumps(([b"x", b"y"], [True], evil(marker)), protocol=protocol))
    # the payload is live: plain pickle would run it
    with pytest.raises(UserError, match="refuses") as caught:
        restricted_load(path)
    assert str(path) in str(caught.value)
    assert "system" in str(caught.value) or "call" in str(caught.value)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # control: the unrestricted loader does execute it
    assert marker.exists()


def test_builtins_and_object_arrays_are_refused(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")  # protocol 0: eval("1+1")
    with pytest.raises(UserError, match="builtins.eval"):
        restricted_load(path)
    path.write_bytes(pickle.dumps(np.array([1, "a"], dtype=object), protocol=2))
    with pytest.raises(UserError, match="Python objects"):
        restricted_load(path)
    path.write_bytes(pickle.dumps(np.array([1, "a"], dtype=object), protocol=5))
    with pytest.raises(UserError, match="Python objects"):
        restricted_load(path)


def test_codecs_encode_only_with_latin1(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"c_codecs\nencode\n(Vabc\nVrot13\ntR.")
    with pytest.raises(UserError, match="rot13"):
        restricted_load(path)


def test_python2_str_pickles_load_as_bytes(tmp_path):
    # Python 2 pickles JPEG bytes as str with arbitrary bytes: only encoding="bytes" reads them.
    path = tmp_path / "py2.bin"
    path.write_bytes(b"\x80\x02]q\x00U\x03\xff\xd8\x01q\x01a]q\x02\x88a\x86q\x03.")
    assert restricted_load(path) == ([b"\xff\xd8\x01"], [True])


def test_missing_truncated_and_garbage_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        restricted_load(tmp_path / "nope.bin")
    path = tmp_path / "cut.bin"
    path.write_bytes(pickle.dumps(([b"x"] * 10, [True] * 5))[:20])
    with pytest.raises(UserError, match="not a readable"):
        restricted_load(path)
