"""Promises the package keeps when func or the iterable misbehaves (issue 20): which items have
records in the cache, which failed, and why.

- sys.exit(), KeyboardInterrupt and os._exit() in func fail that item alone; an item that had
  finished keeps its record.
- With backend="thread", a result past --max-output-bytes fails its own item alone; the items
  in flight beside it keep their results.
- An iterable that raises: the items it gave before run, then the exception propagates.
"""
import asyncio

import pytest

import pararun
import promise_funcs
from conftest import read_jsonl

ITEMS = 10


def _items(how):
    return [{"id": i, "how": how} for i in range(1, ITEMS + 1)]


def _outcome(workdir):
    """(ids with records, the failures) after a run in workdir."""
    records = read_jsonl(workdir / "c.jsonl")
    return sorted(r["id"] for r in records), read_jsonl(workdir / "f.jsonl"), records


def _check_item_two_alone(workdir):
    done, failures, records = _outcome(workdir)
    assert done == [i for i in range(1, ITEMS + 1) if i != 2], failures
    assert [f["key"] for f in failures] == [2], failures
    assert failures[0]["attempts"] == 1
    return failures[0], records


@pytest.mark.parametrize("how", ["sys.exit", "KeyboardInterrupt"])
@pytest.mark.parametrize("backend", ["process", "thread"])
def test_sys_exit_and_keyboard_interrupt_in_func_fail_that_item_alone(workdir, how, backend):
    pararun.map(promise_funcs.ends_on_two, _items(how), n_workers=1, backend=backend,
                cache_path="c.jsonl", failures_path="f.jsonl")
    failure, records = _check_item_two_alone(workdir)
    name = "SystemExit" if how == "sys.exit" else "KeyboardInterrupt"
    assert name in failure["detail"], failure
    if how == "sys.exit":
        assert "sys.exit(3)" in failure["detail"], failure
    # The item failed by its answer, not by the worker's death: one worker ran them all.
    assert failure["reason"] == "exit" and failure["exit_code"] is None, failure
    assert len({r["pid"] for r in records}) == 1, records


@pytest.mark.parametrize("how", ["GeneratorExit", "BaseException"])
@pytest.mark.parametrize("backend", ["process", "thread", "async"])
def test_any_base_exception_in_func_fails_that_item_alone_and_the_run_ends(workdir, how, backend):
    # Before: a BaseException that is none of SystemExit, KeyboardInterrupt and CancelledError
    # was never answered on the thread and async backends, and the run waited for ever.
    kw = dict(cache_path="c.jsonl", failures_path="f.jsonl", timeout=30)
    if backend == "async":
        asyncio.run(pararun.aio_map(promise_funcs.aends_on_two, _items(how), **kw))
    else:
        pararun.map(promise_funcs.ends_on_two, _items(how), n_workers=1, backend=backend, **kw)
    failure, _ = _check_item_two_alone(workdir)
    assert failure["reason"] == "exit" and how in failure["detail"], failure


def test_keyboard_interrupt_in_a_coroutine_fails_that_item_alone(workdir):
    asyncio.run(pararun.aio_map(promise_funcs.aends_on_two, _items("KeyboardInterrupt"),
                                cache_path="c.jsonl", failures_path="f.jsonl"))
    failure, records = _check_item_two_alone(workdir)
    assert "KeyboardInterrupt" in failure["detail"], failure
    assert len({r["pid"] for r in records}) == 1, records


def test_os_exit_in_func_fails_only_the_item_that_called_it(workdir):
    # Default pipelining: all ten items are in flight on the one worker when item 2 exits,
    # item 1 finished just before.
    pararun.map(promise_funcs.ends_on_two, _items("os._exit"), n_workers=1,
                cache_path="c.jsonl", failures_path="f.jsonl")
    failure, _ = _check_item_two_alone(workdir)
    assert failure["reason"] == "exit" and failure["exit_code"] == 3, failure
    assert "ended before answering" in failure["detail"], failure


def test_an_oversized_result_fails_its_own_item_alone(workdir):
    # 65 MiB, past the default 64 MiB cap; items 1 to 3 are in flight, in threads of the same
    # worker, until pararun has failed item 4.
    items = [{"id": i, "size": 65 << 20} for i in range(1, 5)]
    pararun.map(promise_funcs.big_on_four, items, n_workers=4, backend="thread",
                cache_path="c.jsonl", failures_path="f.jsonl")
    done, failures, records = _outcome(workdir)
    assert done == [1, 2, 3], failures
    assert [f["key"] for f in failures] == [4], failures
    failure = failures[0]
    assert failure["reason"] == "bad-output" and failure["attempts"] == 1, failure
    assert "64 MiB" in failure["detail"] and "--max-output-bytes" in failure["detail"], failure
    assert len({r["pid"] for r in records}) == 1, records


class Broke(Exception):
    pass


def _gen(n, bad):
    for i in range(n):
        yield {"id": i}
    if bad == "raise":
        raise Broke(f"the generator broke after {n} items")
    yield {"id": n, "not json": {1, 2}}


N = 30


@pytest.mark.parametrize("bad", ["raise", "not json"])
def test_items_an_iterable_gave_run_before_its_exception_propagates(workdir, bad):
    error = Broke if bad == "raise" else TypeError
    with pytest.raises(error):
        pararun.map(promise_funcs.ends_on_two, _gen(N, bad), cache_path="c.jsonl")
    done, _, _ = _outcome(workdir)
    assert done == list(range(N))


def test_imap_yields_the_items_given_before_the_iterable_raised(workdir):
    seen = []
    with pytest.raises(Broke):
        for record in pararun.imap(promise_funcs.ends_on_two, _gen(N, "raise")):
            seen.append(record["id"])
    assert sorted(seen) == list(range(N))


async def _agen(n):
    for i in range(n):
        yield {"id": i}
    raise Broke("the async generator broke")


def test_aio_map_runs_what_an_async_iterable_gave_before_it_raised(workdir):
    with pytest.raises(Broke):
        asyncio.run(pararun.aio_map(promise_funcs.aends_on_two, _agen(N), cache_path="c.jsonl"))
    done, _, _ = _outcome(workdir)
    assert done == list(range(N))
