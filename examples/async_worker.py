#!/usr/bin/env python3
"""A pararun worker for the concurrent protocol: many items at once in one process (asyncio).

    pararun --persistent --protocol concurrent --pipeline 500 -j 1 \
        -i examples/items.jsonl --cache out.jsonl -- python3 examples/async_worker.py

Each request line is {"pararun_id": N, "item": ITEM}. The worker starts a task per request and
answers {"pararun_id": N, "result": RESULT} (or {"pararun_id": N, "error": "why"}, which fails
that item alone) as each task finishes, in any order. Keep stdout for answers (log to stderr).

An item may say how long to wait ("sleep", seconds) or ask to fail ("fail": "why"), which
makes it handy for trying the protocol out; real work would await I/O instead.
"""
import asyncio
import json
import sys


async def work(item):
    """Stands in for I/O (an HTTP request, a database query): waits, then echoes the item."""
    seconds = item.get("sleep", 0.1) if isinstance(item, dict) else 0.1
    await asyncio.sleep(seconds)
    if isinstance(item, dict) and "fail" in item:
        raise RuntimeError(item["fail"])
    return {"slept": seconds, "item": item}


class Answers:
    """Writes answers as they finish. Answers that finish in the same turn of the event loop
    share one flush, so pararun gets each at once without a system call per answer."""

    def __init__(self, loop, out):
        self.loop, self.out, self.pending = loop, out, False

    def write(self, message):
        self.out.write(json.dumps(message) + "\n")
        if not self.pending:
            self.pending = True
            self.loop.call_soon(self.flush)

    def flush(self):
        self.pending = False
        self.out.flush()


async def answer(request, answers):
    message = {"pararun_id": request["pararun_id"]}
    try:
        message["result"] = await work(request["item"])
    except Exception as e:  # the item fails, the worker goes on with the others
        message["error"] = str(e)
    answers.write(message)


async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    answers = Answers(loop, sys.stdout)
    tasks = set()
    while line := await reader.readline():
        task = asyncio.create_task(answer(json.loads(line), answers))
        # The loop keeps only weak references to tasks: hold them until they finish.
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    # EOF: pararun asks the worker to end once the items in flight are answered.
    await asyncio.gather(*tasks)


asyncio.run(main())
