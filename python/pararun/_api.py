"""How map, imap and aio_map turn their arguments into one run of pararun: the plan of
workers, the options, the files a run shares with its workers, and the summary at its end."""
import os
import shutil
import sys
import tempfile

from . import _summary

#: Items in flight per process worker with backend="process": enough to hide the round trip
#: to pararun (tiny items), few enough that uneven items still spread over the workers.
_PROCESS_PIPELINE = 32
#: The most items the concurrent protocol lets one worker hold.
_MAX_PIPELINE = 1024
#: pararun flags that would empty imap's channel (its stdout) or hide what the summary needs.
_CHANNEL_FLAGS = ("-q", "--quiet", "--no-records")


def workers(n_workers, n_jobs):
    """The number of workers: n_jobs (joblib's name; -1 every CPU, -2 all but one) wins."""
    if n_jobs is None:
        return n_workers
    n = int(n_jobs)
    if n < 0:
        n = max(1, (os.cpu_count() or 1) + 1 + n)
    return n


def plan(ref, n_workers, backend):
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


def _checked_args(args, for_imap):
    """`args` without the flags that would empty the records channel: imap refuses them (its
    records are what it yields), map and aio_map drop them with a note (their records only
    feed the summary; quiet=True is how to hide pararun's lines)."""
    args = list(args or ())
    bad = [a for a in args if a in _CHANNEL_FLAGS]
    if not bad:
        return args, False
    if for_imap:
        raise ValueError(
            f"imap(args=...) cannot take {', '.join(bad)}: it would print no records, and imap "
            f"yields nothing without them; pass quiet=True to hide pararun's own lines"
        )
    sys.stderr.write(f"pararun: note: {', '.join(bad)} in args= is ignored (map reads the "
                     f"records for its summary); quiet=True is used instead\n")
    return [a for a in args if a not in _CHANNEL_FLAGS], True


def start(func, iterable, *, n_workers, backend, cache_path, key_field, total, for_imap, opts,
          feed=True):
    """Starts one run; returns the Run, whose `summary` (a Summary) is set when it has
    finished."""
    from . import _func, _run

    opts = dict(opts)
    args, quiet = _checked_args(opts.pop("args", ()), for_imap)
    quiet = bool(opts.pop("quiet", False)) or quiet
    desc = opts.pop("desc", None)
    chunksize = opts.pop("chunksize", None)
    initializer = opts.pop("initializer", None)
    initargs = tuple(opts.pop("initargs", ()) or ())
    max_tasks = opts.pop("max_tasks_per_worker", None)
    keep_order = bool(opts.pop("ordered", False))
    ref = _func.reference(func)
    procs, pipeline, mode, threads = plan(ref, n_workers, backend)
    if max_tasks is not None and (mode != "process" or int(max_tasks) < 1):
        raise ValueError(
            f"max_tasks_per_worker={max_tasks!r}: it must be 1 or more, and applies to "
            f"backend='process' with a plain function (a thread or async worker runs many "
            f"items at once in one process)")
    if mode == "process" and opts.get("timeout") is not None:
        # pararun times an item from when it is sent; items queued behind a slow one in a
        # one-at-a-time worker would be charged for its time.
        pipeline = 1
    pipeline = opts.pop("pipeline", None) or chunksize or pipeline
    tmp = tempfile.mkdtemp(prefix="pararun-run-")
    failures = opts.pop("failures_path", None)
    # The summary's failures come from pararun's --failures file when the user asks for one,
    # else from the workers' note of each error answer (a --failures file of the package's
    # own would be named by pararun's summary line, then deleted). The workers' note misses
    # items whose worker crashed (os._exit, a signal): pararun's summary line counts them.
    extra = {"init_failed_path": os.path.join(tmp, "init-failed"),
             "max_tasks": None if max_tasks is None else int(max_tasks),
             "errors_path": None if failures is not None else os.path.join(tmp, "errors")}
    try:
        if "pickled" in ref:
            ref["pickled_path"] = _write(tmp, "func.pickle", ref.pop("pickled"))
        if initializer is not None:
            extra["init_path"] = _write(
                tmp, "init.pickle", _func.pickled((initializer, initargs), "initializer"))
        if failures is not None:
            failures = os.fspath(failures)
            offset = _size(failures)
        stderr = open(os.path.join(tmp, "stderr"), "wb") if quiet else None
        # map and aio_map count what a run did from what it appended to the cache (cheaper
        # than reading every record from a pipe); without a cache, from the records.
        records = for_imap or cache_path is None
        cache_at = None if records else _size(cache_path)
        argv, env = _run.command(ref, n_workers=procs, pipeline=pipeline, mode=mode,
                                 threads=threads, cache_path=cache_path, key_field=key_field,
                                 total=total, records=records, failures_path=failures,
                                 args=args, keep_order=keep_order, worker_extra=extra, **opts)
        if desc and not quiet:
            sys.stderr.write(f"{desc}\n")
        run = _run.Run(argv, env, records, stderr=stderr)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    run.done = 0
    run.cache_at = None if cache_at is None else (os.fspath(cache_path), cache_at)
    run.tmp = tmp
    run.failures_at = (failures, offset) if failures is not None else None
    run.errors_at = (extra["errors_path"], int(opts.get("retries") or 0))
    run.on_finish = lambda code: _finished(run, tmp, stderr, extra["init_failed_path"])
    if feed:
        run.start_feeder(iterable, key_field)
    return run


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _appended_lines(path, offset):
    """The records pararun appended to the cache at `path` after byte `offset` (one line
    each; the newline it writes first after a torn tail is not one)."""
    try:
        with open(path, "rb") as f:
            if offset:
                f.seek(offset - 1)
                torn = f.read(1) != b"\n"
            else:
                torn = False
            data = f.read()
    except OSError:
        return 0
    if torn and data.startswith(b"\n"):
        data = data[1:]
    return data.count(b"\n")


def _write(tmp, name, data):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _finished(run, tmp, stderr, init_failed):
    """At the end of a run: the summary, then the temporary files go; a failed initializer
    raises InitializerError."""
    if run.failures_at is not None:
        failed, retried, kept = _summary.read_failures(*run.failures_at)
    else:
        failed, retried, kept = _summary.read_errors(*run.errors_at)
    if run.cache_at is not None:
        run.done = _appended_lines(*run.cache_at)
    run.summary = _summary.Summary(
        done=run.done, cached=max(0, run.fed - run.done - failed), failed=failed, given_up=0,
        retried=retried, elapsed=round(__import__("time").monotonic() - run.started, 3),
        failures=kept)
    text = None
    if os.path.exists(init_failed):
        with open(init_failed) as f:
            text = f.read()
    if stderr is not None:
        stderr.close()
        if run.proc.returncode not in (0, 1):  # pararun's own message would be lost
            with open(stderr.name, "rb") as f:
                sys.stderr.write(f.read()[-4000:].decode(errors="replace"))
    shutil.rmtree(tmp, ignore_errors=True)
    if text is not None:
        raise _summary.InitializerError(text)


def records(run, parse=True, failures=None):
    """Yields pararun's records (parsed, or counted only) as they come; with `failures` (a
    list), also the Failure of each item that failed, when the next record comes or at the
    end. Leaving early stops the run cleanly."""
    import json

    out = run.proc.stdout
    loads = json.loads
    finished = False
    tail = None
    if failures is not None:
        tail = (_FailureTail(*run.failures_at) if run.failures_at is not None
                else _FailureTail(run.errors_at[0], 0, run.errors_at[1]))
    try:
        for line in out:
            run.done += 1
            yield loads(line) if parse else line
            if tail is not None:
                yield from tail.new()
        finished = True
    except KeyboardInterrupt:  # one clean stop, then this same KeyboardInterrupt, once
        run.interrupt()
        drain(run)
        run.reap()
        raise
    finally:
        if not finished and not run.interrupted:
            run._restore_signals()
            run.terminate()
            run.close_stdin()
            drain(run)
            run.reap()
        if not finished:
            shutil.rmtree(run.tmp, ignore_errors=True)
    if finished:
        run.proc.wait()
        if tail is not None:
            yield from tail.new()
        run.wait()


class _FailureTail:
    """Reads the failures pararun appends to its failures file, as they are written."""

    def __init__(self, path, offset, retries=None):
        # With `retries` (the workers' note, one line per attempt), an item is yielded at its
        # last attempt only.
        self.path, self.offset, self.retries = path, offset, retries
        self.attempts = {}

    def new(self):
        """The Failures written since the last call."""
        import json

        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self.offset += end
        out = []
        for line in data[:end].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if self.retries is not None:
                key = json.dumps(record.get("key"), sort_keys=True)
                self.attempts[key] = self.attempts.get(key, 0) + 1
                if self.attempts[key] <= self.retries:
                    continue
            out.append(_summary.failure_from_record(record))
        return out


def drain(run):
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


def with_cached(iterable, cache_path, key_field, hits):
    """`iterable`, noting in `hits` the cached record of each item the cache already has
    (imap's include_cached). The cache's records are read first, into memory."""
    import json

    from . import _cache

    if cache_path is None or not os.path.exists(cache_path):
        yield from iterable
        return
    index = {json.dumps(r[key_field], sort_keys=True): r
             for r in _cache.read(cache_path, key_field)}
    for item in iterable:
        record = index.pop(_cache.key_text(item, key_field), None)
        if record is not None:
            hits.append(record)
        yield item
