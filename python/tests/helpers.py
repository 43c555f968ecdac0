"""Functions the tests run in pararun's workers: workers import them by name, so they live in
a module of their own (the tests' directory is on sys.path, which workers inherit)."""
import asyncio
import os
import time


def square(item):
    return {"id": item["id"], "sq": item["id"] ** 2}


def echo(item):
    return {"item": item}


def fail_on_three(item):
    if item["id"] == 3:
        raise ValueError("three is not allowed")
    return {"ok": True}


def crash_on_three(item):
    if item["id"] == 3:
        os._exit(7)
    return {"ok": True}


def slow(item):
    time.sleep(item.get("sleep", 0.05))
    return {"pid": os.getpid()}


def noisy(item):
    print("printed by func", item["id"])  # must not corrupt the protocol
    return {"ok": item["id"]}


def wrong_key(item):
    return {"id": "something else"}


def not_json(item):
    return {"a set": {1, 2}}


async def aslow(item):
    await asyncio.sleep(item.get("sleep", 0.1))
    return {"ok": True}


async def araise(item):
    await asyncio.sleep(0.01)
    if item["id"] % 2:
        raise RuntimeError(f"odd {item['id']}")
    return {"even": True}


def blocking(item):
    time.sleep(0.5)
    return {"thread": True}


def sleepy(item):
    time.sleep(item["sleep"])
    return {"slept": item["sleep"]}


async def asleepy(item):
    await asyncio.sleep(item["sleep"])
    return {"slept": item["sleep"]}


def flaky(item):
    """Fails the first time it sees an item (a file per item remembers), then succeeds."""
    mark = f"attempted-{item['id']}"
    if not os.path.exists(mark):
        open(mark, "w").close()
        raise ConnectionError("flaky the first time")
    return {"ok": True}


def slow_on_three(item):
    """Items other than 3 finish at once; 3 takes 30 s (or crashes after 0.5 s)."""
    if item["id"] == 3:
        time.sleep(0.5)
        if item.get("crash"):
            os._exit(1)
        time.sleep(30)
    with open("ran.txt", "a") as f:
        f.write(f"{item['id']}\n")
    return {"id": item["id"]}
