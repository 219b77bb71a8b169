"""FreqAI reinforcement-learning hooks.

* :class:`RLCollectWrapper` wraps a FreqAI ``BaseEnvironment``-style env: each
  ``step()`` becomes a ``model_decisions`` row (from the info dict keys
  ``tick``, ``action``, ``total_reward``, ``total_profit``, ``position``,
  ``trade_duration``, ``current_profit_pct``, plus the action's name from the
  env's ``actions`` enum), and each episode end an ``rl_episodes`` row.
* :class:`RLCollectEnvMixin` does the same from inside the env class (the
  ``MyRLEnv`` of a ``ReinforcementLearner`` subclass).
* :class:`RLCollectCallback` (only when stable-baselines3 is importable) does
  the same from an SB3 algorithm's ``self.locals``, for every env of a VecEnv.

In ``SubprocVecEnv`` workers, create the wrapper inside the env factory with
the same ``run`` (inherited through ``RLCOLLECT_RUN``) or ``socket=`` of a sidecar
you started: each worker then connects as its own
``source`` and all of them write into one run.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Callable, Optional

from .client import Collector

try:  # a real gymnasium.Wrapper when gymnasium is there (SB3 and VecEnvs check for it)
    import gymnasium as _gym

    _WrapperBase: Any = _gym.Wrapper
except ImportError:  # pragma: no cover - exercised without gymnasium
    _gym = None
    _WrapperBase = object

INFO_KEYS = ("tick", "action", "total_reward", "total_profit", "position", "trade_duration", "current_profit_pct")


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _action_name(actions: Any, action: Any) -> Optional[str]:
    if actions is None:
        return None
    try:
        return actions(int(action)).name
    except Exception:
        return None


class _Recorder:
    """Turns steps into ``model_decisions`` rows and episode ends into ``rl_episodes`` rows."""

    def __init__(self, collector: Collector, pair: str, model: Optional[str], actions: Any,
                 ts: Optional[Callable[[dict], Any]]) -> None:
        self.collector = collector
        self.pair = pair
        self.model = model
        self.actions = actions
        self.ts = ts
        self.episode = 0
        self.steps = 0
        self.reward_sum = 0.0
        self.start_ts = None
        self.trades = 0
        self.last_position = None

    def step(self, action: Any, reward: Any, info: dict) -> None:
        ts = self.ts(info) if self.ts else _now()
        if self.steps == 0:
            self.start_ts = ts
        self.steps += 1
        self.reward_sum += float(reward)
        position = info.get("position")
        if position is not None and self.last_position is not None and position != self.last_position:
            self.trades += 1
        self.last_position = position
        act = info.get("action", action)
        fields = {k: info[k] for k in INFO_KEYS if k in info and k not in ("action", "tick")}
        self.collector.decision(
            ts=ts, pair=self.pair, episode=self.episode, step=info.get("tick", self.steps), action=act,
            action_name=_action_name(self.actions, act), reward=reward, model=self.model, **fields,
        )

    def end_episode(self, info: dict) -> None:
        self.collector.episode(
            episode=self.episode, pair=self.pair, start_ts=self.start_ts,
            end_ts=self.ts(info) if self.ts else _now(), steps=self.steps,
            total_reward=info.get("total_reward", self.reward_sum), total_profit=info.get("total_profit"),
            trades=self.trades, model=self.model,
        )
        self.episode += 1
        self.steps = 0
        self.reward_sum = 0.0
        self.trades = 0
        self.last_position = None


class RLCollectWrapper(_WrapperBase):
    """Records every step and episode of a FreqAI-style env.

    ``collector`` is shared, or made from ``out``/``run``/``socket``/``source``.
    ``ts`` maps the info dict to the step's candle time (default: wall clock).
    """

    def __init__(self, env: Any, collector: Optional[Collector] = None, *, pair: Optional[str] = None,
                 model: Optional[str] = None, ts: Optional[Callable[[dict], Any]] = None,
                 out: str = "analysis_data", run: Optional[str] = None, socket: Optional[str] = None,
                 source: Optional[str] = None) -> None:
        if _WrapperBase is not object:
            super().__init__(env)
        else:
            self.env = env
        self.rlcollect = collector or Collector(out, run, socket=socket, source=source)
        inner = getattr(env, "unwrapped", env)
        self._rec = _Recorder(self.rlcollect, pair or getattr(inner, "pair", None) or "unknown", model,
                              getattr(inner, "actions", None), ts)

    def reset(self, **kwargs: Any):
        if self._rec.steps:
            self._rec.end_episode({})  # an episode cut short by reset
        return self.env.reset(**kwargs)

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._rec.step(action, reward, info)
        if terminated or truncated:
            self._rec.end_episode(info)
        return obs, reward, terminated, truncated, info

    if _WrapperBase is object:  # pragma: no cover - plain delegation without gymnasium
        def __getattr__(self, name: str) -> Any:
            return getattr(self.env, name)


class RLCollectEnvMixin:
    """Mix into a FreqAI env class (``class MyRLEnv(RLCollectEnvMixin,
    Base5ActionRLEnv)`` inside your ``ReinforcementLearner`` subclass): every
    ``step()`` and episode end is recorded. Each env instance (one per
    ``SubprocVecEnv`` worker process) opens its own ``Collector``, and all of
    them join the run's one sidecar."""

    rlcollect_out: str = "analysis_data"
    rlcollect_run: Optional[str] = None
    rlcollect_model: Optional[str] = None

    def _rlcollect_recorder(self) -> "_Recorder":
        rec = self.__dict__.get("_rlcollect_rec")
        if rec is None:
            collector = Collector(self.rlcollect_out, self.rlcollect_run)
            rec = _Recorder(collector, getattr(self, "pair", None) or "unknown", self.rlcollect_model,
                            getattr(self, "actions", None), None)
            self.__dict__["_rlcollect_rec"] = rec
        return rec

    def step(self, action: Any):
        result = super().step(action)  # type: ignore[misc]
        _, reward, terminated, truncated, info = result
        rec = self._rlcollect_recorder()
        rec.step(action, reward, info)
        if terminated or truncated:
            rec.end_episode(info)
        return result


class StepRecorder:
    """The SB3 callback's logic, free of SB3: call :meth:`on_step` with an
    algorithm's ``locals`` (``infos``, ``actions``, ``rewards``, ``dones``)."""

    def __init__(self, collector: Collector, pair: str = "unknown", model: Optional[str] = None,
                 actions: Any = None, ts: Optional[Callable[[dict], Any]] = None) -> None:
        self._args = (collector, pair, model, actions, ts)
        self._envs: dict = {}

    def on_step(self, locals_: dict) -> None:
        infos = locals_.get("infos") or []
        actions = locals_.get("actions")
        rewards = locals_.get("rewards")
        dones = locals_.get("dones")
        for i, info in enumerate(infos):
            rec = self._envs.get(i)
            if rec is None:
                rec = self._envs[i] = _Recorder(*self._args)
                rec.episode = 0
            action = actions[i] if actions is not None else info.get("action")
            reward = rewards[i] if rewards is not None else 0.0
            rec.step(action, reward, info)
            if dones is not None and bool(dones[i]):
                rec.end_episode(info)


try:
    from stable_baselines3.common.callbacks import BaseCallback as _BaseCallback

    class RLCollectCallback(_BaseCallback):
        """Stable-Baselines3 callback: a ``model_decisions`` row per env step of
        every env, an ``rl_episodes`` row per finished episode."""

        def __init__(self, collector: Collector, pair: str = "unknown", model: Optional[str] = None,
                     actions: Any = None, verbose: int = 0) -> None:
            super().__init__(verbose)
            self.recorder = StepRecorder(collector, pair, model, actions)

        def _on_step(self) -> bool:
            self.recorder.on_step(self.locals)
            return True

except ImportError:  # stable-baselines3 not installed
    RLCollectCallback = None  # type: ignore[assignment,misc]
