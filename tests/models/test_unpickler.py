"""The restricted unpickler: checkpoints that would run code are refused, naming the global, and nothing runs."""

import builtins
import functools
import io
import os
import pickle
import subprocess
import sys

import pytest
import torch

from benchmark.errors import CheckpointError
from benchmark.models.checkpoints import read_checkpoint
from benchmark.models.unpickler import Inert, RestrictedUnpickler


def _weights():
    return {"conv.weight": torch.ones(2, 2), "conv.bias": torch.zeros(2)}


class _Call:
    """Pickles as ``function(*args)``: unpickling it would call ``function``."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


class _UserHook:
    """An ordinary user class: fine as metadata, refused inside the state dict."""

    def __init__(self):
        self.scale = 2


def _evil_payloads(marker):
    command = f"touch {marker}"
    return {
        "os.system": _Call(os.system, command),
        "eval": _Call(builtins.eval, f"open({str(marker)!r}, 'w')"),
        "exec": _Call(builtins.exec, f"open({str(marker)!r}, 'w')"),
        "subprocess.Popen": _Call(subprocess.Popen, ["touch", str(marker)]),
        "functools.partial": _Call(functools.partial(os.system, command)),
        "open": _Call(open, str(marker), "w"),
        "torch.load": _Call(torch.load, str(marker)),
    }


def _global_name(call: _Call) -> str:
    """The global the pickle names for ``call`` (``posix.system``, ``_io.open``, ... by platform and version)."""
    function = call.function
    if isinstance(function, functools.partial):
        return "functools.partial"
    return f"{function.__module__}.{function.__qualname__}"


@pytest.mark.parametrize("label", list(_evil_payloads("m")))
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_code_running_pickles_are_refused_naming_the_global_and_nothing_runs(label, legacy, tmp_path):
    marker = tmp_path / "was_executed"
    path = tmp_path / "evil.pth"
    call = _evil_payloads(marker)[label]
    torch.save({"state_dict": _weights(), "meta": {"hook": call}}, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    assert f"its pickle calls {_global_name(call)}," in str(err.value)
    assert "nothing in it was executed" in str(err.value)
    assert not marker.exists()


def _raw_pickle_checkpoint(path, body: bytes):
    """A legacy-format torch file whose main pickle is ``body`` (hand-written protocol-0 opcodes)."""
    torch.save({"x": torch.zeros(1)}, path, _use_new_zipfile_serialization=False)
    # legacy layout: magic, protocol, sys_info, then the main pickle; replace the main pickle
    with open(path, "rb") as handle:
        for _ in range(3):
            pickle.load(handle)
        head = handle.tell()
    data = path.read_bytes()
    keys = pickle.dumps([], protocol=2)
    path.write_bytes(data[:head] + body + keys)


def test_getattr_import_chain_is_refused_at_import(tmp_path):
    marker = tmp_path / "was_executed"
    path = tmp_path / "chain.pth"
    body = (b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR(S'touch "
            + str(marker).encode() + b"'\ntR.")
    _raw_pickle_checkpoint(path, body)
    with pytest.raises(CheckpointError, match=r"its pickle calls builtins\.__import__"):
        read_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize(("body", "named"), [
    (b"cbuiltins\ngetattr\n(ccollections\nOrderedDict\nS'fromkeys'\ntR.",
     r"builtins\.getattr\(collections\.OrderedDict, 'fromkeys'\)"),  # getattr reaches only placeholders
    (b"cnumpy.testing._private.utils\nrunstring\n(S'open(\"x\", \"w\")'\n(dtR.",
     r"numpy\.testing\._private\.utils\.runstring"),  # numpy beyond its array rebuilders
], ids=["getattr-on-real-object", "numpy-runstring"])
def test_other_code_paths_are_refused(body, named, tmp_path):
    path = tmp_path / "raw.pth"
    _raw_pickle_checkpoint(path, body)
    with pytest.raises(CheckpointError, match=named):
        read_checkpoint(path)


def test_a_user_object_inside_the_state_dict_is_refused(tmp_path):
    path = tmp_path / "hooked.pth"
    torch.save({"state_dict": {**_weights(), "conv.hook": _UserHook()}}, path)
    with pytest.raises(CheckpointError, match=rf"entry 'conv.hook' is a {__name__}._UserHook, not a tensor"):
        read_checkpoint(path)


def test_user_objects_in_the_metadata_become_inert_placeholders(tmp_path):
    path = tmp_path / "meta.pth"
    torch.save({"state_dict": _weights(), "meta": {"hook": _UserHook(), "lr": 0.1}}, path)
    checkpoint = read_checkpoint(path)
    hook = checkpoint.meta["meta"]["hook"]
    assert isinstance(hook, Inert) and hook.global_name == f"{__name__}._UserHook"
    assert hook.state == {"scale": 2} and not isinstance(hook, _UserHook)
    assert checkpoint.placeholders == (f"{__name__}._UserHook",)


def test_torchscript_archives_are_refused(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(CheckpointError, match="TorchScript archive"):
        read_checkpoint(path)


def test_placeholders_never_import_the_module_they_name():
    """``this`` prints the Zen of Python when imported: a placeholder for ``this.s`` must not import it."""
    code = ("import io, sys\nfrom benchmark.models.unpickler import Inert, RestrictedUnpickler\n"
            "value = RestrictedUnpickler(io.BytesIO(b\"cthis\\ns\\n(S'x'\\ntR.\")).load()\n"
            "assert isinstance(value, Inert) and value.global_name == 'this.s' and value.args == ['x']\n"
            "assert 'this' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Beautiful is better than ugly" not in result.stdout


def test_unpickler_rebuilds_plain_data_exactly():
    import collections

    import numpy as np

    value = {"a": [1, 2.5, "x", None, True], "b": (b"bytes", {3, 4}), "c": collections.OrderedDict(k=1),
             "d": np.arange(6, dtype=np.float32).reshape(2, 3), "e": np.int64(7), "f": np.float16(0.5),
             "g": complex(1, 2), "h": frozenset({1}), "i": bytearray(b"z"), "j": slice(1, 5, 2)}
    for protocol in (0, 2, 4, 5):
        data = pickle.dumps(value, protocol=protocol)
        out = RestrictedUnpickler(io.BytesIO(data)).load()
        assert out.keys() == value.keys()
        assert np.array_equal(out["d"], value["d"]) and out["d"].dtype == np.float32
        assert type(out["e"]) is np.int64 and type(out["f"]) is np.float16
        assert {k: v for k, v in out.items() if k != "d"} == {k: v for k, v in value.items() if k != "d"}
