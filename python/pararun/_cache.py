"""Reading a pararun cache from Python, as a run reads it (the Rust crate's CacheReader)."""
import json
import os
from typing import Any, Dict, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]


def read(cache_path: PathLike, key_field: str = "id") -> Iterator[Dict[str, Any]]:
    """Yield the records of the cache at `cache_path`, in file order, one per key: whole
    JSON-object lines only (a line torn by a crash, or any line that is not a JSON object with
    `key_field`, is skipped, as a run skips it), and for a key written twice (two runs that
    overlapped, a merge) its first record, the one that made a run skip the key. Memory grows
    with the number of keys, not with the records' size.

        import pandas
        df = pandas.DataFrame(pararun.read("results.jsonl"))
    """
    seen = set()
    with open(os.fspath(cache_path), "rb") as f:
        for line in f:
            try:  # a torn last line does not parse; a whole one without its newline does
                record = json.loads(line)
            except ValueError:
                continue
            if type(record) is not dict or key_field not in record:
                continue
            key = json.dumps(record[key_field], sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            yield record


def load(cache_path: PathLike, key_field: str = "id") -> Dict[Any, Dict[str, Any]]:
    """The records of the cache at `cache_path` as a dict by key (see `read`). A key that is
    not hashable in Python (a list, a dict) is keyed by its JSON text."""
    out = {}
    for record in read(cache_path, key_field):
        key = record[key_field]
        if isinstance(key, (list, dict)):
            key = json.dumps(key, sort_keys=True)
        out[key] = record
    return out


def key_text(item, key_field: str):
    """The key pararun gives `item`, as JSON text (for include_cached's lookups)."""
    if isinstance(item, dict):
        if key_field in item:
            key = item[key_field]
        elif len(item) == 1:
            (value,) = item.values()
            key = value if isinstance(value, (str, int, float)) and not isinstance(value, bool) \
                else item
        else:
            key = item
    else:
        key = item
    return json.dumps(key, sort_keys=True)
