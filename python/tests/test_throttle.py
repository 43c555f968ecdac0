"""`raise pararun.Throttled(retry_after=...)` from func (issue 24): the item goes back to the
queue without using up a retry, and the run ends with every item done."""
import asyncio
import time

import pytest

import pararun
import promise_funcs
from conftest import read_jsonl


@pytest.mark.parametrize("backend", ["process", "thread", "async"])
def test_a_throttled_item_runs_again_without_a_retry(workdir, backend):
    items = [{"id": i} for i in range(1, 6)]
    kw = dict(cache_path="c.jsonl", failures_path="f.jsonl", retries=0)
    started = time.monotonic()
    if backend == "async":
        summary = asyncio.run(pararun.aio_map(promise_funcs.athrottles_once, items, **kw))
    else:
        summary = pararun.map(promise_funcs.throttles_once, items, n_workers=1,
                              backend=backend, **kw)
    assert sorted(r["id"] for r in read_jsonl(workdir / "c.jsonl")) == [1, 2, 3, 4, 5]
    assert read_jsonl(workdir / "f.jsonl") == []
    assert summary.failed == 0
    # The pause it asked for (0.3 s) held the run; nothing waited much longer.
    assert time.monotonic() - started >= 0.3


def test_throttled_is_exported_with_its_delay():
    e = pararun.Throttled(retry_after=30)
    assert isinstance(e, Exception) and e.retry_after == 30
