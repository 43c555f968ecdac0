"""What a run tells the program: the summary `map` and `aio_map` return, the failures in it
(read back from the `--failures` file pararun writes), and the exceptions built on them."""
import json
import re
from typing import Any, List, NamedTuple, Optional

from ._state import PararunError

#: The most failed items a summary keeps (the counts stay exact beyond it).
MAX_FAILURES_KEPT = 100

_PREFIX = "the worker answered with an error: "
#: An exception line as Python prints it: `ValueError: bad item 997`, `mod.Error: ...`.
_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*): ?(.*)$")


class Failure(NamedTuple):
    """A failed item: its key, the exception's type name and message (for a Python
    exception; else pararun's reason, such as "exit" or "timeout", and its detail), the
    traceback text when there is one, and pararun's reason."""

    key: Any
    exc_type: str
    message: str
    traceback: str
    reason: str


def failure_from_record(record):
    """A Failure from one line of pararun's failures file."""
    detail = record.get("detail") or ""
    reason = record.get("reason") or "?"
    text = detail
    if detail.startswith(_PREFIX):
        text = detail[len(_PREFIX):]
        try:
            text = json.loads(text)  # pararun quotes the worker's text as a JSON string
        except ValueError:
            pass
    first, _, rest = str(text).partition("\n")
    m = _EXC_LINE.match(first)
    if (detail.startswith(_PREFIX) or record.get("python")) and m:
        return Failure(record.get("key"), m.group(1), m.group(2), rest, reason)
    return Failure(record.get("key"), reason, str(text), "", reason)


class Summary(NamedTuple):
    """What one map or aio_map call did. `done`: items run and cached (or yielded) in this
    run; `cached`: items skipped because the cache had them; `failed`: items that failed
    (after their retries); `retried`: extra attempts the failed items took; `given_up`: items
    skipped by `--give-up-after` (not told apart from cached ones yet: always 0);
    `elapsed`: seconds; `failures`: the first MAX_FAILURES_KEPT failed items, as Failure.
    `ok` is True when nothing failed."""

    done: int
    cached: int
    failed: int
    given_up: int
    retried: int
    elapsed: float
    failures: List[Failure]

    @property
    def ok(self) -> bool:
        """True when no item failed."""
        return self.failed == 0

    def __str__(self):
        text = (f"{self.done} done, {self.cached} cached, {self.failed} failed "
                f"in {self.elapsed:.2f}s")
        for f in self.failures[:5]:
            text += f"\n  item {f.key!r} failed: {f.exc_type}: {f.message}"
        if self.failed > 5:
            text += f"\n  ... and {self.failed - 5} more"
        return text


class ItemsFailed(PararunError):
    """Raised by map/aio_map with raise_on_failure=True when items failed; `.summary` is the
    Summary (its `failures` name them)."""

    def __init__(self, summary: Summary):
        super().__init__(f"{summary.failed} item{'s' if summary.failed != 1 else ''} failed: "
                         f"{summary}")
        self.summary = summary


class InitializerError(PararunError):
    """The initializer raised in a worker, so the run stopped at once; `.traceback` is the
    worker's traceback text."""

    def __init__(self, traceback_text: str):
        super().__init__("the initializer raised in a worker, so the run stopped; its "
                         "traceback:\n" + traceback_text)
        self.traceback = traceback_text


def read_failures(path, offset: int, limit: Optional[int] = None):
    """(failed item count, extra attempts, the first `limit` Failures, MAX_FAILURES_KEPT by
    default) from the lines that pararun appended to the failures file at `path` after byte
    `offset`."""
    limit = MAX_FAILURES_KEPT if limit is None else limit
    count = retried = 0
    kept = []
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return 0, 0, []
    with f:
        f.seek(offset)
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line
            count += 1
            retried += max(0, int(record.get("attempts") or 1) - 1)
            if len(kept) < limit:
                kept.append(failure_from_record(record))
    return count, retried, kept


def read_errors(path, retries: int, limit: Optional[int] = None):
    """read_failures for the workers' note of their error answers (one line per attempt): an
    item failed when it used all 1 + `retries` attempts."""
    limit = MAX_FAILURES_KEPT if limit is None else limit
    attempts, last = {}, {}
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return 0, 0, []
    with f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            key = json.dumps(record.get("key"), sort_keys=True)
            attempts[key] = attempts.get(key, 0) + 1
            last[key] = record
    failed = [k for k, n in attempts.items() if n > retries]
    kept = [failure_from_record(last[k]) for k in failed[:limit]]
    return len(failed), sum(attempts[k] - 1 for k in failed), kept
