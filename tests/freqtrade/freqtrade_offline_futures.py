"""`freqtrade_offline.py` with linear futures markets, so short trades backtest offline.

Every spot pair BASE/QUOTE of FREQTRADE_OFFLINE_PAIRS also gets its swap market
BASE/QUOTE:QUOTE, with one static leverage tier (up to 10x, 1 % maintenance margin) in
place of the tier list Binance ships for its real pairs. Candles go to
user_data/data/<exchange>/futures/<BASE>_<QUOTE>_<QUOTE>-<tf>-futures.feather, next to
the funding-rate and mark candles Freqtrade requires for futures
(-8h-funding_rate.feather, -8h-mark.feather).

    python freqtrade_offline_futures.py backtesting -c config.json -c config-futures.json ...
"""
import sys

import freqtrade_offline as offline
from freqtrade.exchange import binance as _binance
from freqtrade.exchange import exchange as _exchange

TIER = {"minNotional": 0.0, "maxNotional": 1e9, "maintenanceMarginRate": 0.01, "maxLeverage": 10.0,
        "info": {"cum": 0.0}}


def _swap(pair):
    base, quote = pair.split("/")
    market = offline._market(pair)
    market.update({
        "id": base + quote + "_PERP", "symbol": f"{pair}:{quote}", "type": "swap", "spot": False,
        "swap": True, "contract": True, "linear": True, "inverse": False, "settle": quote,
        "settleId": quote, "contractSize": 1.0,
    })
    market["limits"]["leverage"] = {"min": 1, "max": 10}
    return market


def _load_static_markets(self, reload=False):
    self._api_async.set_markets([offline._market(p) for p in offline.PAIRS] + [_swap(p) for p in offline.PAIRS])


def _static_leverage_tiers(self):
    return {_swap(p)["symbol"]: [dict(TIER)] for p in offline.PAIRS}


_exchange.Exchange._load_async_markets = _load_static_markets
_binance.Binance.load_leverage_tiers = _static_leverage_tiers

if __name__ == "__main__":
    from freqtrade.main import main

    sys.exit(main(sys.argv[1:]))
