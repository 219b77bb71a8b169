"""The encoder: orjson's fast path, and the stdlib exactly where orjson would
turn NaN/±inf into null (SPEC §2 keeps them)."""

import datetime as dt
import json
import math
import random

import numpy as np
import pandas as pd
import pytest

from rlcollect import encoding

NAN, INF = float("nan"), float("inf")


def same(a, b):
    """Equal, with NaN equal to NaN, through dicts and lists."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture(params=["orjson", "stdlib"])
def encoder(request):
    if request.param == "orjson":
        pytest.importorskip("orjson")
    encoding.use_orjson(request.param == "orjson")
    yield request.param
    encoding.use_orjson(True)


CASES = [
    ({"a": NAN, "b": 1}, {"a": NAN, "b": 1}),
    ({"a": None, "b": -INF}, {"a": None, "b": -INF}),
    ({"q": [1.0, NAN], "n": None}, {"q": [1.0, NAN], "n": None}),
    ({"s": "null", "x": NAN}, {"s": "null", "x": NAN}),
    ({"null": None, "x": INF}, {"null": None, "x": INF}),
    ({"d": {"k": NAN}, "m": None}, {"d": {"k": NAN}, "m": None}),
    ({"np": np.float64("nan"), "i": np.int64(3)}, {"np": NAN, "i": 3}),
    ({"arr": np.array([1.5, np.nan])}, {"arr": [1.5, NAN]}),
    ({"t": pd.NaT, "v": None}, {"t": None, "v": None}),
    ({"t": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), "v": None}, {"t": "2024-01-01T00:00:00+00:00", "v": None}),
    ({1: "non-str key", "big": 2**70}, {"1": "non-str key", "big": 2**70}),
]


@pytest.mark.parametrize("record,expected", CASES)
def test_nan_and_inf_survive_every_shape(encoder, record, expected):
    out = encoding.payload(record)
    assert not out.endswith(b"\n") and same(json.loads(out), expected)
    line = encoding.encode(record)
    assert line == out + b"\n"


def test_random_records_match_the_stdlib(encoder):
    rng = random.Random(1)
    values = [None, NAN, INF, -INF, 0.5, 1, "null", "x", True, [NAN, None], [1, 2], {"n": None}]
    for _ in range(2000):
        record = {f"k{i}": rng.choice(values) for i in range(rng.randint(1, 6))}
        assert same(json.loads(encoding.payload(record)), json.loads(encoding.encode_exact(record)))


def test_none_fields_stay_on_the_fast_path(monkeypatch):
    pytest.importorskip("orjson")
    encoding.use_orjson(True)
    calls = []
    monkeypatch.setattr(encoding, "encode_exact", lambda r: calls.append(r) or b"{}")
    assert encoding.payload({"ts": dt.datetime(2024, 1, 1), "model": None, "r": 0.5}) != b"{}"
    assert calls == []
    encoding.payload({"model": None, "r": NAN})
    assert len(calls) == 1


class Unencodable:
    def __str__(self):
        raise RuntimeError("no")


def test_a_record_nothing_can_encode_is_none_not_an_exception():
    assert encoding.payload({"x": Unencodable()}) is None
    loop = {}
    loop["self"] = loop
    assert encoding.payload({"loop": loop}) is None
