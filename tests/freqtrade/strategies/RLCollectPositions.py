"""Strategies that exercise every way a trade ends, recorded by RLCollectMixin:
ROI, stoploss, partial exits and an added entry (``adjust_trade_position``),
the ``force_exit`` of the trade still open when the backtest ends, and
(``RLCollectShorts``, futures) short trades with leverage."""

from pandas import DataFrame

from freqtrade.strategy import IStrategy
from rlcollect.freqtrade import RLCollectMixin


class RLCollectPositions(RLCollectMixin, IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "5m"
    minimal_roi = {"0": 0.03}
    stoploss = -0.05
    startup_candle_count = 30
    position_adjustment_enable = True

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe["ema_fast"] = dataframe["close"].ewm(span=8).mean()
        dataframe["ema_slow"] = dataframe["close"].ewm(span=30).mean()
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        fast, slow = dataframe["ema_fast"], dataframe["ema_slow"]
        dataframe.loc[(fast > slow) & (fast.shift(1) <= slow.shift(1)), "enter_long"] = 1
        dataframe.loc[(fast < slow) & (fast.shift(1) >= slow.shift(1)), "enter_short"] = 1
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        return dataframe  # trades end by ROI, stoploss, partial exits or the backtest's end

    def adjust_trade_position(self, trade, current_time, current_rate, current_profit, min_stake, max_stake,
                              current_entry_rate, current_exit_rate, current_entry_profit,
                              current_exit_profit, **kwargs):
        if current_profit < -0.01 and trade.nr_of_successful_entries == 1:
            return trade.stake_amount / 2, "add"  # one added entry: the average open rate changes
        if current_profit > 0.008 and trade.nr_of_successful_exits == 0:
            return -trade.stake_amount / 2, "take_half"  # a partial exit
        if current_profit > 0.012 and trade.nr_of_successful_exits == 1:
            return -trade.stake_amount, "take_rest"  # a partial exit of all that is left ends it
        return None


class RLCollectShorts(RLCollectPositions):
    """Longs and shorts on futures, 3x leverage (config-futures.json)."""

    can_short = True

    def leverage(self, pair, current_time, current_rate, proposed_leverage, max_leverage, entry_tag, side,
                 **kwargs) -> float:
        return 3.0
