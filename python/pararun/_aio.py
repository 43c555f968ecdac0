"""aio_map's side of a run: waiting for pararun without blocking the event loop, and feeding
it an async iterable's items."""
import asyncio as _asyncio

from . import _api


async def aio_run(func, iterable, *, n_workers, cache_path, key_field, total, opts):
    """Runs aio_map; returns the run's Summary."""
    is_async_iter = hasattr(iterable, "__aiter__")
    run = _api.start(func, iterable, n_workers=n_workers, backend="thread",
                     cache_path=cache_path, key_field=key_field, total=total, for_imap=False,
                     opts=opts, feed=not is_async_iter)
    loop = _asyncio.get_running_loop()
    feeder = _asyncio.ensure_future(_afeed(run, iterable, key_field)) if is_async_iter else None
    counter = loop.run_in_executor(None, _count, run)
    try:
        await counter
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
        import shutil

        shutil.rmtree(run.tmp, ignore_errors=True)
        raise
    if feeder is not None:
        await feeder
    run.finish(code)
    return run.summary


def _count(run):
    """Counts the records pararun prints (the summary's `done`), until it closes stdout."""
    if run.proc.stdout is None:
        return  # counted from the cache at the end
    n = 0
    try:
        for _ in run.proc.stdout:
            n += 1
    except (OSError, ValueError):
        pass
    run.done = n


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
                run.fed += 1
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
