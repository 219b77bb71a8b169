"""Records to NDJSON bytes, exactly as SPEC §2 wants them, cheaply.

orjson is the fast path (numpy and datetimes natively). It writes NaN and
±inf as ``null``, though, and the wire format keeps them (Python's ``NaN`` /
``Infinity`` tokens, stored as IEEE values). The stdlib writes those tokens,
so a record that may hold a non-finite float is encoded again by the stdlib.
Which records "may hold" one is decided without a second encoding: only when
orjson's output contains ``null`` at all, and then only if it holds more
``null``s than the record has top-level ``None`` values (each of which is
exactly one ``null``; a NaN, a nested None, or "null" inside a string adds
one). A record with ``None`` fields and plain values (the RL hooks send
``model=None``) therefore stays on the fast path.

``bytes.find`` rather than ``in``: ``b"null" in data`` first tries the
argument as an integer and raises and clears a TypeError inside, which costs
more than the search.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any, Dict, Optional

try:  # the fastest encoder available
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised when orjson is absent
    _orjson = None


_NoneType = type(None)
_PLAIN = (str, int, float, bool, _NoneType)


def _convert(v: Any) -> Any:
    """Turns numpy/pandas/datetime values into what the wire format expects."""
    if isinstance(v, _PLAIN):
        return v  # (a numpy integer's item() lands here); NaN and ±inf: see the module
    if type(v).__name__ in ("NaTType", "NAType"):  # before datetime: NaT is one
        return None
    if isinstance(v, _dt.datetime):
        if v.tzinfo is None:
            return v.isoformat()  # naive = UTC on the collector's side
        return v.astimezone(_dt.timezone.utc).isoformat()
    if isinstance(v, _dt.date):
        return v.isoformat()
    item = getattr(v, "item", None)  # numpy scalars, 0-d arrays
    if item is not None and getattr(v, "ndim", 0) == 0:
        try:
            return _convert(item())
        except (TypeError, ValueError):
            pass
    iso = getattr(v, "isoformat", None)  # pandas Timestamp is a datetime; others
    if iso is not None:
        return iso()
    tolist = getattr(v, "tolist", None)  # numpy arrays, pandas Series
    if tolist is not None:
        return tolist()
    if isinstance(v, dict):
        return {str(k): _convert(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_convert(x) for x in v]
    return str(v)


def _default(v: Any) -> Any:
    """The ``default`` hook of both encoders: what neither knows natively."""
    if isinstance(v, float):
        return float(v)  # float subclasses (numpy.float64)
    out = _convert(v)
    if out is v:
        raise TypeError(f"cannot encode {type(v).__name__}")
    return out


# One encoder object, made once: ``json.dumps(..., default=...)`` builds a new
# JSONEncoder on every call, which costs about a microsecond.
_std_encode = json.JSONEncoder(default=_default, separators=(",", ":")).encode


def encode_exact(record: Dict[str, Any]) -> bytes:
    """The stdlib path, without a newline: writes NaN/±inf as Python's
    ``NaN``/``Infinity`` tokens, which the collector stores as IEEE values."""
    return _std_encode(record).encode()


def nulls_are_nones(data: bytes, record: Dict[str, Any]) -> bool:
    """Whether every ``null`` in orjson's ``data`` is one of the record's
    top-level ``None`` values, so that none stands for a NaN or ±inf."""
    # Counted by type, not with ==: a numpy array's == None is elementwise.
    return data.count(b"null") == [*map(type, record.values())].count(_NoneType)


def _bind(module: Any) -> None:
    """Uses ``module`` (orjson, or None for the stdlib) from now on."""
    global _orjson, _dumps, FIRST_OPTS, LINE_OPTS, PAYLOAD_OPTS
    _orjson = module
    if module is not None:
        _dumps = module.dumps
        # First try: numpy natively. OPT_NON_STR_KEYS is left for the retry:
        # it makes orjson take a slower path for every dict (about 0.2 µs).
        FIRST_OPTS = module.OPT_SERIALIZE_NUMPY
        LINE_OPTS = FIRST_OPTS | module.OPT_APPEND_NEWLINE
        PAYLOAD_OPTS = FIRST_OPTS | module.OPT_NON_STR_KEYS


_bind(_orjson)


def careful(record: Dict[str, Any]) -> Optional[bytes]:
    """The slow path of :func:`payload`, for what the first try refused
    (non-string keys, integers over 64 bits...): orjson with every option,
    then the stdlib. None when nothing can encode the record."""
    if _orjson is not None:
        try:
            out = _dumps(record, _default, PAYLOAD_OPTS)
            if out.find(b"null") < 0 or nulls_are_nones(out, record):
                return out
        except Exception:  # orjson's own limits: the stdlib may do
            pass
    try:
        return encode_exact(record)
    except Exception:  # never raise into the strategy: the caller logs the drop
        return None


def payload(record: Dict[str, Any]) -> Optional[bytes]:
    """One record as a ring frame's payload: NDJSON without the newline.
    None when it cannot be encoded at all (the caller logs and drops it)."""
    if _orjson is not None:
        try:
            out = _dumps(record, _default, FIRST_OPTS)
            if out.find(b"null") < 0 or nulls_are_nones(out, record):
                return out
            return encode_exact(record)
        except Exception:
            pass
    return careful(record)


def encode(record: Dict[str, Any]) -> bytes:
    """One NDJSON line (with ``\\n``). NaN/±inf become ``NaN``/``Infinity`` tokens.

    Fast path: orjson. orjson writes NaN as ``null``; when the output holds
    ``null`` and the record may hold a non-finite float, the stdlib encodes it
    again exactly: no record is ever wrong. Raises TypeError or ValueError
    for a record nothing can encode."""
    if _orjson is not None:
        try:
            out = _dumps(record, _default, LINE_OPTS)
            if out.find(b"null") < 0 or nulls_are_nones(out, record):
                return out
        except TypeError:
            out = careful(record)
            if out is not None:
                return out + b"\n"
    return encode_exact(record) + b"\n"


def fast_parts() -> tuple:
    """What the ring's inlined hot path calls, for the encoder in use now:
    ``(first, default, options, nulls_are_nones, exact, careful)``, where
    ``first(record, default, options)`` is the first try. With the stdlib
    there is one try, and its ``null`` never needs a second."""
    if _orjson is not None:
        return _dumps, _default, FIRST_OPTS, nulls_are_nones, encode_exact, careful
    return _stdlib_first, _default, 0, _always, encode_exact, careful


def _stdlib_first(record: Dict[str, Any], default: Any, options: int) -> bytes:
    return encode_exact(record)


def _always(data: bytes, record: Dict[str, Any]) -> bool:
    return True


def orjson_available() -> bool:
    """Whether the fast encoder is in use (the bench switches it off)."""
    return _orjson is not None


def use_orjson(on: bool) -> None:
    """Switches the orjson fast path off (or back on when installed), for
    the bench and the tests of the stdlib path. Collectors made afterwards
    use the choice."""
    if not on:
        _bind(None)
        return
    try:
        import orjson
    except ImportError:  # pragma: no cover
        return
    _bind(orjson)
