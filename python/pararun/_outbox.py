"""Answers on their way to pararun from a worker that runs one item at a time.

A thread of its own writes them: answers that finish together share one write, and none
waits more than about 2 ms, however long the item after it takes. (Written by the loop that
runs the items, an answer would wait for the next item to end: lost at a `kill -9`, or failed
with the worker when that next item crashes it.)
"""
import collections
import os
import threading

#: How long the first answer of a write may wait for others to join it.
GATHER = 0.002


def write_all(fd, data):
    """Writes all of `data` to `fd`."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Outbox:
    """Answers queued by the item loop and written by a thread of their own, in order."""

    def __init__(self, wfd):
        self._wfd = wfd
        self._queue = collections.deque()
        self._ready = threading.Condition()
        self._now = False
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="pararun-answers", daemon=True)
        self._thread.start()

    def put(self, answer):
        """Queues one answer (a line with its newline)."""
        self._queue.append(answer)
        if len(self._queue) == 1:
            with self._ready:
                self._ready.notify()

    def flush(self):
        """Asks for what is queued to go out now (the batch read is done)."""
        with self._ready:
            self._now = True
            self._ready.notify()

    def close(self, timeout=2.0):
        """Writes what is queued and ends the thread."""
        with self._ready:
            self._closing = self._now = True
            self._ready.notify()
        self._thread.join(timeout)

    def _run(self):
        while True:
            with self._ready:
                while not self._queue and not self._closing:
                    self._ready.wait()
                if not self._now:
                    self._ready.wait(GATHER)
                self._now = False
                closing = self._closing
            out = []
            while self._queue:
                out.append(self._queue.popleft())
            if out:
                try:
                    write_all(self._wfd, "".join(out).encode())
                except OSError:
                    return  # pararun is gone; the item loop finds out on its next read
            if closing and not self._queue:
                return
