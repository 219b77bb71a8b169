"""Dry-run/live as Freqtrade plays it, with Freqtrade's own objects and no exchange.

A dry run needs the exchange's live prices, so it cannot run offline. What the
mixin depends on is the order of Freqtrade's calls, which this script repeats
with the real ``Trade``/``Order`` models (an in-memory database), the real
strategy class and the real collector:

* a fill: ``trade.update_trade(order)``, then ``strategy.order_filled(...)``
  (``FreqtradeBot.update_trade_state`` and ``_update_trade_after_fill``);
* a loop: ``strategy.bot_loop_start(current_time=now)`` every few seconds;
* a new candle: ``populate_indicators`` with the pair's latest window, where
  FreqAI hands back its historic predictions plus the newest one.

Prints what Freqtrade has (the closed trades' ``to_json()``, the candle opens,
the prediction dates the strategy should send) as JSON for the test to compare.

    python live_fills.py STRATEGY_FILE STRATEGY_CLASS
"""
import importlib.util
import json
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from freqtrade.enums import RunMode
from freqtrade.persistence import Order, Trade, init_db

T0 = datetime(2018, 1, 15, tzinfo=UTC)
PAIR = "UNITTEST/BTC"
CONFIG = {"runmode": RunMode.DRY_RUN, "dry_run": True, "stake_currency": "BTC", "stake_amount": 0.001,
          "timeframe": "5m", "exchange": {"name": "binance", "pair_whitelist": [PAIR]},
          "freqaimodel": "LightGBMRegressor"}


def load_strategy(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)(dict(CONFIG))


class Fills:
    """One trade's orders, filled the way FreqtradeBot fills them."""

    def __init__(self, strategy, trade_id, open_rate, amount, when):
        self.strategy, self.n = strategy, 0
        self.trade = Trade(id=trade_id, pair=PAIR, exchange="binance", is_open=True, is_short=False, leverage=1.0,
                           stake_amount=open_rate * amount, amount=amount, open_rate=open_rate,
                           fee_open=0.001, fee_close=0.001, open_date=when, strategy=type(strategy).__name__,
                           timeframe=5, amount_precision=1e-8, price_precision=1e-8, precision_mode=4,
                           precision_mode_price=4)
        Trade.session.add(self.trade)
        self.fill("buy", amount, open_rate, when)

    def fill(self, side, amount, price, when, tag=None):
        self.n += 1
        order = Order(ft_order_side=side, ft_pair=PAIR, ft_is_open=False, ft_amount=amount, ft_price=price,
                      order_id=f"{self.trade.id}-{self.n}", status="closed", symbol=PAIR, order_type="market",
                      side="sell" if side in ("sell", "stoploss") else "buy", price=price, average=price,
                      amount=amount, filled=amount, remaining=0, cost=amount * price, order_date=when,
                      order_filled_date=when, ft_order_tag=tag)
        self.trade.orders.append(order)
        if side != "buy":
            self.trade.exit_reason = tag
        self.trade.update_trade(order)  # update_trade_state, then _update_trade_after_fill:
        self.strategy.order_filled(pair=PAIR, trade=self.trade, order=order, current_time=when)
        return order


def trades(strategy):
    minute = timedelta(minutes=1)
    a = Fills(strategy, 1, 0.1, 0.01, T0)  # partial exit, added entry, final exit
    a.fill("sell", 0.004, 0.102, T0 + 10 * minute, "take_part")
    a.fill("buy", 0.006, 0.099, T0 + 20 * minute)
    last = a.fill("sell", a.trade.amount, 0.103, T0 + 30 * minute, "exit_signal")
    strategy.order_filled(pair=PAIR, trade=a.trade, order=last, current_time=T0 + 31 * minute)  # reported again
    b = Fills(strategy, 2, 0.1, 0.01, T0 + 40 * minute)  # closed by the stoploss order on the exchange
    b.fill("stoploss", 0.01, 0.097, T0 + 50 * minute, "stoploss_on_exchange")
    c = Fills(strategy, 3, 0.1, 0.01, T0 + 60 * minute)  # a partial exit, still open
    c.fill("sell", 0.005, 0.101, T0 + 70 * minute, "take_part")
    Trade.commit()
    return [t.to_json() for t in (a.trade, b.trade)], c.trade.is_open


def ticks(strategy):
    """The bot loops every few seconds: one candle tick per 5-minute candle."""
    seconds = [3, 8, 299, 301, 306, 600, 1203]
    for s in seconds:
        strategy.bot_loop_start(current_time=T0 + timedelta(seconds=s))
    return sorted({(T0 + timedelta(seconds=s - s % 300)).isoformat() for s in seconds})


def window(end, n=50):
    """The pair's latest window as FreqAI live hands it back: historic predictions
    for every candle, the newest one predicted now."""
    dates = pd.date_range(end=end, periods=n, freq="5min", tz="UTC")
    rng = np.random.default_rng(int(end.timestamp()))
    return pd.DataFrame({"date": dates, "close": 0.1, "&-s_close": rng.normal(0, 0.01, n),
                         "&-s_close_mean": 0.0, "&-s_close_std": 0.01, "do_predict": np.ones(n),
                         "DI_values": rng.random(n)})


def predictions(strategy):
    five = timedelta(minutes=5)
    ends = [T0, T0 + five, T0 + 3 * five, T0 + 3 * five, T0 + 4 * five]  # a candle skipped, one repeated
    sent = []
    for end in ends:
        df = window(end)
        strategy.rlcollect_predictions(df, {"pair": PAIR})
        new = df[df["date"] > pd.Timestamp(sent[-1]["ts"])] if sent else df.tail(1)
        sent += [{"ts": r["date"].isoformat(), "&-s_close": r["&-s_close"], "DI_values": r["DI_values"]}
                 for r in new.to_dict("records")]
    return sent


if __name__ == "__main__":
    init_db("sqlite://")
    strategy = load_strategy(sys.argv[1], sys.argv[2])
    strategy.ft_bot_start()
    closed, c_open = trades(strategy)
    result = {"trades": closed, "partial_left_open": c_open, "ticks": ticks(strategy),
              "predictions": predictions(strategy)}
    print(json.dumps(result, default=str))
