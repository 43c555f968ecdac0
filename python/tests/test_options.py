"""Options a Python user types: quiet, desc, n_jobs, chunksize, flags that would empty imap's
channel, real keyword-only parameters and type hints, py.typed, and python -OO."""
import inspect
import os
import subprocess
import sys

import pytest

import helpers
import pararun
from conftest import read_jsonl


def test_quiet_hides_pararuns_lines_and_desc_names_the_run(workdir, capfd):
    pararun.map(helpers.square, [{"id": i} for i in range(5)], quiet=True, desc="squares")
    err = capfd.readouterr().err
    assert "pararun" not in err and "squares" not in err
    pararun.map(helpers.square, [{"id": i} for i in range(5, 9)], desc="squares")
    err = capfd.readouterr().err
    assert err.startswith("squares\n") and "pararun: ran 4" in err


def test_n_jobs_is_n_workers(workdir):
    from pararun import _api

    assert _api.workers(4, None) == 4
    assert _api.workers(4, 2) == 2
    assert _api.workers(4, -1) == (os.cpu_count() or 1)
    records = list(pararun.imap(helpers.slow, [{"id": i} for i in range(8)], n_jobs=2,
                                pipeline=1, quiet=True))
    assert len({r["pid"] for r in records}) == 2


def test_chunksize_is_accepted_as_pipeline(workdir):
    s = pararun.map(helpers.square, [{"id": i} for i in range(100)], chunksize=64,
                    cache_path="c.jsonl", quiet=True)
    assert s.done == 100 and len(read_jsonl("c.jsonl")) == 100


@pytest.mark.parametrize("flag", ["-q", "--quiet", "--no-records"])
def test_flags_that_would_empty_imap_are_refused(flag):
    with pytest.raises(ValueError, match="quiet=True"):
        list(pararun.imap(helpers.square, [{"id": 1}], args=[flag]))


def test_map_drops_them_with_a_note_and_still_counts(workdir, capfd):
    s = pararun.map(helpers.square, [{"id": i} for i in range(6)], args=["-q"])
    assert s.done == 6
    err = capfd.readouterr().err
    assert "note: -q in args= is ignored" in err and "pararun: ran" not in err


def test_unknown_options_are_a_type_error():
    with pytest.raises(TypeError):
        pararun.map(helpers.square, [], retriez=3)


def test_options_are_real_keyword_only_parameters_with_hints():
    for func in (pararun.map, pararun.imap, pararun.aio_map):
        params = inspect.signature(func).parameters
        for name in ("quiet", "desc", "n_jobs", "initializer", "initargs", "retries",
                     "timeout", "failures_path", "chunksize", "args"):
            assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, (func, name)
        assert func.__annotations__["return"] is not inspect.Signature.empty
    assert "ordered" in inspect.signature(pararun.imap).parameters
    assert "raise_on_failure" in inspect.signature(pararun.map).parameters


def test_the_package_is_typed():
    assert os.path.isfile(os.path.join(os.path.dirname(pararun.__file__), "py.typed"))


def test_python_OO_imports_and_runs(workdir):
    code = ("import pararun as pr\n"
            "s = pr.map(lambda i: {'v': i['id']}, [{'id': 1}], quiet=True)\n"
            "print(s.done)\n")
    out = subprocess.run([sys.executable, "-OO", "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
