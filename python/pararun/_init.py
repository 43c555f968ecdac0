"""A worker's set-up: the user's `initializer=` (run once per worker process, per thread of a
thread worker, or once before an async worker's first item), what a failing one does to the
run, and a worker replacing itself after `max_tasks_per_worker` items."""
import os
import sys
import traceback

#: Environment of a worker that replaced itself: its protocol descriptors, and a file with
#: the requests it had read and not run.
_FDS = "PARARUN_PY_FDS"
_REST = "PARARUN_PY_REST"

#: The worker's spec as it came (main pops it from the environment; a renewed worker needs it).
_raw_spec = None


def remember(raw):
    """Keeps the worker's spec for exec_fresh."""
    global _raw_spec
    _raw_spec = raw


def initializer(spec):
    """The user's (initializer, initargs), unpickled, or None when there is none."""
    path = spec.get("init_path")
    if not path:
        return None
    import pickle

    with open(path, "rb") as f:
        return pickle.load(f)


def run_or_stop(init, spec):
    """Runs the initializer; if it raises, the whole run stops (see _stop_run)."""
    func, args = init
    try:
        func(*args)
    except BaseException as e:
        _stop_run(spec, e)


async def run_async_or_stop(init, spec):
    """run_or_stop for an async worker: a coroutine function initializer is awaited."""
    import inspect

    func, args = init
    try:
        out = func(*args)
        if inspect.isawaitable(out):
            await out
    except BaseException as e:
        _stop_run(spec, e)


def _stop_run(spec, exc):
    """A failing initializer would fail every item the same way, so it stops the run at once:
    its traceback goes to the file the package reads (the first worker's wins), and pararun,
    this process's parent, gets SIGTERM (its clean stop). The package then raises
    InitializerError with that traceback. The worker waits here to be stopped."""
    import signal
    import time

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        fd = os.open(spec["init_failed_path"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.kill(os.getppid(), signal.SIGTERM)
    except FileExistsError:
        pass  # another worker said it first
    sys.stderr.write(f"pararun worker: initializer failed:\n{text}")
    sys.stderr.flush()
    while True:  # pararun's stop ends this process (SIGTERM)
        time.sleep(1)


def renewed_stdio():
    """In a worker that replaced itself: (protocol read fd, write fd, requests carried over);
    else (None, None, b"")."""
    fds = os.environ.pop(_FDS, None)
    if not fds:
        return None, None, b""
    rfd, wfd = (int(x) for x in fds.split(","))
    path = os.environ.pop(_REST)
    with open(path, "rb") as f:
        rest = f.read()
    os.unlink(path)
    return rfd, wfd, rest


def exec_fresh(rfd, wfd, rest):
    """Replaces this process with a fresh worker (same pid, same pipes to pararun) that starts
    with the requests in `rest`: the memory a long run grew is gone, and pararun, which sees no
    exit, neither fails nor re-sends anything."""
    import tempfile

    fd, path = tempfile.mkstemp(prefix="pararun-rest-")
    with os.fdopen(fd, "wb") as f:
        f.write(rest)
    os.set_inheritable(rfd, True)
    os.set_inheritable(wfd, True)
    env = dict(os.environ)
    from ._state import ENV

    env[ENV] = _raw_spec
    env[_FDS] = f"{rfd},{wfd}"
    env[_REST] = path
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "pararun._worker"], env)
