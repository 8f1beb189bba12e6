"""Gymnasium environments this package registers (importing `handful_gym` registers them).

`handful/PetsCartpole-v0`: the PETS cart-pole swing-up on MuJoCo, its XML verbatim from
the PETS code (assets/pets_cartpole.xml), as facebookresearch/mbrl-lib's
`mbrl/env/pets_cartpole.py` runs it: 2 frames of 20 ms per step, observation `[x, theta,
x_dot, theta_dot]` (theta = 0 hanging, positive swinging the tip toward -x), reward
`exp(-|tip - (0, 0.6)|^2 / 0.6^2) - 0.01 u^2`, never terminating. One change: the reset's
N(0, 0.1^2) draws come from the environment's seeded generator (mbrl-lib draws them from
NumPy's global one), so a Reset's seed fixes its start.
"""

from __future__ import annotations

import pathlib

import numpy as np
import gymnasium
from gymnasium import register, utils
from gymnasium.envs.mujoco import mujoco_env
from gymnasium.spaces import Box

ASSETS = pathlib.Path(__file__).resolve().parent / "assets"
POLE_LENGTH_M = 0.6


class PetsCartpoleEnv(mujoco_env.MujocoEnv, utils.EzPickle):
    metadata = {"render_modes": ["human", "rgb_array", "depth_array"], "render_fps": 25}

    def __init__(self, render_mode=None, **kwargs):
        utils.EzPickle.__init__(self, render_mode, **kwargs)
        observation_space = Box(low=-np.inf, high=np.inf, shape=(4,), dtype=np.float64)
        mujoco_env.MujocoEnv.__init__(
            self,
            str(ASSETS / "pets_cartpole.xml"),
            2,
            observation_space=observation_space,
            render_mode=render_mode,
            **kwargs,
        )

    def step(self, action):
        self.do_simulation(action, self.frame_skip)
        ob = self._get_obs()
        x, theta = ob[0], ob[1]
        tip = np.array([x - POLE_LENGTH_M * np.sin(theta), -POLE_LENGTH_M * np.cos(theta)])
        reward = np.exp(-np.sum(np.square(tip - np.array([0.0, POLE_LENGTH_M]))) / POLE_LENGTH_M**2)
        reward -= 0.01 * np.sum(np.square(action))
        return ob, float(reward), False, False, {}

    def reset_model(self):
        qpos = self.init_qpos + self.np_random.normal(0, 0.1, np.shape(self.init_qpos))
        qvel = self.init_qvel + self.np_random.normal(0, 0.1, np.shape(self.init_qvel))
        self.set_state(qpos, qvel)
        return self._get_obs()

    def _get_obs(self):
        return np.concatenate([self.data.qpos, self.data.qvel]).ravel()


def register_all() -> None:
    if "handful/PetsCartpole-v0" in gymnasium.registry:
        return
    register(
        id="handful/PetsCartpole-v0",
        entry_point=PetsCartpoleEnv,
        max_episode_steps=200,
    )


register_all()
