"""Finding the pararun binary that the wheel installed beside this interpreter."""
import os
import shutil
import sys
import sysconfig
import threading

_EXE = "pararun"
# sysconfig is not thread-safe (its user scheme's paths are set up on first use), and map may
# be called from several threads at once.
_LOCK = threading.Lock()


def find_binary():
    """The pararun binary's path; see `_find_binary`. Safe to call from several threads."""
    with _LOCK:
        return _find_binary()


def _find_binary():
    """The path of the pararun binary: $PARARUN_BIN if set, else the one the wheel put in this
    interpreter's scripts directory (a venv's bin/, or the user scheme's), else the first on
    PATH. Raises FileNotFoundError with what to do when there is none."""
    override = os.environ.get("PARARUN_BIN")
    if override:
        if not os.access(override, os.X_OK):
            raise FileNotFoundError(f"PARARUN_BIN={override!r} is not an executable file")
        return override
    dirs = [sysconfig.get_path("scripts"), os.path.dirname(sys.executable)]
    try:
        dirs.append(sysconfig.get_path("scripts", f"{os.name}_user"))
    except KeyError:
        pass
    for d in dirs:
        if d:
            path = os.path.join(d, _EXE)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    path = shutil.which(_EXE)
    if path:
        return path
    raise FileNotFoundError(
        "the pararun binary was not found beside this Python "
        f"({sysconfig.get_path('scripts')}) nor on PATH: install the package with "
        "`pip install pararun` (or `pip install .` in a clone), or set PARARUN_BIN"
    )
