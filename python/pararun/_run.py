"""One run of the pararun binary on behalf of map/aio_map/imap: its command line, the process,
the thread that feeds it items, and how it ends."""
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time

from . import _binary, _codec, _state
from ._state import PararunError

#: Items go to pararun in writes of about this size...
_BATCH_BYTES = 1 << 16
#: ...or once the oldest unsent item has waited this long.
_BATCH_SECONDS = 0.005

_encode = _codec.dumps
_SCALAR = (str, int, float)


def encode(item, key_field):
    """An item as the JSONL line pararun reads (ASCII text, without its newline). pararun keys
    a dict by its `key_field` and any other JSON value by itself. A dict without `key_field` is sent
    wrapped, `{key_field: KEY, "__pararun_item__": item}`, the worker unwrapping it, where KEY
    is the value of its only field when it has one field holding a string or a number (so that
    `{"url": u}` is keyed by `u`, as `u` alone would be), else the whole item."""
    if type(item) is dict and key_field in item:  # the common case, first
        try:
            return _encode(item)
        except (TypeError, ValueError):
            pass  # the message below
    elif isinstance(item, dict) and key_field not in item:
        key = item
        if len(item) == 1:
            (value,) = item.values()
            if isinstance(value, _SCALAR) and not isinstance(value, bool):
                key = value
        item = {key_field: key, _state.WRAP: item}
    try:
        return _encode(item)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"pararun items must be JSON values (dict, list, str, number, bool, None): {e}; "
            f"item {item!r}"
        ) from None


def seconds(value):
    """A duration as seconds: a number, or a string as pararun reads it ("2.5", "500ms",
    "30s", "2m", "1h")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    for unit, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * scale
            except ValueError:
                break
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"timeout must be seconds or a string such as '2m', not {value!r}") from None


def _rate(value):
    if isinstance(value, (int, float)):
        return f"{value}/s"
    return str(value)


def command(ref, *, n_workers, pipeline, mode, threads, cache_path, key_field, total, records,
            retries=None, timeout=None, rate=None, failures_path=None, progress=None, args=(),
            keep_order=False, worker_extra=None):
    """The argv and environment of the pararun process for one run; `worker_extra` joins the
    spec the worker reads (its initializer, max_tasks)."""
    argv = [_binary.find_binary(), "--persistent", "--protocol", "concurrent", "--format", "jsonl",
            "-j", str(n_workers), "--pipeline", str(pipeline), "--key-field", key_field]
    if cache_path is not None:
        argv += ["--cache", os.fspath(cache_path)]
    if total is not None:
        argv += ["--total", str(int(total))]
    if not records:
        argv.append("--no-records")
    if retries:
        argv += ["--retries", str(int(retries))]
    if timeout is not None:
        # The worker enforces the timeout itself (a sync function is interrupted, a coroutine
        # cancelled) and answers an error; pararun's own, a little later, is the backstop for
        # a function that cannot be interrupted.
        limit = seconds(timeout)
        argv += ["--timeout", f"{limit + 1.0:.3f}s"]
    if rate is not None:
        argv += ["--rate", _rate(rate)]
    if failures_path is not None:
        argv += ["--failures", os.fspath(failures_path)]
    if keep_order:
        argv.append("--keep-order")
    if progress is True:
        argv.append("--progress")
    elif progress is False:
        argv.append("--no-progress")
    argv += list(args)
    argv += ["--", sys.executable, "-m", "pararun._worker"]
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if here not in _startup_path(env):  # the worker must import this very package
        env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env[_state.ENV] = json.dumps({
        "ref": ref, "key_field": key_field, "mode": mode, "threads": threads,
        "timeout": None if timeout is None else seconds(timeout),
        "sys_path": [p if p else os.getcwd() for p in sys.path], "argv": sys.argv,
        **(worker_extra or {}),
    })
    return argv, env


def _startup_path(env):
    """The directories a new interpreter searches before the worker sets the parent's
    sys.path: site-packages and PYTHONPATH. (Adding site-packages to PYTHONPATH would put it
    ahead of the standard library.)"""
    import site

    dirs = set(filter(None, env.get("PYTHONPATH", "").split(os.pathsep)))
    try:
        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    except AttributeError:  # an old virtualenv's site module
        pass
    return {os.path.abspath(d) for d in dirs}


_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
except (OSError, AttributeError):
    _prctl = None


def _child_setup(parent):
    """In the pararun child, before exec: a process group of its own, so that the terminal's
    Ctrl-C reaches only Python, which then asks pararun for one clean stop (a second Ctrl-C
    kills at once, as at pararun's own prompt); and SIGTERM (a clean stop) when Python dies,
    even by SIGKILL."""
    os.setpgid(0, 0)
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # Python died before the line above took effect
        os._exit(143)


class Run:
    """A started pararun process."""

    def __init__(self, argv, env, records, stderr=None):
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if records else subprocess.DEVNULL, stderr=stderr,
            preexec_fn=lambda parent=os.getpid(): _child_setup(parent),
        )
        self.stdin_fd = self.proc.stdin.fileno()
        self.started = time.monotonic()
        self.fed = 0  # items given to pararun, for the summary
        self.on_finish = None  # called by finish before it raises (the summary's checks)
        self.error = None
        self.interrupted = False
        self._old_tstp = None
        if threading.current_thread() is threading.main_thread():
            try:
                self._old_tstp = signal.signal(signal.SIGTSTP, self._on_tstp)
            except (ValueError, OSError):
                pass

    def _proc_state(self):
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return None

    def _until(self, predicate, seconds=1.0):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not predicate():
            time.sleep(0.01)

    def _on_tstp(self, signum, frame):
        """Ctrl-Z: pararun is in a process group of its own, so the terminal's SIGTSTP reaches
        Python only. Pause pararun (which pauses its workers, then itself), stop, and on
        `fg` continue pararun too."""
        if self.proc.poll() is not None:
            os.kill(os.getpid(), signal.SIGSTOP)
            return
        try:
            self.proc.send_signal(signal.SIGTSTP)
        except OSError:
            pass
        self._until(lambda: self._proc_state() in ("T", "t", "Z", None))
        os.kill(os.getpid(), signal.SIGSTOP)  # returns on SIGCONT (fg, bg)
        # pararun may not have stopped yet if the continue came quickly: keep waking it.
        for _ in range(50):
            try:
                self.proc.send_signal(signal.SIGCONT)
            except OSError:
                return
            time.sleep(0.01)
            if self._proc_state() not in ("T", "t"):
                break

    def _restore_signals(self):
        if self._old_tstp is not None:
            try:
                signal.signal(signal.SIGTSTP, self._old_tstp)
            except (ValueError, OSError):
                pass
            self._old_tstp = None

    # -- feeding ---------------------------------------------------------------------------

    def start_feeder(self, iterable, key_field):
        """Feeds the items of a (sync) iterable from a thread of its own."""
        self.feeder = threading.Thread(target=self._feed, args=(iterable, key_field),
                                       name="pararun-feeder", daemon=True)
        self.feeder.start()

    def _feed(self, iterable, key_field):
        batch = Batcher(self.stdin_fd)
        try:
            batch.start_ticker()
            push = batch.push
            try:
                for item in iterable:
                    push(encode(item, key_field))
                    self.fed += 1
            except BaseException as e:
                if batch.failed is not None:
                    raise  # the write to pararun failed, not the iterable
                # The iterable raised, or an item is not JSON: the items it gave before
                # still run (the end of stdin tells pararun there are no more), and the run
                # raises `e` once they are done.
                self.error = e
            batch.close()
        except OSError:  # pararun stopped reading: it is stopping, and says why
            batch.abandon()
        finally:
            self.close_stdin()

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    # -- ending ----------------------------------------------------------------------------

    def terminate(self):
        """Asks pararun for a clean stop (what it does on SIGTERM)."""
        try:
            self.proc.send_signal(signal.SIGTERM)
        except OSError:
            pass

    def interrupt(self):
        """Forwards a Ctrl-C: the first is a clean stop, a second kills the workers at once."""
        self.interrupted = True
        try:
            self.proc.send_signal(signal.SIGINT)
        except OSError:
            pass

    def wait(self):
        """Waits for pararun to exit, forwarding Ctrl-C (KeyboardInterrupt) to it; then
        raises what ended the run: KeyboardInterrupt once after a Ctrl-C, the iterable's own
        exception, or PararunError. Returns pararun's exit status (0, or 1 if items failed)."""
        while True:
            try:
                code = self.proc.wait()
                break
            except KeyboardInterrupt:
                self.interrupt()
            except BaseException:  # SystemExit from a signal handler, say: stop, then go on
                self.terminate()
                self.reap()
                raise
        return self.finish(code)

    def reap(self):
        """Waits for pararun to exit (a Ctrl-C meanwhile is forwarded) and for the feeder."""
        self._restore_signals()
        while True:
            try:
                self.proc.wait()
                break
            except KeyboardInterrupt:
                self.interrupt()
        if getattr(self, "feeder", None) is not None:
            self.feeder.join(timeout=1.0)

    def finish(self, code):
        self._restore_signals()
        if getattr(self, "feeder", None) is not None:
            self.feeder.join(timeout=1.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.on_finish is not None:
            self.on_finish(code)
        if self.interrupted:
            raise KeyboardInterrupt
        if self.error is not None:
            raise self.error
        if code in (0, 1):
            return code
        if code < 0 or code in (129, 130, 141, 143):
            raise PararunError(f"pararun was stopped by a signal (exit status {code})")
        raise PararunError(f"pararun exited with status {code}; its message is above")


class Batcher:
    """Buffers encoded items and writes them to pararun in big writes: when 64 KiB are
    waiting, or when the oldest has waited 5 ms (a ticker thread sees to that, so a slow
    iterable never holds back items it already gave)."""

    def __init__(self, fd):
        self.fd = fd
        self.parts = []
        self.size = 0
        self.since = 0.0
        self.lock = threading.Lock()  # the buffer
        self.wlock = threading.Lock()  # the pipe: one writer at a time, in order
        self.done = threading.Event()
        self.failed = None

    def start_ticker(self):
        threading.Thread(target=self._tick, name="pararun-ticker", daemon=True).start()

    def push(self, line):
        with self.lock:
            if not self.parts:
                self.since = time.monotonic()
            self.parts.append(line)
            self.size += len(line)
            full = self.size >= _BATCH_BYTES
        if full:
            self.flush()

    def _take(self):
        with self.lock:
            parts = self.parts
            self.parts = []
            self.size = 0
        if not parts:
            return b""
        parts.append("")
        return "\n".join(parts).encode()

    def flush(self):
        with self.wlock:
            if self.failed is not None:
                raise self.failed
            data = self._take()
            if data:
                try:
                    _write_all(self.fd, data)
                except OSError as e:
                    self.failed = e
                    raise

    def _tick(self):
        while not self.done.wait(_BATCH_SECONDS):
            if self.parts and time.monotonic() - self.since >= _BATCH_SECONDS:
                if self.wlock.acquire(blocking=False):
                    try:
                        if self.failed is None:
                            data = self._take()
                            if data:
                                _write_all(self.fd, data)
                    except OSError as e:
                        self.failed = e
                    finally:
                        self.wlock.release()

    def close(self):
        self.done.set()
        self.flush()

    def abandon(self):
        self.done.set()
        with self.wlock:  # the ticker is not writing when the pipe is closed
            pass


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
