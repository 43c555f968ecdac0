"""Failures and results reach the program: the Summary, raise_on_failure, imap's ordered,
include_cached and return_exceptions, pararun.read and pararun.load, and a Python failure
that reads as Python."""
import asyncio
import json

import pytest

import helpers
import pararun
from conftest import read_jsonl


def bad_on_seven(item):
    if item["id"] % 10 == 7:
        raise ValueError(f"bad item {item['id']}")
    return {"ok": True}


def test_map_returns_a_summary_of_what_it_did(workdir):
    items = [{"id": i} for i in range(30)]
    first = pararun.map(bad_on_seven, items, n_workers=2, cache_path="c.jsonl", quiet=True)
    assert (first.done, first.cached, first.failed) == (27, 0, 3)
    assert not first.ok and first.elapsed > 0
    assert sorted(f.key for f in first.failures) == [7, 17, 27]
    f = first.failures[0]
    assert (f.exc_type, f.message) == ("ValueError", f"bad item {f.key}")
    assert "bad_on_seven" in f.traceback and "test_results.py" in f.traceback
    again = pararun.map(bad_on_seven, items, n_workers=2, cache_path="c.jsonl", quiet=True)
    assert (again.done, again.cached, again.failed) == (0, 27, 3)


def test_retries_are_counted(workdir):
    s = pararun.map(bad_on_seven, [{"id": 7}], retries=2, quiet=True,
                    args=["--retry-delay", "0"])
    assert (s.failed, s.retried) == (1, 2)


def test_the_failures_kept_are_bounded_and_the_count_stays_exact(workdir, monkeypatch):
    from pararun import _summary

    monkeypatch.setattr(_summary, "MAX_FAILURES_KEPT", 2)
    s = pararun.map(bad_on_seven, [{"id": i} for i in range(50)], quiet=True)
    assert s.failed == 5 and len(s.failures) == 2


def test_raise_on_failure_raises_one_items_failed_with_the_summary(workdir):
    with pytest.raises(pararun.ItemsFailed) as info:
        pararun.map(bad_on_seven, [{"id": i} for i in range(20)], raise_on_failure=True,
                    quiet=True)
    assert info.value.summary.failed == 2
    assert "bad item 7" in str(info.value)
    ok = pararun.map(helpers.square, [{"id": 1}], raise_on_failure=True, quiet=True)
    assert ok.ok


def test_aio_map_returns_a_summary_and_raises_on_failure(workdir):
    s = asyncio.run(pararun.aio_map(helpers.araise, [{"id": i} for i in range(10)],
                                    quiet=True))
    assert (s.done, s.failed) == (5, 5)
    assert {f.exc_type for f in s.failures} == {"RuntimeError"}
    with pytest.raises(pararun.ItemsFailed):
        asyncio.run(pararun.aio_map(helpers.araise, [{"id": 1}], raise_on_failure=True,
                                    quiet=True))


def test_imap_ordered_yields_in_input_order(workdir):
    items = [{"id": i, "sleep": 0.05 if i % 3 == 0 else 0.0} for i in range(40)]
    keys = [r["id"] for r in pararun.imap(helpers.sleepy, items, n_workers=4, ordered=True,
                                          quiet=True)]
    assert keys == list(range(40))


def test_imap_include_cached_yields_every_items_result_on_a_resumed_run(workdir):
    items = [{"id": i} for i in range(20)]
    list(pararun.imap(helpers.square, items[:12], cache_path="c.jsonl", quiet=True))
    got = list(pararun.imap(helpers.square, items, cache_path="c.jsonl", include_cached=True,
                            quiet=True))
    assert sorted(r["id"] for r in got) == list(range(20))
    assert all(r["sq"] == r["id"] ** 2 for r in got)
    plain = list(pararun.imap(helpers.square, items, cache_path="c.jsonl", quiet=True))
    assert plain == []


def test_imap_return_exceptions_yields_failures(workdir):
    got = list(pararun.imap(bad_on_seven, [{"id": i} for i in range(20)], n_workers=2,
                            return_exceptions=True, quiet=True))
    failures = [g for g in got if isinstance(g, pararun.Failure)]
    assert sorted(f.key for f in failures) == [7, 17]
    assert all(f.exc_type == "ValueError" and "bad_on_seven" in f.traceback for f in failures)
    assert len(got) == 20


def test_read_and_load_see_the_cache_as_a_run_does(workdir):
    with open("c.jsonl", "w") as f:
        f.write(json.dumps({"id": 1, "v": "first"}) + "\n")
        f.write("not json\n")
        f.write(json.dumps({"id": 2, "v": "b"}) + "\n")
        f.write(json.dumps({"id": 1, "v": "second"}) + "\n")
        f.write('{"id": 3, "v": "tor')  # a torn tail
    records = list(pararun.read("c.jsonl"))
    assert records == [{"id": 1, "v": "first"}, {"id": 2, "v": "b"}]
    assert pararun.load("c.jsonl") == {1: {"id": 1, "v": "first"}, 2: {"id": 2, "v": "b"}}
    # a run agrees: it skips 1 and 2 and runs 3
    done = list(pararun.imap(helpers.echo, [{"id": i} for i in (1, 2, 3)],
                             cache_path="c.jsonl", quiet=True))
    assert [r["id"] for r in done] == [3]


def test_a_python_failure_reads_as_python(workdir, capfd):
    pararun.map(bad_on_seven, [{"id": 7}], failures_path="f.jsonl", progress=False)
    err = capfd.readouterr().err
    assert "item 7" in err and "ValueError: bad item 7" in err
    (failure,) = read_jsonl("f.jsonl")
    assert "ValueError: bad item 7" in failure["detail"]
    assert "test_results.py" in failure["detail"] and "in bad_on_seven" in failure["detail"]


def test_with_failures_path_the_summary_reads_pararuns_file_crashes_included(workdir):
    s = pararun.map(helpers.crash_on_three, [{"id": i} for i in range(6)], n_workers=1,
                    pipeline=1, failures_path="f.jsonl", quiet=True)
    assert s.failed == 1 and s.failures[0].key == 3 and s.failures[0].reason == "exit"
    s = pararun.map(bad_on_seven, [{"id": 7}], retries=1, failures_path="f.jsonl",
                    quiet=True, args=["--retry-delay", "0"])
    assert (s.failed, s.retried) == (1, 1) and s.failures[0].exc_type == "ValueError"
