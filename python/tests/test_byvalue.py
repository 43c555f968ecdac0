"""Any function a Pool user would pass: what workers cannot import goes by value (cloudpickle),
what they can still goes by name, and what cannot be pickled fails at the call."""
import functools
import os
import subprocess
import sys
import textwrap
import threading

import pytest

import helpers
import pararun
from conftest import read_jsonl

pytest.importorskip("cloudpickle", reason="functions go by value with cloudpickle")


class Scaler:
    def __init__(self, factor):
        self.factor = factor

    def scale(self, item):
        return {"v": item["id"] * self.factor}


def _times(item, factor):
    return {"v": item["id"] * factor}


def test_lambda_closure_partial_and_bound_method_run(workdir):
    offset = 100

    def closure(item):
        return {"v": item["id"] + offset}

    cases = {
        "lambda": (lambda item: {"v": item["id"] * 2}, lambda i: i * 2),
        "closure": (closure, lambda i: i + 100),
        "partial": (functools.partial(_times, factor=3), lambda i: i * 3),
        "method": (Scaler(5).scale, lambda i: i * 5),
    }
    for name, (func, want) in cases.items():
        records = list(pararun.imap(func, [{"id": i} for i in range(6)], n_workers=2,
                                    quiet=True))
        assert sorted((r["id"], r["v"]) for r in records) == [(i, want(i)) for i in range(6)], name


def test_an_importable_function_still_goes_by_name():
    from pararun import _func

    ref = _func.reference(helpers.square)
    assert ref["module"] == "helpers" and "pickled" not in ref
    assert "pickled" in _func.reference(lambda item: item)


def test_what_cannot_be_pickled_fails_at_the_call_naming_it():
    lock = threading.Lock()

    def holds_a_lock(item):
        with lock:
            return item

    with pytest.raises(TypeError, match=r"holds_a_lock.*cannot be sent.*lock"):
        pararun.map(holds_a_lock, [1, 2])


def test_a_function_from_python_dash_c_runs(workdir):
    code = textwrap.dedent("""
        import pararun as pr
        def work(item):
            return {"twice": item["id"] * 2}
        s = pr.map(work, [{"id": i} for i in range(20)], n_workers=2, cache_path="c.jsonl",
                   quiet=True)
        print(s.done, s.failed)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["20", "0"]
    assert sorted(r["twice"] for r in read_jsonl("c.jsonl")) == [i * 2 for i in range(20)]


def test_a_function_defined_in_a_jupyter_cell_runs(workdir):
    pytest.importorskip(
        "jupyter_client", reason="the notebook test needs jupyter_client and ipykernel")
    pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel")
    from jupyter_client.manager import start_new_kernel

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(workdir), env=env,
                              extra_arguments=[], startup_timeout=60)
    try:
        cell = textwrap.dedent("""
            import pararun as pr
            def in_a_cell(item):
                return {"cube": item["id"] ** 3}
            summary = pr.map(in_a_cell, [{"id": i} for i in range(10)], n_workers=2,
                             cache_path="nb.jsonl", quiet=True)
            print("DONE", summary.done, summary.failed)
        """)
        outputs = []
        reply = kc.execute_interactive(
            cell, timeout=120,
            output_hook=lambda msg: outputs.append(msg["content"].get("text", "")
                                                   or str(msg["content"].get("evalue", ""))))
        assert reply["content"]["status"] == "ok", (reply["content"], outputs)
        assert "DONE 10 0" in "".join(outputs), outputs
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    records = read_jsonl(os.path.join(str(workdir), "nb.jsonl"))
    assert sorted(r["cube"] for r in records) == [i ** 3 for i in range(10)]
