"""Compact JSON encoding, as fast as the standard library's C encoder goes: json.dumps builds
a new encoder on every call, which is half the cost for a small item."""
import json

try:
    from json.encoder import c_make_encoder, encode_basestring_ascii
except ImportError:  # pragma: no cover - a Python without the _json accelerator
    c_make_encoder = None


def _default(value):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_fallback = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode

if c_make_encoder is not None:
    # markers=None: no check for circular references (a cyclic value ends in RecursionError);
    # allow_nan=False: NaN and infinities are refused, as JSON has no such numbers.
    _c = c_make_encoder(None, _default, encode_basestring_ascii, None, ":", ",", False, False,
                        False)

    def dumps(value):
        """`value` as compact, ASCII-only JSON text; TypeError or ValueError if it is not
        JSON."""
        if isinstance(value, str):
            return encode_basestring_ascii(value)
        try:
            return "".join(_c(value, 0))
        except RecursionError:
            raise ValueError("a circular reference (or nesting too deep)") from None
else:  # pragma: no cover
    dumps = _fallback
