"""Naming a function so that a worker process can import it, and importing it there."""
import importlib
import importlib.util
import os
import sys

from . import _state

#: The module name a worker gives the user's main script (multiprocessing uses __mp_main__),
#: so that its `if __name__ == "__main__":` block does not run.
MAIN_ALIAS = "__pararun_main__"


def _lookup(obj, qualname):
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def reference(func):
    """What a worker needs to run `func`: its module (or the main script's path) and its
    qualified name when workers can import it; otherwise (a lambda, a closure, a partial, a
    bound method, a function defined in a notebook or `python -c`) the function itself, pickled
    by value with cloudpickle as joblib does. Raises TypeError for what is neither importable
    nor picklable, naming it."""
    if not callable(func):
        raise TypeError(f"func must be a function, not {type(func).__name__}")
    import inspect

    is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "func", None))  # a functools.partial of a coroutine function
    named = _by_name(func)
    if named is None:
        return {"pickled": pickled(func, "func"), "is_async": is_async, "from_main": False,
                "main_path": None}
    named["is_async"] = is_async
    return named


def pickled(obj, what):
    """`obj` pickled by value with cloudpickle (bytes), or TypeError naming what failed."""
    try:
        import cloudpickle
    except ImportError:
        raise TypeError(
            f"{what} {obj!r} cannot be imported by name by the worker processes (a lambda, a "
            f"closure, or defined in a notebook or `python -c`), and sending it by value "
            f"needs cloudpickle: `pip install cloudpickle`, or define it at the top level of a "
            f"module"
        ) from None
    try:
        return cloudpickle.dumps(obj)
    except Exception as e:
        raise TypeError(
            f"{what} {obj!r} cannot be sent to the worker processes: pickling it failed with "
            f"{type(e).__name__}: {e} (something it refers to, such as a lock, a file or a "
            f"socket, cannot be pickled); create that inside the function or in an "
            f"initializer= instead"
        ) from None


def _by_name(func):
    """The reference by which a worker imports `func`, or None when it cannot."""
    import inspect

    qualname = getattr(func, "__qualname__", None)
    module = getattr(func, "__module__", None)
    if not isinstance(qualname, str) or not isinstance(module, str):
        return None  # a partial, a callable object
    if inspect.ismethod(func) or "<lambda>" in qualname or "<locals>" in qualname:
        return None
    mod = sys.modules.get(module)
    try:
        found = _lookup(mod, qualname)
    except AttributeError:
        found = None
    if found is not func and found != func:
        return None  # decorated without functools.wraps, or rebound: not what the name holds
    main_path = None
    from_main = module in ("__main__", MAIN_ALIAS)  # the latter: a run started inside a worker
    if from_main:
        spec = getattr(mod, "__spec__", None)
        name = getattr(spec, "name", None)
        if name not in ("__main__", MAIN_ALIAS, None) and not name.endswith(".__main__"):
            module = name  # `python -m package.module`: importable under its own name
        else:
            path = getattr(mod, "__file__", None)
            if not path or not os.path.isfile(path) or not path.endswith(".py"):
                return None  # a notebook, a REPL, `python -c`, a script read from stdin
            main_path = os.path.abspath(path)
    return {"module": module, "qualname": qualname, "main_path": main_path,
            "from_main": from_main}


def load(ref):
    """In a worker: import the function `reference` named. The main script is run under
    MAIN_ALIAS, so its `if __name__ == "__main__":` block stays out; a script without that guard
    calls pararun at its top level, where StopImport ends the import (the functions defined
    above the call are then in the module). A script run as `python -m pkg.mod` is imported
    under its own name, the same way. A function sent by value is unpickled."""
    if ref.get("pickled_path"):
        import pickle

        with open(ref["pickled_path"], "rb") as f:
            return pickle.load(f)
    if ref["main_path"] is not None:
        spec = importlib.util.spec_from_file_location(MAIN_ALIAS, ref["main_path"])
    elif ref.get("from_main"):
        spec = importlib.util.find_spec(ref["module"])
    else:
        _state.loading_main = True  # a module that calls pararun as it is imported must not
        try:  # start a run in every worker
            return _lookup(importlib.import_module(ref["module"]), ref["qualname"])
        except _state.StopImport:
            raise ImportError(
                f"module {ref['module']} calls pararun when it is imported: a worker imports "
                f"it to find {ref['qualname']}, so put that call under "
                f"`if __name__ == '__main__':`"
            ) from None
        finally:
            _state.loading_main = False
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    _state.loading_main = True
    _state.wanted = (mod, ref["qualname"])
    try:
        spec.loader.exec_module(mod)
    except _state.StopImport:
        pass
    finally:
        _state.loading_main = False
        _state.wanted = None
    try:
        return _lookup(mod, ref["qualname"])
    except AttributeError:
        raise LookupError(
            f"{ref['qualname']!r} is not defined in {spec.origin} when pararun is called "
            f"(a worker runs the script up to its call to pararun, or all of it under an "
            f"`if __name__ == '__main__':` guard): define the function above that call"
        ) from None
