"""The loops `pararun.serve` runs: the protocol is the first request's (concurrent or
ordered), on the worker machinery of _worker."""
import sys
import traceback

from ._worker import Core, _Exit, _dumps, _loads, _private_stdio, run_async, run_sync


def serve(func, key_field, threads):
    """pararun.serve: the protocol is the first request's."""
    import os

    rfd, wfd = _private_stdio()
    rest = b""
    while b"\n" not in rest:
        chunk = os.read(rfd, 1 << 20)
        if not chunk:
            break
        rest += chunk
    if not rest.strip():
        return
    first = rest.split(b"\n", 1)[0]
    try:
        head = _loads(first)
    except ValueError:
        head = None
    core = Core(func, key_field)
    import asyncio
    import inspect

    is_async = inspect.iscoroutinefunction(func)
    if type(head) is dict and "pararun_id" in head and "item" in head:
        if is_async or threads:
            asyncio.run(run_async(core, rfd, wfd, threads or 1, rest))
        else:
            run_sync(core, rfd, wfd, rest)
        return
    run_sync(core, rfd, wfd, rest, _ordered(core, is_async))


def _ordered(core, is_async):
    """The ordered protocol's answer to one item: its result, echoing the item's key. An
    exception ends the worker: the protocol has no error answer, so pararun fails the item
    (with the traceback's end on stderr) and starts a new worker."""
    import asyncio

    run = asyncio.new_event_loop().run_until_complete if is_async else None
    func, kf = core.func, core.key_field

    def answer(item):
        key = item if type(item) is not dict else item.get(kf)
        try:
            result = run(func(item)) if is_async else func(item)
            if type(result) is dict and kf not in result and key is not None:
                result = {kf: key, **result}
            return _dumps(result) + "\n"
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            raise _Exit() from None

    return answer
