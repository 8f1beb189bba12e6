"""A Gymnasium environment as the bridge's plant: its state as handful's state channels,
one control period per `step`, seeded resets, resets to a given state, plant faults.

Three kinds, picked from the environment (`make`):

- **Pendulum-v1** (classic control): the state is the environment's own `[theta,
  theta_dot]` (theta = 0 upright, continuous, never wrapped), not its `cos/sin/theta_dot`
  observation; a reset to a state sets it exactly. Power-up: hanging at rest (pi, 0).
- **MuJoCo environments** (`gymnasium.envs.mujoco.MujocoEnv`): the state is `qpos` then
  `qvel`, plus a per-channel offset (`--state-offset I=V`: published = MuJoCo's + V, so a
  joint's zero can be moved to handful's convention); a reset to a state sets `qpos` and
  `qvel`, refused (as the Rust cart-pole refuses one) at or beyond a slide joint's range;
  `FAULT_LIMIT` while a limited slide joint is at or beyond its range. Power-up: the
  model's initial `qpos`, `qvel`.
- **Any other environment**: the state is its observation, flattened (a `Box` space);
  no reset to a state (`CAP_RESET_TO` is not announced). Power-up: `reset(seed)`.

A robot never terminates: `terminated` and `truncated` are ignored and the environment
steps on (the unwrapped environment is stepped, so no `TimeLimit` intervenes); the host's
task decides what an episode is.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import gymnasium as gym
import numpy as np

from . import protocol as p


class PlantError(ValueError):
    """An environment or option the bridge cannot serve, with what was expected."""


def _period_us(env) -> int:
    dt = getattr(env.unwrapped, "dt", None)
    if dt is None:
        fps = env.metadata.get("render_fps")
        if not fps:
            raise PlantError(
                f"{env.spec.id if env.spec else env}: no `dt` and no `render_fps`: "
                "cannot tell its control period"
            )
        dt = 1.0 / fps
    period_us = round(float(dt) * 1e6)
    if period_us <= 0:
        raise PlantError(f"control period {dt} s: expected > 0")
    return period_us


class Plant:
    """Common part: the environment, its action space and period."""

    reset_to = False

    def __init__(self, env, seed: int) -> None:
        self.env = env
        space = env.action_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise PlantError(f"action space {space}: expected a 1-D Box")
        self.action_low = [float(v) for v in space.low]
        self.action_high = [float(v) for v in space.high]
        self.action_dim = space.shape[0]
        self.period_us = _period_us(env)
        self.env.reset(seed=seed)

    def step(self, action: Sequence[float]) -> None:
        self.env.unwrapped.step(np.asarray(action, dtype=self.env.action_space.dtype))

    def reset(self, seed: int) -> None:
        self.env.reset(seed=seed)

    def fault_flags(self) -> int:
        return 0

    def refuses(self, values: Sequence[float]) -> Optional[int]:
        """Index of a value the plant cannot take, 0xff for the state as a whole."""
        return None

    def set_state(self, values: Sequence[float]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.env.close()


class PendulumPlant(Plant):
    reset_to = True
    state_dim = 2

    def __init__(self, env, seed: int) -> None:
        super().__init__(env, seed)
        self.set_state([math.pi, 0.0])

    def state(self) -> list:
        return [float(v) for v in self.env.unwrapped.state]

    def set_state(self, values) -> None:
        self.env.unwrapped.state = np.array([float(values[0]), float(values[1])])


class MujocoPlant(Plant):
    reset_to = True

    def __init__(self, env, seed: int, offsets: dict) -> None:
        super().__init__(env, seed)
        u = env.unwrapped
        self.nq, self.nv = u.model.nq, u.model.nv
        self.state_dim = self.nq + self.nv
        bad = [i for i in offsets if not 0 <= i < self.state_dim]
        if bad:
            raise PlantError(
                f"--state-offset index {bad[0]}: expected 0..{self.state_dim - 1} "
                f"(qpos {self.nq} then qvel {self.nv})"
            )
        self.offsets = np.array([offsets.get(i, 0.0) for i in range(self.state_dim)])
        # Limited slide joints with one qpos each: (qpos index, low, high).
        import mujoco

        self.slide_limits = []
        for j in range(u.model.njnt):
            if u.model.jnt_type[j] == mujoco.mjtJoint.mjJNT_SLIDE and u.model.jnt_limited[j]:
                low, high = u.model.jnt_range[j]
                self.slide_limits.append((int(u.model.jnt_qposadr[j]), float(low), float(high)))
        self._set(u.init_qpos, u.init_qvel)

    def state(self) -> list:
        d = self.env.unwrapped.data
        return [float(v) for v in np.concatenate([d.qpos, d.qvel]) + self.offsets]

    def _set(self, qpos, qvel) -> None:
        self.env.unwrapped.set_state(np.array(qpos, dtype=float), np.array(qvel, dtype=float))

    def set_state(self, values) -> None:
        raw = np.asarray(values, dtype=float) - self.offsets
        self._set(raw[: self.nq], raw[self.nq :])

    def _at_limit(self, qpos) -> bool:
        return any(qpos[i] <= low or qpos[i] >= high for i, low, high in self.slide_limits)

    def fault_flags(self) -> int:
        return p.FAULT_LIMIT if self._at_limit(self.env.unwrapped.data.qpos) else 0

    def refuses(self, values) -> Optional[int]:
        raw = np.asarray(values, dtype=float) - self.offsets
        return 0xFF if self._at_limit(raw[: self.nq]) else None


class ObservationPlant(Plant):
    """Any environment with a Box observation: the observation is the state."""

    def __init__(self, env, seed: int) -> None:
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box):
            raise PlantError(f"observation space {space}: expected a Box")
        self.state_dim = int(np.prod(space.shape))
        self._obs = None
        super().__init__(env, seed)
        self.reset(seed)

    def reset(self, seed: int) -> None:
        obs, _ = self.env.reset(seed=seed)
        self._obs = np.asarray(obs, dtype=float).ravel()

    def step(self, action) -> None:
        obs, *_ = self.env.unwrapped.step(np.asarray(action, dtype=self.env.action_space.dtype))
        self._obs = np.asarray(obs, dtype=float).ravel()

    def state(self) -> list:
        return [float(v) for v in self._obs]


def make(env_id: str, seed: int, offsets: dict, env_kwargs: dict) -> Plant:
    """The plant for `env_id` (any registered id, `handful/PetsCartpole-v0` included)."""
    from . import envs  # noqa: F401  (registers handful/*)

    try:
        env = gym.make(env_id, **env_kwargs)
    except gym.error.Error as e:
        raise PlantError(f"environment {env_id!r}: {e}") from None
    unwrapped = env.unwrapped
    from gymnasium.envs.classic_control.pendulum import PendulumEnv

    if isinstance(unwrapped, PendulumEnv):
        plant = PendulumPlant(env, seed)
    else:
        try:
            from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
        except ImportError:  # mujoco not installed: no MuJoCo environment either
            MujocoEnv = ()
        if MujocoEnv and isinstance(unwrapped, MujocoEnv):
            return MujocoPlant(env, seed, offsets)
        plant = ObservationPlant(env, seed)
    if offsets:
        raise PlantError("--state-offset applies to MuJoCo environments only")
    return plant
