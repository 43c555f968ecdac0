"""Turning one request into one answer: the user's function on an item, its result as a
record, and an exception, a timeout or a wrong result as an error answer (noted for the
summary too)."""
import os
import traceback

from . import _codec
from ._state import Throttled, WRAP

_dumps = _codec.dumps


def _tail(exc, limit=2000, frames_kept=4):
    """An exception's text for an error answer, as Python would print its end: the exception
    line first (`ValueError: bad item 997`, which pararun's one-line failure message then
    starts with), then the last frames of its traceback without this module's, within `limit`
    characters."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    head = "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
    text = "\n".join([head, "Traceback (most recent call last):"]) + "\n" + "".join(
        traceback.format_list(frames[-frames_kept:])).rstrip()
    if len(text) > limit:
        text = text[:limit] + "..."
    return text


class WorkerSignal(BaseException):
    """The worker's own control flow raised from a signal handler while func runs (pararun's
    SIGTERM): never func's doing, so never an item's answer; it ends the worker."""


class ItemTimeout(WorkerSignal):
    """Raised in func when its item's timeout is up (a BaseException, so that func's own
    `except Exception` does not swallow it)."""


class Core:
    """Turns requests into answers for one function."""

    def __init__(self, func, key_field, timeout=None, errors_path=None):
        self.func = func
        self.key_field = key_field
        self.timeout = timeout
        # Where each error answer is also noted, for the summary map returns (pararun's own
        # --failures file is used only when the user asks for one: see _api.start).
        self.errors_path = errors_path

    def unwrap(self, item):
        """The user's item and its key (None when it has none)."""
        if type(item) is dict:
            kf = self.key_field
            if kf in item:
                if len(item) == 2 and WRAP in item:
                    return item[WRAP], item[kf]
                return item, item[kf]
            return item, None
        return item, item

    def result(self, rid, key, result):
        """The answer for a result, or an error answer if it cannot be a record."""
        kf = self.key_field
        if type(result) is dict and kf in result and key is not None:
            rk = result[kf]
            if rk is not key and not (type(rk) is type(key) and rk == key):
                if rk != key or isinstance(rk, bool) != isinstance(key, bool):
                    return self.error_text(
                        rid, key,
                        f"func returned {kf}={rk!r} for the item keyed {key!r}: a result must "
                        f"name its own item's key, or leave {kf!r} out (pararun adds it)",
                    )
                result = dict(result)
                result[kf] = key
        try:
            return '{"pararun_id":%d,"result":%s}\n' % (rid, _dumps(result))
        except (TypeError, ValueError) as e:
            return self.error_text(rid, key,
                                   f"func's result is not JSON: {type(e).__name__}: {e}")

    def error_text(self, rid, key, message, reason=None):
        """The error answer for request `rid` (item `key`), noted in errors_path too."""
        if self.errors_path is not None:
            self.note(key, message, reason)
        answer = {"pararun_id": rid, "error": message}
        if reason is not None:
            answer["reason"] = reason
        return _dumps(answer) + "\n"

    def note(self, key, message, reason):
        """Appends one failed attempt to errors_path, in one write (O_APPEND: the workers of
        a run share the file)."""
        try:
            line = _dumps({"key": key, "detail": message, "reason": reason or "exit",
                           "python": True}) + "\n"
        except (TypeError, ValueError):
            return
        try:
            fd = os.open(self.errors_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError:
            pass  # the summary misses it; pararun still reports the failure

    def error(self, rid, key, exc):
        if isinstance(exc, Throttled):
            return self.throttled(rid, key, exc)
        return self.error_text(rid, key, _tail(exc))

    def throttled(self, rid, key, exc):
        """The answer for `raise pararun.Throttled(...)`: not a failure (nothing is noted), a
        request to pararun to send the item again after a pause."""
        answer = {"pararun_id": rid, "error": str(exc) or "throttled", "reason": "throttled"}
        if exc.retry_after is not None:
            answer["retry_after"] = float(exc.retry_after)
        return _dumps(answer) + "\n"

    def answer(self, request):
        """Runs a sync function on one request."""
        rid = request["pararun_id"]
        item = request["item"]
        if type(item) is dict and len(item) != 2:  # the common case: a dict with its key
            key = item.get(self.key_field)
        else:
            item, key = self.unwrap(item)
        return self.call(rid, key, item)

    def call(self, rid, key, item):
        """func on one item, and its answer: a result, or the error of whatever it raised
        (every exception is that item's alone, but the worker's own signals, which end it)."""
        try:
            result = self.func(item)
        except Exception as e:
            return self.error(rid, key, e)
        except (SystemExit, KeyboardInterrupt) as e:
            return self.escaped(rid, key, e)
        except WorkerSignal:
            raise
        except BaseException as e:  # GeneratorExit, a bare BaseException: this item's alone
            return self.error(rid, key, e)
        return self.result(rid, key, result)

    def escaped(self, rid, key, exc):
        """The error answer for SystemExit or KeyboardInterrupt raised in func: the item's own
        doing, so it fails that item alone, like any exception, and the worker goes on."""
        if isinstance(exc, SystemExit):
            what = f"func raised SystemExit (sys.exit({exc.code!r}))"
        else:
            what = "func raised KeyboardInterrupt"
        return self.error_text(
            rid, key, f"{what}: that fails this item alone, and the worker goes on\n{_tail(exc)}")

    def timed_answer(self, request):
        """answer, with the item's timeout enforced by SIGALRM."""
        import signal

        rid = request["pararun_id"]
        item, key = self.unwrap(request["item"])
        signal.setitimer(signal.ITIMER_REAL, self.timeout)
        try:
            return self.call(rid, key, item)
        except ItemTimeout:  # a WorkerSignal: call lets it through
            return self.timed_out(rid, key)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def timed_out(self, rid, key):
        # "reason" makes pararun record the failure as a timeout, not as an error.
        message = f"timed out after {self.timeout:g}s (timeout={self.timeout:g})"
        return self.error_text(rid, key, message, "timeout")
