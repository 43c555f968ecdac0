"""map, imap and aio_map from a test process (functions from an importable module)."""
import asyncio
import json
import os

import pytest

import helpers
import pararun
from conftest import read_jsonl


def test_map_returns_none_and_caches(workdir):
    items = ({"id": i} for i in range(200))
    summary = pararun.map(helpers.square, items, n_workers=2, cache_path="c.jsonl")
    assert (summary.done, summary.cached, summary.failed) == (200, 0, 0)
    records = read_jsonl("c.jsonl")
    assert sorted(r["id"] for r in records) == list(range(200))
    assert all(r["sq"] == r["id"] ** 2 for r in records)
    # the key field comes first in each record, as pararun writes them
    assert all(list(r)[0] == "id" for r in records)


def test_exception_fails_the_item_and_the_run_goes_on(workdir, capfd):
    pararun.map(helpers.fail_on_three, ({"id": i} for i in range(8)), n_workers=2,
                cache_path="c.jsonl", failures_path="f.jsonl")
    assert sorted(r["id"] for r in read_jsonl("c.jsonl")) == [0, 1, 2, 4, 5, 6, 7]
    (failure,) = read_jsonl("f.jsonl")
    assert failure["key"] == 3
    assert "ValueError: three is not allowed" in failure["detail"]
    assert "fail_on_three" in failure["detail"]  # the traceback's tail names the function
    err = capfd.readouterr().err
    assert "three is not allowed" in err
    # the next run tries only the failed item again
    pararun.map(helpers.fail_on_three, ({"id": i} for i in range(8)), n_workers=2,
                cache_path="c.jsonl", failures_path="f.jsonl")
    assert len(read_jsonl("f.jsonl")) == 2


def test_a_crashing_worker_fails_one_item_and_is_replaced(workdir):
    pararun.map(helpers.crash_on_three, ({"id": i} for i in range(10)), n_workers=2,
                cache_path="c.jsonl", failures_path="f.jsonl", pipeline=1)
    assert sorted(r["id"] for r in read_jsonl("c.jsonl")) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert [f["key"] for f in read_jsonl("f.jsonl")] == [3]


def test_odd_items_keep_their_keys(workdir):
    items = [
        {"id": "é✓ 😀 \u2028 \x00 \"q\""},
        {"id": 10 ** 30},
        {"id": 0.1},
        {"id": -1.5e300},
        {"id": [1, "two"]},
        {"id": None, "x": 1},
        "a plain string",
        12345678901234567890,
        ["a", "list"],
        {"url": "keyed by its only field"},
        {"a": 1, "b": 2},
        True,
    ]
    records = list(pararun.imap(helpers.echo, items, n_workers=2, cache_path="c.jsonl"))
    assert len(records) == len(items)
    got = {json.dumps(r["id"]): r["item"] for r in records}
    assert got[json.dumps("é✓ 😀 \u2028 \x00 \"q\"")] == items[0]
    assert got[json.dumps(10 ** 30)] == {"id": 10 ** 30}
    assert got[json.dumps(0.1)] == {"id": 0.1}
    assert got[json.dumps("a plain string")] == "a plain string"
    assert got[json.dumps(["a", "list"])] == ["a", "list"]
    assert got[json.dumps("keyed by its only field")] == {"url": "keyed by its only field"}
    assert got[json.dumps({"a": 1, "b": 2})] == {"a": 1, "b": 2}
    # all cached: a second run yields nothing
    assert list(pararun.imap(helpers.echo, items, n_workers=2, cache_path="c.jsonl")) == []


def test_items_that_are_not_json_raise(workdir):
    with pytest.raises(TypeError, match="must be JSON"):
        pararun.map(helpers.echo, [{"id": 1}, {"id": 2, "x": {1, 2}}], cache_path="c.jsonl")
    with pytest.raises(TypeError, match="must be JSON"):
        pararun.map(helpers.echo, [{"id": float("nan")}])


def test_results_that_are_not_records_fail_their_item(workdir):
    pararun.map(helpers.not_json, [{"id": 1}], failures_path="f.jsonl")
    pararun.map(helpers.wrong_key, [{"id": 2}], failures_path="f.jsonl")
    first, second = read_jsonl("f.jsonl")
    assert "not JSON" in first["detail"]
    assert "must name its own item's key" in second["detail"]


def test_an_exception_from_the_iterable_is_raised(workdir):
    def items():
        yield {"id": 1}
        raise OSError("the input went away")

    with pytest.raises(OSError, match="went away"):
        pararun.map(helpers.square, items(), cache_path="c.jsonl")


def test_what_func_prints_does_not_corrupt_results(workdir, capfd):
    records = list(pararun.imap(helpers.noisy, ({"id": i} for i in range(20)), n_workers=2))
    assert sorted(r["ok"] for r in records) == list(range(20))
    assert "printed by func 7" in capfd.readouterr().err


def test_imap_yields_as_results_finish_and_stops_when_left(workdir):
    got = []
    for record in pararun.imap(helpers.slow, ({"id": i, "sleep": 0.05} for i in range(1000)),
                               n_workers=2, cache_path="c.jsonl"):
        got.append(record)
        if len(got) == 5:
            break
    cached = read_jsonl("c.jsonl")
    assert len(cached) >= 5 and len(cached) < 100
    assert {r["id"] for r in got} <= {r["id"] for r in cached}


def test_aio_map_runs_many_coroutines_in_one_process(workdir):
    async def items():
        for i in range(300):
            yield {"id": i, "sleep": 0.2}

    async def main():
        return await pararun.aio_map(helpers.aslow, items(), n_workers=150, cache_path="c.jsonl")

    import time
    started = time.monotonic()
    assert asyncio.run(main()).done == 300
    took = time.monotonic() - started
    assert len(read_jsonl("c.jsonl")) == 300
    assert took < 10.0, took  # 2 waves of 0.2 s, where one at a time takes 60 s


def test_aio_map_errors_fail_their_items(workdir):
    asyncio.run(pararun.aio_map(helpers.araise, [{"id": i} for i in range(10)],
                                failures_path="f.jsonl", cache_path="c.jsonl"))
    assert sorted(r["id"] for r in read_jsonl("c.jsonl")) == [0, 2, 4, 6, 8]
    failures = read_jsonl("f.jsonl")
    assert sorted(f["key"] for f in failures) == [1, 3, 5, 7, 9]
    assert all("RuntimeError: odd" in f["detail"] for f in failures)


def test_aio_map_runs_a_plain_function_in_threads(workdir):
    import time
    started = time.monotonic()
    asyncio.run(pararun.aio_map(helpers.blocking, [{"id": i} for i in range(20)], n_workers=20,
                                cache_path="c.jsonl"))
    assert time.monotonic() - started < 5.0  # 20 x 0.5 s at once; one at a time takes 10 s
    assert len(read_jsonl("c.jsonl")) == 20


def test_thread_backend(workdir):
    pararun.map(helpers.blocking, [{"id": i} for i in range(10)], n_workers=10,
                backend="thread", cache_path="c.jsonl")
    records = read_jsonl("c.jsonl")
    assert len(records) == 10


def test_a_locked_cache_raises_pararun_error(workdir):
    import fcntl
    with open("c.jsonl", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        with pytest.raises(pararun.PararunError):
            pararun.map(helpers.square, [{"id": 1}], cache_path="c.jsonl")


def test_the_binary_is_found():
    from pararun._binary import find_binary
    path = find_binary()
    assert os.access(path, os.X_OK)
    if os.environ.get("PARARUN_TEST_WHEEL"):  # scripts/test: the installed wheel, no toolchain
        import shutil
        import sys
        import sysconfig
        assert os.path.dirname(path) == sysconfig.get_path("scripts")
        assert pararun.__file__.startswith(sys.prefix)
        assert shutil.which("cargo") is None and shutil.which("rustc") is None


def test_a_slow_iterable_never_holds_back_items_it_gave(workdir):
    import time
    seen = []

    def cached_within(n, seconds):
        deadline = time.monotonic() + seconds
        while len(read_jsonl("c.jsonl")) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(read_jsonl("c.jsonl"))

    def items():
        for i in range(5):
            yield {"id": i}
        # waiting on I/O: the 5 items must be running meanwhile
        seen.append(cached_within(5, 15))
        yield {"id": 5}

    pararun.map(helpers.square, items(), n_workers=2, cache_path="c.jsonl")
    assert seen == [5]
    assert len(read_jsonl("c.jsonl")) == 6

    async def aitems():
        for i in range(10, 15):
            yield {"id": i}
        for _ in range(300):
            if len(read_jsonl("c.jsonl")) >= 11:
                break
            await asyncio.sleep(0.05)
        seen.append(len(read_jsonl("c.jsonl")))
        yield {"id": 15}

    asyncio.run(pararun.aio_map(helpers.square, aitems(), cache_path="c.jsonl"))
    assert seen == [5, 11]


def test_timeout_fails_the_slow_item_alone(workdir):
    import time
    items = [{"id": i, "sleep": 30 if i == 2 else 0.05} for i in range(8)]
    started = time.monotonic()
    pararun.map(helpers.sleepy, items, n_workers=2, cache_path="c.jsonl", timeout=1,
                failures_path="f.jsonl")
    assert time.monotonic() - started < 10
    assert sorted(r["id"] for r in read_jsonl("c.jsonl")) == [0, 1, 3, 4, 5, 6, 7]
    (failure,) = read_jsonl("f.jsonl")
    assert failure["key"] == 2 and "timed out after 1s" in failure["detail"]
    assert failure["reason"] == "timeout"

    started = time.monotonic()
    asyncio.run(pararun.aio_map(helpers.asleepy, items, cache_path="a.jsonl", timeout="500ms",
                                failures_path="af.jsonl"))
    assert time.monotonic() - started < 10
    assert len(read_jsonl("a.jsonl")) == 7
    assert [(f["key"], f["reason"]) for f in read_jsonl("af.jsonl")] == [(2, "timeout")]


def test_retries_run_a_failed_item_again(workdir):
    pararun.map(helpers.flaky, [{"id": i} for i in range(4)], n_workers=2, cache_path="c.jsonl",
                retries=1, args=["--retry-delay", "10ms"])
    assert sorted(r["id"] for r in read_jsonl("c.jsonl")) == [0, 1, 2, 3]


def test_a_finished_result_is_not_held_back_by_the_next_item(workdir):
    # Items 0-2 finish in a moment, then item 3 runs long in the same worker: their results
    # reach the cache while it runs, not after it.
    proc = pararun.imap(helpers.slow_on_three, ({"id": i} for i in range(4)), n_workers=1,
                        cache_path="c.jsonl", progress=False)
    got = [next(proc)["id"] for _ in range(3)]
    assert sorted(got) == [0, 1, 2]
    assert sorted(r["id"] for r in read_jsonl("c.jsonl")) == [0, 1, 2]
    proc.close()


def test_a_crash_fails_only_the_item_that_crashed(workdir):
    items = [{"id": i, "crash": True} for i in range(4)]
    pararun.map(helpers.slow_on_three, items, n_workers=1, cache_path="c.jsonl",
                failures_path="f.jsonl", progress=False)
    assert sorted(r["id"] for r in read_jsonl("c.jsonl")) == [0, 1, 2]
    assert [f["key"] for f in read_jsonl("f.jsonl")] == [3]


def test_map_from_several_threads_at_once(workdir):
    import threading

    errors = []

    def one(n):
        try:
            pararun.map(helpers.square, ({"id": i} for i in range(20)), n_workers=1,
                        cache_path=f"c{n}.jsonl", progress=False)
        except Exception as e:  # pragma: no cover - the failure being tested for
            errors.append(e)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(len(read_jsonl(f"c{n}.jsonl")) == 20 for n in range(3))


def test_the_api_has_docstrings():
    for func in (pararun.map, pararun.aio_map, pararun.imap, pararun.serve):
        assert func.__doc__ and len(func.__doc__) > 100, func.__name__
    assert "save_frequency" in pararun.map.__doc__
