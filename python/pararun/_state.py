"""State shared between the package and its worker, in the worker process."""

#: The field under which the library sends an item that lacks the key field (see _run.encode).
WRAP = "__pararun_item__"
#: The environment variable that tells a worker what to run.
ENV = "PARARUN_PY_WORKER"


class PararunError(RuntimeError):
    """The pararun binary could not do the run (a setup error, a cache it could not write, a
    locked cache, ...); its message is on stderr above."""


class Throttled(Exception):
    """Raise it from func when the service it calls said "slow down" (HTTP 429 or 503): the
    item goes back to the queue without using up a retry, and pararun pauses every new start
    for `retry_after` seconds (or a short backoff when it is None). See docs/recipes.md,
    "Calling an API"."""

    def __init__(self, retry_after=None, message="throttled"):
        super().__init__(message)
        self.retry_after = retry_after


class StopImport(BaseException):
    """Raised by map/aio_map/imap while a worker imports the user's main script: it aborts the
    import at the call, once the functions defined above it are in the module. A BaseException,
    so that a script's own `except Exception` does not swallow it."""


#: True while a worker runs the user's `__main__` script to find its function.
loading_main = False
#: While it does: the module being run and the name of the function the worker wants.
wanted = None


def skip_call():
    """Called first by every entry point. Inside a worker that is importing the main script,
    the script's top-level call to pararun must not start another run: once the function the
    worker wants is defined, the import stops there (StopImport); a call before that (a script
    with several runs, the wanted one later) is skipped, and the script goes on. Returns
    whether to skip."""
    if not loading_main:
        return False
    if wanted is not None:
        module, qualname = wanted
        obj = module
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
        if obj is None:
            return True
    raise StopImport()
