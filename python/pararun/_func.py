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
    """What a worker needs to import `func`: its module (or the main script's path) and its
    qualified name. Raises TypeError for what a worker cannot import: a lambda, a closure, a
    local function, a partial, a callable object."""
    if not callable(func):
        raise TypeError(f"func must be a function, not {type(func).__name__}")
    qualname = getattr(func, "__qualname__", None)
    module = getattr(func, "__module__", None)
    what = "define it with `def` at the top level of a module or of your script, and pass it by name"
    if not isinstance(qualname, str) or not isinstance(module, str):
        raise TypeError(
            f"func {func!r} has no importable name (it is not a plain function): pararun runs it "
            f"in worker processes, which import it by name; {what}"
        )
    import inspect

    if inspect.ismethod(func):
        raise TypeError(
            f"func {qualname!r} is a bound method: pararun runs func in worker processes, which "
            f"import it by name and have no instance to bind it to; use a function defined "
            f"with `def` at the top level (a staticmethod or classmethod also works)"
        )
    if "<lambda>" in qualname or "<locals>" in qualname:
        kind = "a lambda" if "<lambda>" in qualname else "a closure or a function defined inside another"
        raise TypeError(
            f"func {qualname!r} is {kind}: pararun runs func in worker processes, which import "
            f"it by name, so it cannot be {kind}; {what}"
        )
    mod = sys.modules.get(module)
    try:
        found = _lookup(mod, qualname)
    except AttributeError:
        found = None
    if found is not func and found != func:
        raise TypeError(
            f"func {module}.{qualname} is not what that name holds in its module (was it "
            f"decorated without functools.wraps, or rebound?): pararun's workers import func "
            f"by name; {what}"
        )
    main_path = None
    from_main = module in ("__main__", MAIN_ALIAS)  # the latter: a run started inside a worker
    if from_main:
        spec = getattr(mod, "__spec__", None)
        name = getattr(spec, "name", None)
        if name not in ("__main__", MAIN_ALIAS, None) and not name.endswith(".__main__"):
            module = name  # `python -m package.module`: importable under its own name
        else:
            path = getattr(mod, "__file__", None)
            if not path or not os.path.isfile(path):
                raise TypeError(
                    f"func {qualname!r} was defined in an interactive session or with "
                    f"`python -c` or a script read from stdin, which worker processes cannot "
                    f"import; put it in a file"
                )
            main_path = os.path.abspath(path)
    return {
        "module": module,
        "qualname": qualname,
        "main_path": main_path,
        "from_main": from_main,
        "is_async": inspect.iscoroutinefunction(func),
    }


def load(ref):
    """In a worker: import the function `reference` named. The main script is run under
    MAIN_ALIAS, so its `if __name__ == "__main__":` block stays out; a script without that guard
    calls pararun at its top level, where StopImport ends the import (the functions defined
    above the call are then in the module). A script run as `python -m pkg.mod` is imported
    under its own name, the same way."""
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
