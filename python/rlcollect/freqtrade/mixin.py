"""``RLCollectMixin``: records FreqAI predictions, candle ticks and closed
trades from a strategy's callbacks, in every run mode (see the package docs)."""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional

from .records import _get, closes_trade, prediction_columns, prediction_records, trade_record
from .runmode import OPTIMIZE_MODES, RECORDING_MODES, candle_open, run_mode, timerange_bounds

log = logging.getLogger("rlcollect")

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
            from ..shared import shared_collector

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
            if mode in OPTIMIZE_MODES:
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
