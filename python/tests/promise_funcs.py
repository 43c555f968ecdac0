"""Functions test_promises.py runs in pararun's workers (imported by name, so in a module of
their own, which does not import pytest)."""
import asyncio
import json
import os
import sys
import time


def ends_on_two(item):
    """Ends the worker on item 2 as `item["how"]` says; other items succeed."""
    if item["id"] == 2:
        how = item.get("how")
        if how == "sys.exit":
            sys.exit(3)
        if how == "os._exit":
            os._exit(3)
        if how == "KeyboardInterrupt":
            raise KeyboardInterrupt
        if how == "GeneratorExit":
            raise GeneratorExit
        if how == "BaseException":
            raise BaseException("base")
    return {"pid": os.getpid()}


async def aends_on_two(item):
    await asyncio.sleep(0)
    return ends_on_two(item)


def _failed(key, path="f.jsonl", seconds=20.0):
    """Waits (bounded) until pararun's failures file names `key`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                if any(json.loads(line)["key"] == key for line in f if line.strip()):
                    return True
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    return False


def big_on_four(item):
    """Item 4's result is `item["size"]` bytes; the others answer only once pararun has failed
    item 4, so they are in flight when its answer is read."""
    if item["id"] == 4:
        return {"blob": "x" * item["size"]}
    _failed(4)
    return {"pid": os.getpid()}


def throttles_once(item):
    """Item 2 says "slow down" once (as a 429 would), then succeeds."""
    import pararun

    if item["id"] == 2 and not os.path.exists("throttled.once"):
        open("throttled.once", "w").close()
        raise pararun.Throttled(retry_after=0.3)
    return {"ok": True}


async def athrottles_once(item):
    await asyncio.sleep(0)
    return throttles_once(item)
