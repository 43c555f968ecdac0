"""pararun: run a function over every item of an iterable, N at a time, with a crash-safe,
resumable JSONL cache.

The work is done by the pararun binary that comes with this package: items stream to it,
your function runs in persistent Python worker processes that it supervises, and every result
is appended to the cache the moment it is ready, so a crash (even a kill -9) loses no finished
result and the next run skips every item already done.

    import pararun as pr

    def process_file(filename):
        return {"id": filename, "status": "done"}

    pr.map(process_file, (f"data_{i}.txt" for i in range(100)), n_workers=4,
           cache_path="results.jsonl")

Items and results travel as JSON, and workers import `func` by name: define it with `def` at
the top level of a module or of your script.
"""
from . import _state
from ._state import PararunError

# The rest is imported when a run starts: a worker process imports this package too, and
# should not pay for subprocess, ctypes and inspect.

__version__ = "0.2.0"
__all__ = ["map", "aio_map", "imap", "serve", "PararunError"]

#: Items in flight per process worker with backend="process": enough to hide the round trip
#: to pararun (tiny items), few enough that uneven items still spread over the workers.
_PROCESS_PIPELINE = 32
#: The most items the concurrent protocol lets one worker hold.
_MAX_PIPELINE = 1024


def _plan(ref, n_workers, backend):
    """(worker processes, items in flight per worker, worker mode, threads per worker)."""
    n = int(n_workers)
    if n < 1:
        raise ValueError(f"n_workers must be 1 or more, not {n_workers!r}")
    if backend not in ("process", "thread"):
        raise ValueError(f"backend must be 'process' or 'thread', not {backend!r}")
    if ref["is_async"]:
        # Coroutines: all at once in one interpreter (one per 1,024: the protocol's limit).
        # A second process did not help at 500 x asyncio.sleep(0.1): one event loop keeps up.
        procs = -(-n // _MAX_PIPELINE)
        return procs, -(-n // procs), "async", 1
    if backend == "thread":
        procs = -(-n // _MAX_PIPELINE)
        per = -(-n // procs)
        return procs, per, "thread", per
    return n, _PROCESS_PIPELINE, "process", 1


#: The keyword arguments beyond the seed's: pararun's options.
_KNOWN_OPTIONS = frozenset(
    ["retries", "timeout", "rate", "failures_path", "progress", "pipeline", "args"]
)


def _quoted(names):
    """Names quoted as Python writes them."""
    return [repr(n) for n in names]


def _start(func, iterable, n_workers, backend, cache_path, key_field, total, records, options,
           feed=True):
    from . import _func, _run

    unknown = sorted(set(options) - _KNOWN_OPTIONS)
    if unknown:
        raise TypeError(
            f"unexpected keyword argument{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(_quoted(unknown))}; pararun's options are "
            f"{', '.join(sorted(_KNOWN_OPTIONS))}"
        )
    ref = _func.reference(func)
    procs, pipeline, mode, threads = _plan(ref, n_workers, backend)
    if mode == "process" and options.get("timeout") is not None:
        # pararun times an item from when it is sent; items queued behind a slow one in a
        # one-at-a-time worker would be charged for its time.
        pipeline = 1
    pipeline = options.pop("pipeline", None) or pipeline
    argv, env = _run.command(ref, n_workers=procs, pipeline=pipeline, mode=mode, threads=threads,
                             cache_path=cache_path, key_field=key_field, total=total,
                             records=records, **options)
    run = _run.Run(argv, env, records)
    if feed:
        run.start_feeder(iterable, key_field)
    return run


_OPTIONS_DOC = """
    Keyword-only options (pararun's flags):
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
        args: more pararun flags, as a list of strings (`["--fsync", "always"]`).
"""


def map(func, iterable, n_workers=4, backend="process", cache_path=None, key_field="id",
        save_frequency=1000, total=None, **options):
    """Run `func` on every item of `iterable` with `n_workers` at once; return None.

    The seed library's call, unchanged: `func` gets one item and returns its result; with
    `cache_path`, every result is appended to that JSONL file the moment it is ready, and an
    item whose key is already in it is skipped, so a run that was killed picks up where it
    stopped. Like the seed, map returns None: the results are in the cache (use `imap` to get
    them in your program as they finish).

    - `iterable` is read lazily, from a thread, in bounded memory (a generator of 100M items
      is fine). Items must be JSON values: dicts, lists, strings, numbers, booleans, None.
    - An item's key is `item[key_field]` for a dict that has it, and the item itself for a
      string, number or list. A dict without `key_field` is keyed by the value of its only field
      if it has one (`{"url": u}` by `u`), else by the whole dict. A result's `key_field`, if
      it has one, must be its item's key; the record in the cache is the result with the key
      first (a result that is not a dict becomes `{key_field: key, "result": result}`).
    - `func` must be importable by name: defined with `def` at the top level of a module or of
      the script being run (with or without an `if __name__ == "__main__":` guard; without
      one, each worker runs the script's top level up to this call). A lambda, a closure or a
      local function raises TypeError.
    - `backend="process"` runs `n_workers` worker processes; `"thread"` runs one worker
      process with `n_workers` threads (for blocking I/O). A coroutine function runs as
      aio_map would run it.
    - An exception in `func` fails that item alone: pararun reports it on stderr (and in
      `failures_path`) with the traceback's tail, the run goes on, and the item runs again
      next time. A worker that crashes is replaced.
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
    run = _start(func, iterable, n_workers, backend, cache_path, key_field, total, False, options)
    run.wait()
    return None


def imap(func, iterable, n_workers=4, backend="process", cache_path=None, key_field="id",
         save_frequency=1000, total=None, **options):
    """Like map, but yield each new record (a dict: the result, with its key) as it finishes,
    in completion order.

    Items already in the cache are skipped and not yielded (read the cache for them). Leaving
    the loop early (break, an exception) stops the run cleanly: finished results stay cached.
    """
    if _state.skip_call():
        return iter(())
    run = _start(func, iterable, n_workers, backend, cache_path, key_field, total, True, options)
    return _records(run)


def _records(run):
    import json

    out = run.proc.stdout
    loads = json.loads
    finished = False
    try:
        for line in out:
            yield loads(line)
        finished = True
    except KeyboardInterrupt:  # one clean stop, then this same KeyboardInterrupt, once
        run.interrupt()
        _drain(run)
        run.reap()
        raise
    finally:
        if not finished and not run.interrupted:
            run._restore_signals()
            run.terminate()
            run.close_stdin()
            _drain(run)
            run.reap()
    if finished:
        run.wait()


def _drain(run):
    """Reads and drops what pararun still prints, so that it is never blocked on stdout."""
    while True:
        try:
            for _ in run.proc.stdout:
                pass
            return
        except KeyboardInterrupt:
            run.interrupt()
        except (OSError, ValueError):
            return


async def aio_map(func, iterable, n_workers=10, cache_path=None, key_field="id",
                  save_frequency=1000, total=None, **options):
    """Run `func` on every item of `iterable`, `n_workers` at once; return None when done.

    The seed library's async call, unchanged. `func` is a coroutine function (`async def`):
    the items run as tasks in one worker process (one per 1,024), up to `n_workers` at once,
    so 500 concurrent requests cost one interpreter, not 500. A plain function
    runs in `n_workers` threads of one worker process. `iterable` may be a sync or an async
    iterable; it is read lazily. The event loop stays free while the run goes on.

    Everything else is as in `map`: keys, the cache (each result written at once;
    `save_frequency` does nothing), failures, Ctrl-C, and the keyword options.
    """
    import asyncio as _asyncio

    if _state.skip_call():
        return None
    is_async_iter = hasattr(iterable, "__aiter__")
    run = _start(func, iterable, n_workers, "thread", cache_path, key_field, total, False,
                 options, feed=not is_async_iter)
    loop = _asyncio.get_running_loop()
    feeder = _asyncio.ensure_future(_afeed(run, iterable, key_field)) if is_async_iter else None
    try:
        code = await loop.run_in_executor(None, run.proc.wait)
    except (_asyncio.CancelledError, KeyboardInterrupt):
        run.interrupt()
        if feeder is not None:
            feeder.cancel()
        while True:
            try:
                await _asyncio.shield(loop.run_in_executor(None, run.proc.wait))
                break
            except (_asyncio.CancelledError, KeyboardInterrupt):
                run.interrupt()
        run._restore_signals()
        raise
    if feeder is not None:
        await feeder
    run.finish(code)
    return None


async def _afeed(run, aiterable, key_field):
    """Feeds an async iterable's items to pararun from the event loop: big writes, done by one
    thread in order, and a timer so that an iterable waiting on I/O never holds back items it
    already gave."""
    import asyncio as _asyncio
    from concurrent.futures import ThreadPoolExecutor

    from . import _run

    loop = _asyncio.get_running_loop()
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pararun-writer")
    parts = []
    size = 0
    timer = None
    last = None
    broken = []

    def write(data):
        if broken:
            return
        try:
            _run._write_all(run.stdin_fd, data)
        except OSError as e:  # pararun stopped reading: it is stopping, and says why
            broken.append(e)

    def flush():
        nonlocal parts, size, timer, last
        if timer is not None:
            timer.cancel()
            timer = None
        if not parts:
            return last
        parts.append("")
        data = "\n".join(parts).encode()
        parts, size = [], 0
        last = loop.run_in_executor(writer, write, data)
        return last

    try:
        try:
            async for item in aiterable:
                if broken:
                    break
                parts.append(_run.encode(item, key_field))
                size += len(parts[-1])
                if size >= _run._BATCH_BYTES:
                    await flush()
                elif timer is None:
                    timer = loop.call_later(_run._BATCH_SECONDS, flush)
        except _asyncio.CancelledError:
            raise
        except BaseException as e:
            # The iterable raised, or an item is not JSON: the items it gave before still
            # run, and aio_map raises `e` once they are done.
            run.error = e
        pending = flush()
        if pending is not None:
            await pending
    finally:
        if timer is not None:
            timer.cancel()
        writer.shutdown(wait=True)
        run.close_stdin()


def serve(func, key_field="id", threads=None):
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
    from . import _worker

    _worker.serve(func, key_field, threads)


# The options' description, shared by these docstrings (a docstring must be a literal).
map.__doc__ += _OPTIONS_DOC
imap.__doc__ += _OPTIONS_DOC
aio_map.__doc__ += _OPTIONS_DOC
