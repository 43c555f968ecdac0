"""The worker process that pararun starts for map/aio_map/imap (`python -m pararun._worker`),
and the loops that `serve` runs.

It speaks pararun's concurrent protocol: requests `{"pararun_id": N, "item": ITEM}` on stdin,
answers `{"pararun_id": N, "result": R}` or `{"pararun_id": N, "error": "..."}` on stdout.
The user's function may print: its stdout goes to stderr, which pararun passes through, and
the protocol keeps a descriptor of its own.
"""
import json
import os
import sys
import traceback

from . import _codec
from ._core import Core, ItemTimeout, WorkerSignal
from ._state import ENV

_dumps = _codec.dumps
_loads = json.loads


def _write_all(fd, data):
    """Writes all of `data` to `fd`."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _private_stdio():
    """Keeps stdin and stdout for the protocol on descriptors of their own, and points fds 0
    and 1 (and sys.stdin, sys.stdout) at /dev/null and stderr, so that what the function prints
    reaches the terminal through pararun instead of corrupting the protocol."""
    rfd = os.dup(0)
    wfd = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    return rfd, wfd


def _parse(body):
    """The requests in a run of complete lines: one json.loads for the lot when it can."""
    try:
        return _loads(b"[" + body.replace(b"\n", b",") + b"]")
    except ValueError:
        return [_loads(line) for line in body.split(b"\n") if line.strip()]


class _Stopped(WorkerSignal):
    """SIGTERM from pararun (a clean stop): answer what is done, then exit."""


def run_sync(core, rfd, wfd, rest=b"", answer=None, max_tasks=None):
    """Concurrent protocol (or serve's ordered one), one item at a time. Each answer is written
    before the next item starts, so that an item which ends the process (`os._exit`, a crash)
    cannot take the answers before it along: pararun has read them all when it sees the worker
    die, and fails the item that was running, not one that had finished (a thread gathering
    answers into fewer writes lost them then). On SIGTERM (pararun stopping) the worker exits
    at once: pararun reads no more answers, and runs the items in flight again next time."""
    import signal

    if answer is None and core.timeout:
        def on_alarm(signum, frame):
            raise ItemTimeout()

        signal.signal(signal.SIGALRM, on_alarm)
        answer = core.timed_answer
    answer = answer or core.answer

    def on_term(signum, frame):
        raise _Stopped()

    signal.signal(signal.SIGTERM, on_term)
    try:
        buf = rest
        while True:
            end = buf.rfind(b"\n")
            if end < 0:
                chunk = os.read(rfd, 1 << 20)
                if chunk:
                    buf += chunk
                elif buf.strip():  # a last line without its newline
                    buf += b"\n"
                else:
                    break
                continue
            body, buf = buf[:end], buf[end + 1:]
            requests = _parse(body)
            for i, request in enumerate(requests):
                if max_tasks is not None:
                    if max_tasks <= 0:  # renewed when there is more to do, not at the end
                        _renew(rfd, wfd, requests[i:], buf)
                    max_tasks -= 1
                data = answer(request).encode()
                try:
                    _write_all(wfd, data)
                except BrokenPipeError:
                    return  # pararun is gone
    except (_Stopped, _Exit) as e:
        os._exit(1 if isinstance(e, _Exit) else 0)


async def run_async(core, rfd, wfd, threads, rest=b"", init=None, spec=None):
    """Concurrent protocol, many items at once: a task per request for a coroutine function,
    or a pool of `threads` threads for a plain one. Answers that finish in the same turn of
    the event loop go out in one write."""
    import asyncio
    import inspect
    from concurrent.futures import ThreadPoolExecutor

    from . import _init

    loop = asyncio.get_running_loop()
    is_async = inspect.iscoroutinefunction(core.func)
    if init is not None and is_async:
        await _init.run_async_or_stop(init, spec)  # once, before the first item
    pool = None if is_async else ThreadPoolExecutor(
        max_workers=max(1, threads),
        initializer=None if init is None else _init.run_or_stop, initargs=(init, spec))
    pending = []

    def flush():
        data = "".join(pending).encode()
        pending.clear()
        _write_all(wfd, data)

    def done(fut):
        rid, key = flight.pop(fut)
        if not pending:
            loop.call_soon(flush)
        pending.append(_answer_of(core, fut, rid, key, timeout))

    reader = asyncio.StreamReader(limit=1 << 30)
    if rest:
        reader.feed_data(rest)
        rest = b""
    read_file = os.fdopen(rfd, "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), read_file)
    # Items in flight, by their task or future (the loop keeps only weak references to tasks).
    flight = {}
    func = core.func
    timeout = core.timeout

    while True:
        chunk = await reader.read(1 << 20)
        if not chunk:
            if not rest.strip():
                break
            chunk, rest = rest + b"\n", b""
        elif rest:
            chunk = rest + chunk
        end = chunk.rfind(b"\n")
        if end < 0:
            rest = chunk
            continue
        rest = chunk[end + 1:]
        for request in _parse(chunk[:end]):
            rid = request["pararun_id"]
            item, key = core.unwrap(request["item"])
            try:
                if is_async:
                    coro = _guarded(func(item))
                    if timeout:
                        coro = asyncio.wait_for(coro, timeout)
                    fut = loop.create_task(coro)
                else:
                    fut = loop.run_in_executor(pool, func, item)
            except Exception as e:
                pending.append(core.error(rid, key, e))
                if len(pending) == 1:
                    loop.call_soon(flush)
                continue
            flight[fut] = (rid, key)
            fut.add_done_callback(done)
    # EOF: pararun asks the worker to end once the items in flight are answered.
    while flight:
        await asyncio.wait(set(flight))
    await asyncio.sleep(0)
    if pending:
        flush()
    if pool is not None:
        pool.shutdown(wait=False)


def _answer_of(core, fut, rid, key, timeout):
    """The answer for a finished task or thread future of run_async."""
    import asyncio

    try:
        result = fut.result()
    except asyncio.TimeoutError as e:
        return core.timed_out(rid, key) if timeout else core.error(rid, key, e)
    except _Escaped as e:  # a coroutine's, see _guarded
        return core.escaped(rid, key, e.__cause__)
    except (SystemExit, KeyboardInterrupt) as e:  # a thread's, kept by its future
        return core.escaped(rid, key, e)
    except (Exception, asyncio.CancelledError) as e:
        return core.error(rid, key, e)
    except WorkerSignal:
        raise
    except BaseException as e:  # GeneratorExit, a bare BaseException: still this item's alone
        return core.error(rid, key, e)
    return core.result(rid, key, result)


class _Escaped(Exception):
    """SystemExit or KeyboardInterrupt (its `__cause__`) from a coroutine: asyncio lets those
    out of a task, which would end the loop and every item in flight."""


async def _guarded(coro):
    """Runs a coroutine of func's, turning SystemExit and KeyboardInterrupt into `_Escaped`."""
    try:
        return await coro
    except (SystemExit, KeyboardInterrupt) as e:
        raise _Escaped() from e


def main():
    """Entry point of a worker that pararun started for the library (or that replaced itself
    after max_tasks_per_worker items, see _renew)."""
    from . import _init

    raw = os.environ.pop(ENV)
    spec = json.loads(raw)
    sys.path[:] = spec["sys_path"]
    sys.argv[:] = spec["argv"]
    rfd, wfd, rest = _init.renewed_stdio()
    if rfd is None:
        rfd, wfd = _private_stdio()
    _init.remember(raw)
    from . import _func

    try:
        func = _func.load(spec["ref"])
    except BaseException as e:  # answer every item with why, rather than die per item
        message = "".join(traceback.format_exception_only(type(e), e)).strip()
        sys.stderr.write(f"pararun worker: cannot load func: {message}\n")
        func = _Broken(message)
    core = Core(func, spec["key_field"], spec.get("timeout"), spec.get("errors_path"))
    init = _init.initializer(spec)
    if spec["mode"] == "process" and not spec["ref"]["is_async"]:
        if init is not None:
            _init.run_or_stop(init, spec)
        run_sync(core, rfd, wfd, rest, max_tasks=spec.get("max_tasks"))
    else:
        import asyncio

        asyncio.run(run_async(core, rfd, wfd, spec["threads"], rest, init, spec))


def _renew(rfd, wfd, requests, buf):
    """max_tasks_per_worker: this process has run its share, so it becomes a fresh one (exec,
    same pid and pipes, so pararun sees no exit and loses no item), carrying the requests it
    read and has not run."""
    from . import _init

    left = b"".join(_dumps(r).encode() + b"\n" for r in requests) + buf
    _init.exec_fresh(rfd, wfd, left)


class _Exit(Exception):
    """An ordered-protocol worker ends after an exception in func."""


class _Broken:
    def __init__(self, message):
        self.message = message

    def __call__(self, item):
        raise RuntimeError(f"pararun worker cannot load func: {self.message}")


if __name__ == "__main__":
    main()
