"""Serve a Gymnasium environment as a handful robot: `python serve.py --env Pendulum-v1`
(`--help` for the options). Run with the venv's Python (`.venv/bin/python`, which
`models/setup.sh` gives gymnasium and mujoco); README.md beside this file says more."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from handful_gym.bridge import main  # noqa: E402

sys.exit(main())
