"""pararun: run a function over every item of an iterable, N at a time, with a crash-safe,
resumable JSONL cache.

The work is done by the pararun binary that comes with this package: items stream to it,
your function runs in persistent Python worker processes that it supervises, and every result
is appended to the cache the moment it is ready, so a crash (even a kill -9) loses no finished
result and the next run skips every item already done.

    import pararun as pr

    def process_file(filename):
        return {"id": filename, "status": "done"}

    summary = pr.map(process_file, (f"data_{i}.txt" for i in range(100)), n_workers=4,
                     cache_path="results.jsonl")
    print(summary.done, summary.failed)           # what this run did
    results = pr.load("results.jsonl")            # every record, by key

Items and results travel as JSON. A function workers can import goes by name; any other (a
lambda, a closure, one defined in a notebook or `python -c`) is sent by value with
cloudpickle.
"""
import os
from typing import (Any, AsyncIterable, Callable, Dict, Iterable, Iterator, Optional,
                    Sequence, Union)

from . import _state
from ._cache import load, read
from ._state import PararunError, Throttled
from ._summary import Failure, InitializerError, ItemsFailed, Summary

# The rest is imported when a run starts: a worker process imports this package too, and
# should not pay for subprocess, ctypes and inspect.

__version__ = "0.2.0"
__all__ = ["map", "aio_map", "imap", "serve", "read", "load", "Summary", "Failure",
           "ItemsFailed", "InitializerError", "PararunError", "Throttled"]

PathLike = Union[str, "os.PathLike[str]"]

_OPTIONS_DOC = """
    Keyword-only options:
        quiet: True hides pararun's own lines on stderr (the summary, failures, the bar; what
            func prints too). Failures are still in the returned summary and failures_path.
        desc: a line printed on stderr before the run starts, naming it (pararun's bar has no
            label of its own yet).
        n_jobs: joblib's and mpire's name for n_workers; -1 is every CPU, -2 all but one.
        initializer, initargs: `initializer(*initargs)` runs once in each worker process
            before its first item (in each thread of a backend="thread" worker; once, awaited
            if it is a coroutine function, in an async worker): load a model there, keep it in
            a global. If it raises, the run stops at once and InitializerError carries its
            traceback.
        max_tasks_per_worker: a process worker becomes a fresh interpreter (same pid, nothing
            lost or re-run) after this many items, for memory that grows in long runs
            (backend="process" with a plain function only).
        raise_on_failure: raise ItemsFailed (carrying the summary) at the end if items failed.
        retries: retry a failed item this many more times (--retries).
        timeout: seconds (or "2m") an item may take: then func is interrupted (a coroutine
            cancelled; a thread is left to finish) and the item fails, "timed out" (--timeout,
            which pararun enforces a second later should func not be interruptible). With
            backend="process" each worker then holds one item at a time.
        rate: start at most this many items per second, or a string such as "100/m" (--rate).
        failures_path: append one JSON line per failed item to this file, with its traceback's
            tail (--failures).
        progress: True forces pararun's progress bar on stderr, False turns it off; by default
            it shows on a terminal (--progress / --no-progress).
        pipeline: items in flight per worker process (--pipeline). The default suits most
            work: 32 per process for map, n_workers in all for coroutines and threads. More
            (256) speeds up many tiny items; 1 spreads long, uneven items best.
        chunksize: Pool's and joblib's name, accepted as `pipeline` when that is not given:
            pararun sends items one by one (batched into big writes), never in fixed chunks,
            so what chunksize tunes there is how many items a worker holds at once.
        args: more pararun flags, as a list of strings (`["--fsync", "always"]`). Flags that
            would hide the records (-q, --no-records) are refused by imap, dropped (with a
            note, quiet=True taking their place) by map and aio_map.
"""


def _opts(**kw):
    return {k: v for k, v in kw.items() if v is not None}


def map(func: Callable[[Any], Any], iterable: Iterable[Any], n_workers: int = 4,
        backend: str = "process", cache_path: Optional[PathLike] = None, key_field: str = "id",
        save_frequency: int = 1000, total: Optional[int] = None, *, quiet: bool = False,
        desc: Optional[str] = None, n_jobs: Optional[int] = None,
        initializer: Optional[Callable[..., Any]] = None, initargs: Sequence[Any] = (),
        max_tasks_per_worker: Optional[int] = None, raise_on_failure: bool = False,
        retries: Optional[int] = None, timeout: Union[float, str, None] = None,
        rate: Union[float, str, None] = None, failures_path: Optional[PathLike] = None,
        progress: Optional[bool] = None, pipeline: Optional[int] = None,
        chunksize: Optional[int] = None, args: Sequence[str] = ()) -> Optional[Summary]:
    """Run `func` on every item of `iterable` with `n_workers` at once; return a Summary.

    The seed library's call, unchanged: `func` gets one item and returns its result; with
    `cache_path`, every result is appended to that JSONL file the moment it is ready, and an
    item whose key is already in it is skipped, so a run that was killed picks up where it
    stopped. The Summary says what the run did (`done`, `cached`, `failed`, `retried`,
    `elapsed`, and `failures`: the first 100 failed items' key, exception type and message);
    a program that ignores it, as the seed's did None, is unaffected. Get the results with
    `imap`, or afterwards with `pararun.load(cache_path)`.

    - `iterable` is read lazily, from a thread, in bounded memory (a generator of 100M items
      is fine). Items must be JSON values: dicts, lists, strings, numbers, booleans, None.
    - An item's key is `item[key_field]` for a dict that has it, and the item itself for a
      string, number or list. A dict without `key_field` is keyed by the value of its only field
      if it has one (`{"url": u}` by `u`), else by the whole dict. A result's `key_field`, if
      it has one, must be its item's key; the record in the cache is the result with the key
      first (a result that is not a dict becomes `{key_field: key, "result": result}`).
    - `func`: a function defined with `def` at the top level of a module or of the script
      being run goes to the workers by name (without an `if __name__ == "__main__":` guard,
      each worker runs the script's top level up to this call). Any other callable (a lambda,
      a closure, a functools.partial, a bound method, a function defined in a notebook, a
      REPL or `python -c`) is pickled by value with cloudpickle; one that cannot be pickled
      raises TypeError naming it.
    - `backend="process"` runs `n_workers` worker processes; `"thread"` runs one worker
      process with `n_workers` threads (for blocking I/O). A coroutine function runs as
      aio_map would run it.
    - An exception in `func` fails that item alone: pararun reports it on stderr (and in
      `failures_path`) starting with the exception line (`ValueError: bad item 997`) and the
      traceback's last frames; the run goes on, and the item runs again next time. A worker
      that crashes is replaced.
    - `save_frequency` is accepted for compatibility and does nothing: every result is
      written to the cache at once, so there is no buffer to lose.
    - `total` sets the progress bar's total (the bar counts cached items too).
    - Ctrl-C stops the run cleanly (finished results are kept) and raises KeyboardInterrupt;
      a second Ctrl-C kills the workers at once. If this Python process dies, pararun stops
      its workers and keeps every finished result.
    - Raises PararunError when pararun cannot run (for instance another run holds the
      cache's lock), and re-raises an exception from iterating `iterable`.
    """
    if _state.skip_call():
        return None
    from . import _api

    opts = _opts(quiet=quiet, desc=desc, initializer=initializer, initargs=initargs,
                 max_tasks_per_worker=max_tasks_per_worker, retries=retries, timeout=timeout,
                 rate=rate, failures_path=failures_path, progress=progress, pipeline=pipeline,
                 chunksize=chunksize, args=args)
    run = _api.start(func, iterable, n_workers=_api.workers(n_workers, n_jobs),
                     backend=backend, cache_path=cache_path, key_field=key_field, total=total,
                     for_imap=False, opts=opts)
    if run.proc.stdout is None:
        run.wait()
    else:
        for _ in _api.records(run, parse=False):
            pass
    return _ended(run.summary, raise_on_failure)


def _ended(summary, raise_on_failure):
    if raise_on_failure and summary.failed:
        raise ItemsFailed(summary)
    return summary


def imap(func: Callable[[Any], Any], iterable: Iterable[Any], n_workers: int = 4,
         backend: str = "process", cache_path: Optional[PathLike] = None, key_field: str = "id",
         save_frequency: int = 1000, total: Optional[int] = None, *, ordered: bool = False,
         include_cached: bool = False, return_exceptions: bool = False, quiet: bool = False,
         desc: Optional[str] = None, n_jobs: Optional[int] = None,
         initializer: Optional[Callable[..., Any]] = None, initargs: Sequence[Any] = (),
         max_tasks_per_worker: Optional[int] = None, retries: Optional[int] = None,
         timeout: Union[float, str, None] = None, rate: Union[float, str, None] = None,
         failures_path: Optional[PathLike] = None, progress: Optional[bool] = None,
         pipeline: Optional[int] = None, chunksize: Optional[int] = None,
         args: Sequence[str] = ()) -> Iterator[Union[Dict[str, Any], Failure]]:
    """Like map, but yield each new record (a dict: the result, with its key) as it finishes,
    in completion order.

    - `ordered=True` yields the new records in input order instead (pararun's --keep-order:
      a record waits for those before it).
    - `include_cached=True` also yields the record of each item the cache already has (as
      the iterable reaches it), so a resumed run yields every item's result. The cache's
      records are read into memory first.
    - `return_exceptions=True` also yields a Failure (key, exc_type, message, traceback,
      reason) for each item that failed, after its last attempt, with the next record or at
      the end.

    Without include_cached, items already in the cache are skipped and not yielded. Leaving
    the loop early (break, an exception) stops the run cleanly: finished results stay cached.
    """
    if _state.skip_call():
        return iter(())
    from . import _api

    opts = _opts(quiet=quiet, desc=desc, initializer=initializer, initargs=initargs,
                 max_tasks_per_worker=max_tasks_per_worker, retries=retries, timeout=timeout,
                 rate=rate, failures_path=failures_path, progress=progress, pipeline=pipeline,
                 chunksize=chunksize, args=args, ordered=ordered)
    hits = []
    if include_cached:
        iterable = _api.with_cached(iterable, cache_path, key_field, hits)
    run = _api.start(func, iterable, n_workers=_api.workers(n_workers, n_jobs),
                     backend=backend, cache_path=cache_path, key_field=key_field, total=total,
                     for_imap=True, opts=opts)
    stream = _api.records(run, failures=[] if return_exceptions else None)
    return _with_hits(stream, hits) if include_cached else stream


def _with_hits(stream, hits):
    """The run's records, and the cached ones the feeder found, as they come."""
    for record in stream:
        while hits:
            yield hits.pop(0)
        yield record
    while hits:
        yield hits.pop(0)


async def aio_map(func: Callable[[Any], Any], iterable: Union[Iterable[Any], AsyncIterable[Any]],
                  n_workers: int = 10, cache_path: Optional[PathLike] = None,
                  key_field: str = "id", save_frequency: int = 1000,
                  total: Optional[int] = None, *, quiet: bool = False,
                  desc: Optional[str] = None, n_jobs: Optional[int] = None,
                  initializer: Optional[Callable[..., Any]] = None, initargs: Sequence[Any] = (),
                  raise_on_failure: bool = False, retries: Optional[int] = None,
                  timeout: Union[float, str, None] = None, rate: Union[float, str, None] = None,
                  failures_path: Optional[PathLike] = None, progress: Optional[bool] = None,
                  pipeline: Optional[int] = None, chunksize: Optional[int] = None,
                  args: Sequence[str] = ()) -> Optional[Summary]:
    """Run `func` on every item of `iterable`, `n_workers` at once; return a Summary when
    done.

    The seed library's async call, unchanged. `func` is a coroutine function (`async def`):
    the items run as tasks in one worker process (one per 1,024), up to `n_workers` at once,
    so 500 concurrent requests cost one interpreter, not 500. A plain function
    runs in `n_workers` threads of one worker process. `iterable` may be a sync or an async
    iterable; it is read lazily. The event loop stays free while the run goes on.

    Everything else is as in `map`: keys, the cache (each result written at once;
    `save_frequency` does nothing), failures, the Summary, Ctrl-C, and the keyword options.
    """
    if _state.skip_call():
        return None
    from . import _aio, _api

    opts = _opts(quiet=quiet, desc=desc, initializer=initializer, initargs=initargs,
                 retries=retries, timeout=timeout, rate=rate, failures_path=failures_path,
                 progress=progress, pipeline=pipeline, chunksize=chunksize, args=args)
    summary = await _aio.aio_run(func, iterable, n_workers=_api.workers(n_workers, n_jobs),
                                 cache_path=cache_path, key_field=key_field, total=total,
                                 opts=opts)
    return _ended(summary, raise_on_failure)


def serve(func: Callable[[Any], Any], key_field: str = "id",
          threads: Optional[int] = None) -> None:
    """Make this program a `pararun --persistent` worker that runs `func` on each item:

        # work.py
        import pararun

        def work(item):
            return {"words": len(item["text"].split())}

        if __name__ == "__main__":
            pararun.serve(work)

        # pararun --persistent -i items.jsonl --cache out.jsonl -- python3 work.py
        # pararun --persistent --protocol concurrent --pipeline 200 -j 1 ... -- python3 work.py

    `func` may be a plain or a coroutine function. The protocol is seen from the first
    request: with `--protocol concurrent` every request carries an id, answers go out in any
    order, a coroutine function runs up to `--pipeline` items at once as tasks (a plain one
    one at a time, or in `threads` threads), and an exception fails its item alone with the
    traceback's tail. With the default ordered protocol items run one at a time, in order, the
    answer echoes the item's key (so pararun pipelines it), and an exception ends the worker
    (the item fails with the traceback on stderr, and pararun starts a new worker). What
    `func` prints goes to stderr. Returns when pararun closes stdin.
    """
    from . import _serve

    _serve.serve(func, key_field, threads)


# The options' description, shared by these docstrings (a docstring must be a literal). Under
# `python -OO` docstrings are None, and so stay.
for _f in (map, imap, aio_map):
    if _f.__doc__:
        _f.__doc__ += _OPTIONS_DOC
del _f
