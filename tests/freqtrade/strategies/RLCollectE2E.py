"""A small real strategy that streams its analytics to rlcollect while
Freqtrade backtests it: a candle per analysed row, and every closed trade."""

import os

import talib.abstract as ta  # noqa: F401  (freqtrade installs TA-Lib)
from pandas import DataFrame

from freqtrade.strategy import IStrategy
from rlcollect import Collector
from rlcollect.freqtrade import candle_record, trade_record


class RLCollectE2E(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "5m"
    minimal_roi = {"0": 0.02}
    stoploss = -0.03
    startup_candle_count = 20

    def bot_start(self, **kwargs) -> None:
        self.rlc = Collector(os.environ["RLCOLLECT_OUT"], os.environ["RLCOLLECT_RUN"])

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe["ema_fast"] = dataframe["close"].ewm(span=8).mean()
        dataframe["ema_slow"] = dataframe["close"].ewm(span=21).mean()
        for _, row in dataframe.iterrows():  # backtesting analyses the whole range at once
            self.rlc.candle(**candle_record(metadata["pair"], row))
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        cross = (dataframe["ema_fast"] > dataframe["ema_slow"]) & (
            dataframe["ema_fast"].shift(1) <= dataframe["ema_slow"].shift(1))
        dataframe.loc[cross, "enter_long"] = 1
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        cross = (dataframe["ema_fast"] < dataframe["ema_slow"]) & (
            dataframe["ema_fast"].shift(1) >= dataframe["ema_slow"].shift(1))
        dataframe.loc[cross, "exit_long"] = 1
        return dataframe

    def order_filled(self, pair, trade, order, current_time, **kwargs) -> None:
        if order.ft_order_side == trade.exit_side:
            self.rlc.trade(**trade_record(trade, order))

    def bot_loop_start(self, current_time, **kwargs) -> None:
        pass
