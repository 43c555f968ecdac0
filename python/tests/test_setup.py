"""Per-worker set-up: initializer= and initargs=, a failing initializer, and
max_tasks_per_worker."""
import asyncio
import os
import threading
import time

import pytest

import pararun
from conftest import read_jsonl

pytest.importorskip("cloudpickle", reason="the initializer goes to workers with cloudpickle")

MODEL = None
SEEN = 0
LOCAL = threading.local()


def load_model(name, log):
    """Stands for loading a model: once per worker, noted in `log`."""
    global MODEL
    MODEL = name
    with open(log, "a") as f:
        f.write(f"{os.getpid()} {threading.get_ident()}\n")
    LOCAL.model = name


def use_model(item):
    global SEEN
    SEEN += 1
    return {"model": MODEL, "pid": os.getpid(), "seen": SEEN}


def use_thread_model(item):
    time.sleep(0.02)
    return {"model": getattr(LOCAL, "model", None)}


async def ause_model(item):
    await asyncio.sleep(0.01)
    return {"model": MODEL}


def broken_init():
    raise RuntimeError("the model file is missing")


def _inits(log):
    with open(log) as f:
        return [line.split() for line in f if line.strip()]


def test_initializer_runs_once_per_worker_process(workdir):
    log = str(workdir / "init.log")
    records = list(pararun.imap(use_model, [{"id": i} for i in range(60)], n_workers=3,
                                initializer=load_model, initargs=("bert", log), quiet=True))
    assert len(records) == 60 and all(r["model"] == "bert" for r in records)
    pids = {r["pid"] for r in records}
    inits = _inits(log)
    assert len(inits) == len({p for p, _ in inits}) <= 3  # one per process
    assert pids <= {int(p) for p, _ in inits}


def test_initializer_runs_in_each_thread_of_a_thread_worker(workdir):
    log = str(workdir / "init.log")
    records = list(pararun.imap(use_thread_model, [{"id": i} for i in range(40)], n_workers=4,
                                backend="thread", initializer=load_model,
                                initargs=("t5", log), quiet=True))
    assert all(r["model"] == "t5" for r in records)
    inits = _inits(log)
    assert 1 <= len(inits) <= 4 and len({t for _, t in inits}) == len(inits)


def test_initializer_runs_once_before_an_async_workers_first_item(workdir):
    log = str(workdir / "init.log")
    summary = asyncio.run(pararun.aio_map(ause_model, [{"id": i} for i in range(50)],
                                          n_workers=20, cache_path="c.jsonl",
                                          initializer=load_model, initargs=("gpt", log),
                                          quiet=True))
    assert summary.done == 50
    assert all(r["model"] == "gpt" for r in read_jsonl("c.jsonl"))
    assert len(_inits(log)) == 1


def test_a_failing_initializer_stops_the_run_at_once_with_its_traceback(workdir):
    started = time.monotonic()
    with pytest.raises(pararun.InitializerError) as info:
        pararun.map(use_model, [{"id": i} for i in range(1000)], n_workers=2,
                    cache_path="c.jsonl", initializer=broken_init, quiet=True)
    assert time.monotonic() - started < 15
    assert "RuntimeError: the model file is missing" in info.value.traceback
    assert "broken_init" in info.value.traceback  # the user's frame, as a real line
    assert len(read_jsonl("c.jsonl")) == 0


def test_max_tasks_per_worker_replaces_the_worker_and_loses_nothing(workdir):
    log = str(workdir / "init.log")
    summary = pararun.map(use_model, [{"id": i} for i in range(40)], n_workers=1,
                          cache_path="c.jsonl", failures_path="f.jsonl",
                          initializer=load_model, initargs=("m", log),
                          max_tasks_per_worker=10, quiet=True)
    assert (summary.done, summary.failed) == (40, 0)
    records = read_jsonl("c.jsonl")
    assert sorted(r["id"] for r in records) == list(range(40))
    assert max(r["seen"] for r in records) <= 10  # a fresh interpreter every 10 items
    assert len(_inits(log)) == 4
    assert read_jsonl("f.jsonl") == []


def test_max_tasks_per_worker_is_refused_where_it_cannot_hold():
    with pytest.raises(ValueError, match="max_tasks_per_worker"):
        pararun.map(use_model, [1], backend="thread", max_tasks_per_worker=5)


def test_a_failing_initializer_stops_a_thread_or_async_run_too(workdir):
    for kw in ({"backend": "thread"}, {}):
        func = use_thread_model if kw else ause_model
        with pytest.raises(pararun.InitializerError, match="the model file is missing"):
            list(pararun.imap(func, [{"id": i} for i in range(100)], n_workers=4,
                              initializer=broken_init, quiet=True, **kw))
