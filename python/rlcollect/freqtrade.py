"""Freqtrade helpers: plain functions and a mixin, with no import-time
dependency on freqtrade.

Which strategy callbacks run where (Freqtrade 2024+):

=======================  ===========  ========  ====
callback                 backtesting  hyperopt  live
=======================  ===========  ========  ====
bot_loop_start           yes (once    yes       yes (every loop)
                         per candle)
populate_indicators      yes (once,   once      yes (every new candle)
                         whole data)
confirm_trade_exit       yes          yes       yes
order_filled             yes          yes       yes
bot_start                yes          yes       yes
=======================  ===========  ========  ====

FreqAI trains *inside* ``populate_indicators`` (``self.freqai.start(...)``):
a whole RL training cycle runs there, and no other callback fires during it.
That is why records must leave the process as they happen rather than wait
for a shutdown hook that training never reaches.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

#: The fields of Freqtrade's backtest export that the ``trades`` stream stores.
TRADE_FIELDS = (
    "pair", "trade_id", "is_short", "open_date", "close_date", "open_rate", "close_rate", "amount",
    "stake_amount", "leverage", "fee_open", "fee_close", "profit_ratio", "profit_abs", "exit_reason",
    "enter_tag", "trade_duration", "min_rate", "max_rate",
)


def _minutes(open_date, close_date) -> Optional[int]:
    try:
        return int((close_date - open_date).total_seconds() // 60)
    except Exception:
        return None


def trade_record(trade: Any, exit_order: Any = None, **extra: Any) -> Dict[str, Any]:
    """The ``trades`` record of a closed trade.

    ``trade`` is a Freqtrade ``Trade``/``LocalTrade`` or a row of the backtest
    export (a dict). From ``order_filled`` pass the exit order too: Freqtrade
    calls it before it closes the trade, so the closing rate, profit and date
    are computed from that order with the trade's own ``calc_profit`` /
    ``calc_profit_ratio`` (what Freqtrade stores when it closes the trade).
    Extra keyword arguments become extra columns.
    """
    if isinstance(trade, dict):
        rec = dict(trade)
        rec.pop("stream", None)
    else:
        get = lambda name, default=None: getattr(trade, name, default)  # noqa: E731
        profit_ratio = get("close_profit")
        if profit_ratio is None:
            profit_ratio = get("profit_ratio")
        profit_abs = get("close_profit_abs")
        if profit_abs is None:
            profit_abs = get("realized_profit")
        close_rate, close_date = get("close_rate"), get("close_date")
        if exit_order is not None and (profit_abs is None or get("is_open")):
            close_rate = getattr(exit_order, "safe_price", None) or getattr(exit_order, "average", None)
            close_date = getattr(exit_order, "order_filled_date", None) or close_date
            amount = getattr(exit_order, "safe_filled", None) or getattr(exit_order, "filled", None)
            profit_abs = trade.calc_profit(rate=close_rate, amount=amount)
            # As Freqtrade's close_profit: profit over the stake paid to open
            # (fees included), times leverage.
            stake = get("open_trade_value")
            if stake:
                profit_ratio = profit_abs / stake * (get("leverage") or 1.0)
            else:
                profit_ratio = trade.calc_profit_ratio(rate=close_rate, amount=amount)
        rec = {
            "pair": get("pair"),
            "trade_id": get("id"),
            "is_short": get("is_short"),
            "open_date": get("open_date"),
            "close_date": close_date,
            "open_rate": get("open_rate"),
            "close_rate": close_rate,
            "amount": get("amount"),
            "stake_amount": get("stake_amount"),
            "leverage": get("leverage"),
            "fee_open": get("fee_open"),
            "fee_close": get("fee_close"),
            "profit_ratio": profit_ratio,
            "profit_abs": profit_abs,
            "exit_reason": get("exit_reason"),
            "enter_tag": get("enter_tag"),
            "trade_duration": _minutes(get("open_date"), close_date),
            "min_rate": get("min_rate"),
            "max_rate": get("max_rate"),
        }
    rec.update(extra)
    return rec


def prediction_records(dataframe: Any, pair: str, *, model: Optional[str] = None, last: int = 1,
                       label: str = "&-action") -> List[Dict[str, Any]]:
    """``predictions`` records from the FreqAI columns of the last ``last`` rows:
    the label column (``&-action`` for RL), ``do_predict`` and ``DI_values``.
    Every other ``&``-prefixed column is kept as an extra field."""
    tail = dataframe.tail(last)
    out = []
    for _, row in tail.iterrows():
        rec: Dict[str, Any] = {"ts": row.get("date"), "pair": pair, "model": model}
        value = row.get(label)
        if isinstance(value, str):
            rec["label"] = value
        elif value is not None:
            rec["prediction"] = value
        if "do_predict" in row:
            rec["do_predict"] = row["do_predict"]
        if "DI_values" in row:
            rec["DI_values"] = row["DI_values"]
        for col in row.index:
            if isinstance(col, str) and col.startswith("&") and col != label:
                rec[col] = row[col]
        out.append(rec)
    return out


def candle_record(pair: str, row: Any) -> Dict[str, Any]:
    """A ``candle`` record from an OHLCV row (a pandas Series or dict)."""
    get = row.get
    return {"pair": pair, "ts": get("date"), "open": get("open"), "high": get("high"), "low": get("low"),
            "close": get("close"), "volume": get("volume")}


class RLCollectMixin:
    """Add to a strategy (``class MyStrategy(RLCollectMixin, IStrategy)``) to send
    trades, candles and predictions with no other code.

    The collector joins the run named by ``rlcollect_run`` (or ``RLCOLLECT_RUN``)
    under ``rlcollect_out``. Call the ``rlcollect_*`` methods from the matching
    callbacks if your strategy overrides them.
    """

    rlcollect_out: str = "analysis_data"
    rlcollect_run: Optional[str] = None
    _rlcollect = None

    @property
    def rlcollect(self):
        if self._rlcollect is None:
            from .client import Collector

            type(self)._rlcollect = Collector(self.rlcollect_out, self.rlcollect_run)
        return self._rlcollect

    def rlcollect_candles(self, dataframe: Any, metadata: dict, last: int = 1) -> None:
        """From ``populate_indicators``: a candle tick per new row, plus predictions."""
        pair = metadata.get("pair")
        for _, row in dataframe.tail(last).iterrows():
            self.rlcollect.candle(**candle_record(pair, row))
        if "do_predict" in dataframe.columns:
            for rec in prediction_records(dataframe, pair, last=last):
                self.rlcollect.prediction(**rec)

    def order_filled(self, pair: str, trade: Any, order: Any, current_time: Any, **kwargs: Any) -> None:
        """Freqtrade callback: sends the trade when its exit order fills."""
        if getattr(order, "ft_order_side", None) == getattr(trade, "exit_side", None):
            self.rlcollect.trade(**trade_record(trade, order))
        parent = getattr(super(), "order_filled", None)
        if parent is not None:
            parent(pair, trade, order, current_time, **kwargs)

    def bot_loop_start(self, current_time=None, **kwargs) -> None:  # noqa: D401 - Freqtrade callback
        self.rlcollect.candle(ts=current_time)
        parent = getattr(super(), "bot_loop_start", None)
        if parent is not None:
            parent(current_time=current_time, **kwargs)


def send_trades(collector: Any, trades: Iterable[Any]) -> int:
    """Sends every trade (e.g. a backtest export's ``trades`` list); returns how many."""
    n = 0
    for t in trades:
        collector.trade(**trade_record(t))
        n += 1
    return n
