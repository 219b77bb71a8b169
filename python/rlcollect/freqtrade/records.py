"""Records from Freqtrade objects: a closed trade as the backtest export holds
it, FreqAI's predictions, candle ticks. Plain functions, no freqtrade import."""

from __future__ import annotations

import copy
import logging
import math
from typing import Any, Dict, Iterable, List, Optional

log = logging.getLogger("rlcollect")

#: The fields of Freqtrade's backtest export that the ``trades`` stream stores.
TRADE_FIELDS = (
    "pair", "trade_id", "is_short", "open_date", "close_date", "open_rate", "close_rate", "amount",
    "stake_amount", "leverage", "fee_open", "fee_close", "profit_ratio", "profit_abs", "exit_reason",
    "enter_tag", "trade_duration", "min_rate", "max_rate",
)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """``getattr`` that also survives properties raising on half-built objects."""
    try:
        return getattr(obj, name, default)
    except Exception:
        return default


def _minutes(open_date, close_date) -> Optional[int]:
    try:
        return int((close_date - open_date).total_seconds() // 60)
    except Exception:
        return None


# -- trades ------------------------------------------------------------------


def _round8(value: Any) -> Any:
    """As ``Trade.to_json`` (the export) rounds amounts and stakes."""
    return round(value, 8) if isinstance(value, float) else value


def closes_trade(trade: Any, order: Any) -> bool:
    """True when ``order``, just filled (as ``order_filled`` hands it over), ends ``trade``.

    Live, Freqtrade has already closed the trade when it calls ``order_filled``.
    Backtesting closes it right after the call, when nothing is left: the filled
    entries' amount minus every filled exit's, this order's included (the sum
    ``LocalTrade.recalc_trade_from_orders`` makes). A partial exit
    (``adjust_trade_position``) leaves an amount, so it is not the end.
    """
    side = _get(order, "ft_order_side")
    entry_side = _get(trade, "entry_side")
    if side is None or side == entry_side:
        return False  # an entry (or not an order at all)
    if _get(trade, "is_open") is False:
        return True
    entered = exited = 0.0
    for o in _get(trade, "orders") or ():
        if _get(o, "ft_is_open") or not _get(o, "filled"):
            continue
        amount = _get(o, "safe_amount_after_fee") or 0.0
        if _get(o, "ft_order_side") == entry_side:
            entered += amount
        else:  # exit and stoploss orders
            exited += amount
    return entered > 0 and exited >= entered * (1 - 1e-9)


def _closed_copy(trade: Any, order: Any) -> Any:
    """The trade as Freqtrade is about to close it.

    Backtesting calls ``order_filled`` just before ``trade.close(order.ft_price)``
    with ``close_date`` = the fill time, so we let Freqtrade's own ``close()``
    compute the totals (partial exits, fees, funding, leverage) on a shallow
    copy. ``close()`` only reads the shared orders; the real trade is untouched.
    Database-backed trades (live) are closed already and never copied.
    """
    if hasattr(trade, "_sa_instance_state") or not callable(_get(trade, "close")):
        return trade
    shadow = copy.copy(trade)
    shadow.close_date = _get(order, "order_filled_date") or _get(trade, "close_date")
    shadow.close(_get(order, "ft_price") or _get(order, "safe_price"), show_msg=False)
    return shadow


def trade_record(trade: Any, exit_order: Any = None, **extra: Any) -> Dict[str, Any]:
    """The ``trades`` record of a closed trade, with the values Freqtrade's
    backtest export holds for it.

    ``trade`` is a Freqtrade ``Trade``/``LocalTrade`` or a row of the backtest
    export (a dict). From ``order_filled`` pass the order that closes it (see
    :func:`closes_trade`): in backtesting the trade is still open then, and its
    final values (profit over all partial exits, close rate and date) are
    computed as Freqtrade's ``close()`` computes them. Extra keyword arguments
    become extra columns.
    """
    if isinstance(trade, dict):
        rec = dict(trade)
        rec.pop("stream", None)
        rec.update(extra)
        return rec
    if exit_order is not None and _get(trade, "is_open"):
        try:
            trade = _closed_copy(trade, exit_order)
        except Exception as e:  # an unusual trade object: record what it has
            log.warning("rlcollect: cannot compute the closed values of trade %s (%s: %s); "
                        "recording its current fields", _get(trade, "id"), type(e).__name__, e)
    profit_ratio = _get(trade, "close_profit")
    if profit_ratio is None:
        profit_ratio = _get(trade, "profit_ratio")
    profit_abs = _get(trade, "close_profit_abs")
    if profit_abs is None:
        profit_abs = _get(trade, "profit_abs")
    open_date, close_date = _get(trade, "open_date"), _get(trade, "close_date")
    rec = {
        "pair": _get(trade, "pair"),
        "trade_id": _get(trade, "id"),
        "is_short": _get(trade, "is_short"),
        "open_date": open_date,
        "close_date": close_date,
        "open_rate": _get(trade, "open_rate"),
        "close_rate": _get(trade, "close_rate"),
        "amount": _round8(_get(trade, "amount")),
        "stake_amount": _round8(_get(trade, "stake_amount")),
        "leverage": _get(trade, "leverage"),
        "fee_open": _get(trade, "fee_open"),
        "fee_close": _get(trade, "fee_close"),
        "profit_ratio": profit_ratio,
        "profit_abs": profit_abs,
        "exit_reason": _get(trade, "exit_reason"),
        "enter_tag": _get(trade, "enter_tag"),
        "trade_duration": _minutes(open_date, close_date),
        "min_rate": _get(trade, "min_rate"),
        "max_rate": _get(trade, "max_rate"),
    }
    rec.update(extra)
    return rec


def send_trades(collector: Any, trades: Iterable[Any]) -> int:
    """Sends every trade (e.g. a backtest export's ``trades`` list); returns how many."""
    n = 0
    for t in trades:
        collector.trade(**trade_record(t))
        n += 1
    return n


# -- predictions ---------------------------------------------------------------


def prediction_columns(dataframe: Any) -> List[str]:
    """FreqAI's output columns in ``dataframe``: every ``&``-column (labels and
    their ``_mean``/``_std``), ``do_predict`` and ``DI_values``."""
    columns = [c for c in getattr(dataframe, "columns", ()) if isinstance(c, str)]
    return [c for c in columns if c.startswith("&") or c in ("do_predict", "DI_values")]


def _main_label(columns: List[str]) -> Optional[str]:
    """The first label column: ``&-action`` for RL, ``&-s_close`` and so on."""
    for c in columns:
        if c.startswith("&") and not c.endswith(("_mean", "_std")):
            return c
    return None


def _as_int(value: Any) -> Any:
    """``do_predict`` comes back as a float after FreqAI's merge (1.0); the
    stream stores it as an integer."""
    try:
        return int(value) if math.isfinite(value) else None
    except (TypeError, ValueError):
        return value


def prediction_records(dataframe: Any, pair: str, *, model: Optional[str] = None, label: Optional[str] = None,
                       start: Any = None, stop: Any = None, after: Any = None) -> List[Dict[str, Any]]:
    """``predictions`` records for the rows of ``dataframe`` dated in
    ``[start, stop)`` and later than ``after`` (each bound optional).

    Each record holds ``ts``, ``pair``, ``model``, every ``&``-column under its
    own name, ``do_predict`` and ``DI_values``. The label column (``label``, by
    default the first ``&``-column that is not a ``_mean``/``_std``) is also
    stored as ``prediction`` (a number) or ``label`` (a class name).
    """
    columns = prediction_columns(dataframe)
    if not columns or "date" not in getattr(dataframe, "columns", ()):
        return []
    rows = dataframe
    if start is not None:
        rows = rows[rows["date"] >= start]
    if stop is not None:
        rows = rows[rows["date"] < stop]
    if after is not None:
        rows = rows[rows["date"] > after]
    label = label or _main_label(columns)
    out = []
    for row in rows[["date", *columns]].to_dict("records"):
        rec: Dict[str, Any] = {"ts": row.pop("date"), "pair": pair, "model": model}
        value = row.get(label) if label else None
        if isinstance(value, str):
            rec["label"] = value
        elif value is not None:
            rec["prediction"] = value
        if "do_predict" in row:
            row["do_predict"] = _as_int(row["do_predict"])
        rec.update(row)
        out.append(rec)
    return out


def candle_record(pair: str, row: Any) -> Dict[str, Any]:
    """A ``candle`` record from an OHLCV row (a pandas Series or dict)."""
    get = row.get
    return {"pair": pair, "ts": get("date"), "open": get("open"), "high": get("high"), "low": get("low"),
            "close": get("close"), "volume": get("volume")}
