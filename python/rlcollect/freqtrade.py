"""Freqtrade helpers: a strategy mixin and plain functions, with no import-time
dependency on freqtrade (or pandas).

    class MyStrategy(RLCollectMixin, IStrategy):          # the mixin first
        def populate_indicators(self, dataframe, metadata):
            dataframe = self.freqai.start(dataframe, metadata, self)
            self.rlcollect_predictions(dataframe, metadata)
            return dataframe

What the mixin records, from which callback, in which run mode:

===========  ======================  ===============================  =========================
record       callback                backtesting                      dry-run / live
===========  ======================  ===============================  =========================
predictions  populate_indicators     every candle FreqAI predicted    each new candle once:
             (rlcollect_predictions) (the --timerange, all windows),  the rows after the last
                                     each once                        date sent for the pair
candle tick  bot_loop_start          one per candle                   one per new candle
trades       order_filled            every closed trade, as the       every closed trade
             (the closing exit)      export holds it (force_exit,
                                     partial exits, shorts)
===========  ======================  ===============================  =========================

Hyperopt records the predictions only: ``populate_indicators`` (and FreqAI
training) runs once, in the main process. Its epochs (``bot_loop_start``,
``order_filled``) are trial runs with changing parameters in worker processes;
Freqtrade keeps their results itself. Other run modes (plotting, utilities,
``list-strategies``) record nothing and start no collector. Dry-run/live starts
with the newest candle when the bot starts, and records what FreqAI hands the
strategy: until its first model is trained that is FreqAI's placeholder (zeros,
``do_predict`` 0), and a candle the bot skipped gets FreqAI's zero row too.

Why these callbacks, and not the obvious ones:

* Backtesting calls ``populate_indicators`` once per pair over the whole range.
  FreqAI trains every backtest window inside it and hands back all windows'
  predictions at once, zero-filled for the candles it did not predict (the
  training period before ``--timerange``, and the candle at its end). So the
  rows dated inside ``--timerange`` are the predicted ones, not "the last row".
* The trade closed at the end of a backtest (``force_exit``) never passes
  ``confirm_trade_exit``, and at ``confirm_trade_exit`` no trade is closed yet
  (no profit, no close rate). ``order_filled`` sees every fill: live calls it
  after Freqtrade closed the trade, backtesting just before (see
  :func:`trade_record`).
* ``bot_loop_start`` runs once per candle in backtesting (and every few seconds
  live), so it is the candle clock; ``populate_indicators`` is not.
* Hyperopt pickles the strategy into its workers: the mixin keeps its
  ``Collector`` out of the strategy object (one per process, from
  :func:`rlcollect.client.shared_collector`), and inside Freqtrade it is a
  subclass of ``IStrategy`` (see :func:`_build_mixin`).
"""

from __future__ import annotations

import copy
import logging
import math
import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

log = logging.getLogger("rlcollect")

#: The fields of Freqtrade's backtest export that the ``trades`` stream stores.
TRADE_FIELDS = (
    "pair", "trade_id", "is_short", "open_date", "close_date", "open_rate", "close_rate", "amount",
    "stake_amount", "leverage", "fee_open", "fee_close", "profit_ratio", "profit_abs", "exit_reason",
    "enter_tag", "trade_duration", "min_rate", "max_rate",
)

#: Run modes (Freqtrade's ``config["runmode"]``) in which the mixin records.
RECORDING_MODES = ("backtest", "hyperopt", "dry_run", "live")
_OPTIMIZE_MODES = ("backtest", "hyperopt")


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


# -- run mode and time -----------------------------------------------------------


def run_mode(config: Any) -> str:
    """Freqtrade's run mode as a string (``backtest``, ``hyperopt``, ``dry_run``,
    ``live``, ...), or ``""`` when unknown."""
    mode = (config or {}).get("runmode") if isinstance(config, dict) else None
    return str(getattr(mode, "value", mode) or "")


def timerange_bounds(config: Any) -> Tuple[Any, Any]:
    """``(start, stop)`` of the configured ``--timerange`` as UTC datetimes
    (either may be None). FreqAI predicts exactly ``[start, stop)`` in
    backtesting: its first window starts at ``start``, its last ends at ``stop``."""
    text = (config or {}).get("timerange") if isinstance(config, dict) else None
    if not text:
        return None, None
    try:
        from freqtrade.configuration import TimeRange  # at run time only: inside Freqtrade
    except ImportError:
        log.warning("rlcollect: cannot parse --timerange %r without freqtrade; predictions are not limited to it",
                    text)
        return None, None
    tr = TimeRange.parse_timerange(text)
    return (tr.startdt if tr.starttype else None), (tr.stopdt if tr.stoptype else None)


def candle_open(current_time: Any, timeframe: Optional[str]) -> Any:
    """The open time of the candle ``current_time`` falls in. Backtesting hands
    candle times already; live hands the wall clock."""
    if current_time is None or not timeframe:
        return current_time
    try:
        from freqtrade.exchange import timeframe_to_prev_date
    except ImportError:
        return current_time
    return timeframe_to_prev_date(timeframe, current_time)


# -- the mixin ---------------------------------------------------------------------

#: The callbacks the mixin implements; a strategy that defines one must call super().
_CALLBACKS = ("bot_loop_start", "order_filled")


class _State:
    """Per-strategy bookkeeping. Plain data: hyperopt pickles the strategy."""

    def __init__(self) -> None:
        self.pid = os.getpid()  # the process that ran bot_start (hyperopt: the main one)
        self.checked = False
        self.failed = False
        self.last_prediction: Dict[str, Any] = {}  # pair -> last date sent
        self.last_tick = None
        self.trades_sent: set = set()
        self.warned: set = set()


def _unwired_callbacks(cls: type, mixin: type) -> List[str]:
    """``Class.callback`` names whose call never reaches the mixin's: defined
    without a call to ``super()``, or the mixin placed after ``IStrategy``."""
    out = []
    for name in _CALLBACKS:
        for klass in cls.__mro__:
            fn = vars(klass).get(name)
            if fn is None:
                continue
            if klass is mixin:
                break
            code = getattr(fn, "__code__", None)
            if code is None or "super" not in code.co_names:
                out.append(f"{klass.__name__}.{name}")
                break
    return out


def _build_mixin(base: type) -> type:
    """The mixin class on ``base``: Freqtrade's ``IStrategy`` inside Freqtrade.

    Freqtrade's hyperopt registers the modules of a strategy's base classes for
    pickling by value, walking up the bases until a class named ``IStrategy``.
    From a plain mixin it reaches ``object`` and registers ``builtins``, after
    which no task can be pickled to the workers (RecursionError). As a subclass
    of ``IStrategy`` the walk stops there. Freqtrade lists only strategies
    defined in the strategy file itself, so this class is never one.
    """

    class RLCollectMixin(base):  # type: ignore[valid-type,misc]
        """Records FreqAI predictions, candle ticks and closed trades in every run
        mode (see the module's table). ``class MyStrategy(RLCollectMixin, IStrategy)``,
        then call :meth:`rlcollect_predictions` after ``self.freqai.start(...)``.

        It implements ``bot_start``, ``bot_loop_start`` and ``order_filled``; a
        strategy that defines one of them too must call ``super()`` in it. The
        collector joins (or starts) the run named by ``rlcollect_run`` (default:
        ``RLCOLLECT_RUN`` or the start time) under ``rlcollect_out`` in
        ``bot_start``, never at import. Nothing here raises into the strategy.
        """

        rlcollect_out: str = "analysis_data"
        rlcollect_run: Optional[str] = None
        rlcollect_model: Optional[str] = None  # default: the config's freqaimodel

        # -- Freqtrade callbacks ---------------------------------------------------

        def bot_start(self, **kwargs: Any) -> None:
            """Freqtrade callback: joins or starts the run's collector."""
            self._rlcollect_guard(self._rlcollect_start)
            parent = getattr(super(), "bot_start", None)
            if parent is not None:
                parent(**kwargs)

        def bot_loop_start(self, current_time: Any = None, **kwargs: Any) -> None:
            """Freqtrade callback: a candle tick per new candle."""
            self._rlcollect_guard(self._rlcollect_tick, current_time)
            parent = getattr(super(), "bot_loop_start", None)
            if parent is not None:
                parent(current_time=current_time, **kwargs)

        def order_filled(self, pair: str, trade: Any, order: Any, current_time: Any, **kwargs: Any) -> None:
            """Freqtrade callback: the trade, when this fill closes it."""
            self._rlcollect_guard(self._rlcollect_order, trade, order)
            parent = getattr(super(), "order_filled", None)
            if parent is not None:
                parent(pair, trade, order, current_time, **kwargs)

        def rlcollect_predictions(self, dataframe: Any, metadata: dict) -> None:
            """From ``populate_indicators``, after ``self.freqai.start(...)``: sends
            each candle FreqAI predicted once (see the module's table)."""
            self._rlcollect_guard(self._rlcollect_predictions, dataframe, metadata)

        # -- internals ---------------------------------------------------------------

        @property
        def _rlcollect_state(self) -> _State:
            state = self.__dict__.get("_rlcollect")
            if state is None:
                state = self.__dict__["_rlcollect"] = _State()
            return state

        def _rlcollect_mode(self) -> str:
            return run_mode(getattr(self, "config", None))

        def _rlcollect_guard(self, fn, *args: Any) -> None:
            """Runs one of the mixin's steps; a failure is logged, never raised."""
            try:
                fn(*args)
            except Exception as e:
                log.warning("rlcollect: %s failed (%s: %s); the strategy goes on", fn.__name__.lstrip("_"),
                            type(e).__name__, e, exc_info=log.isEnabledFor(logging.DEBUG))

        def _rlcollect_warn_once(self, key: str, msg: str, *args: Any) -> None:
            state = self._rlcollect_state
            if key not in state.warned:
                state.warned.add(key)
                log.warning(msg, *args)

        def _rlcollect_collector(self):
            """This process's collector for the run, or None when recording is off
            in this mode or the collector could not start (logged once)."""
            state = self._rlcollect_state
            if state.failed or self._rlcollect_mode() not in RECORDING_MODES:
                return None
            if not state.checked:
                state.checked = True
                for where in _unwired_callbacks(type(self), __class__):
                    log.error("rlcollect: %s does not call super().%s(...), so RLCollectMixin never sees it "
                              "and records nothing from it. Call super() there, and list RLCollectMixin "
                              "before IStrategy in the class bases.", where, where.split(".")[-1])
            from .client import shared_collector

            try:
                return shared_collector(self.rlcollect_out, self.rlcollect_run)
            except Exception as e:
                state.failed = True
                log.error("rlcollect: cannot start or join the collector (%s: %s); this run records nothing",
                          type(e).__name__, e)
                return None

        def _rlcollect_start(self) -> None:
            self._rlcollect_state.pid = os.getpid()
            mode = self._rlcollect_mode()
            if mode in RECORDING_MODES:
                self._rlcollect_collector()
            else:
                log.info("rlcollect: run mode %r records nothing", mode)

        def _rlcollect_tick(self, current_time: Any) -> None:
            mode = self._rlcollect_mode()
            if mode == "hyperopt":
                return  # epochs are trials: see the module's docstring
            candle = current_time  # backtesting hands candle times (and flooring costs ~70 µs a call)
            if mode != "backtest":
                candle = candle_open(current_time, getattr(self, "timeframe", None))
            state = self._rlcollect_state
            if candle is None or candle == state.last_tick:
                return  # live loops run every few seconds: one tick per candle
            state.last_tick = candle
            collector = self._rlcollect_collector()
            if collector is not None:
                collector.candle(ts=candle)

        def _rlcollect_order(self, trade: Any, order: Any) -> None:
            if self._rlcollect_mode() == "hyperopt" or not closes_trade(trade, order):
                return
            state = self._rlcollect_state
            key = (_get(trade, "pair"), _get(trade, "id"), _get(trade, "open_date"))
            if key in state.trades_sent:
                return  # Freqtrade may report a fill again after a restart
            rec = trade_record(trade, order)
            if rec.get("pair") is None:
                self._rlcollect_warn_once("trade-pair", "rlcollect: order_filled handed a trade without a pair "
                                          "(%r); it is not recorded", type(trade).__name__)
                return
            collector = self._rlcollect_collector()
            if collector is not None:
                state.trades_sent.add(key)
                collector.trade(**rec)

        def _rlcollect_predictions(self, dataframe: Any, metadata: dict) -> None:
            mode = self._rlcollect_mode()
            state = self._rlcollect_state
            if mode == "hyperopt" and os.getpid() != state.pid:
                return  # a hyperopt worker (--analyze-per-epoch): the main process sent them
            pair = (metadata or {}).get("pair")
            columns = prediction_columns(dataframe)
            if not columns or "date" not in getattr(dataframe, "columns", ()):
                self._rlcollect_warn_once(f"columns-{pair}", "rlcollect: the dataframe of %s has no FreqAI columns "
                                          "(do_predict, &-...): call rlcollect_predictions(dataframe, metadata) "
                                          "after dataframe = self.freqai.start(...); nothing recorded", pair)
                return
            if len(dataframe) == 0:
                return
            last = state.last_prediction.get(pair)
            if mode in _OPTIMIZE_MODES:
                start, stop = timerange_bounds(getattr(self, "config", None))
            else:  # live: only candles after the last one sent; at first, the newest one
                start, stop = (dataframe["date"].iloc[-1] if last is None else None), None
            model = self.rlcollect_model or (getattr(self, "config", None) or {}).get("freqaimodel")
            records = prediction_records(dataframe, pair, model=model, start=start, stop=stop, after=last)
            if not records:
                return
            collector = self._rlcollect_collector()
            if collector is None:
                return
            for rec in records:
                collector.prediction(**rec)
            state.last_prediction[pair] = max(rec["ts"] for rec in records)

    return RLCollectMixin


def __getattr__(name: str) -> Any:
    """``RLCollectMixin`` is built on first use, on ``IStrategy`` when freqtrade
    is importable (importing this module imports no freqtrade)."""
    if name != "RLCollectMixin":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from freqtrade.strategy import IStrategy as base
    except ImportError:
        base = object
    mixin = globals()["RLCollectMixin"] = _build_mixin(base)
    return mixin
