#!/usr/bin/env python3
"""Build, optionally train, and export a handful dynamics ensemble with PyTorch.

The executable form of models/README.md's PyTorch recipe: an ensemble of E members
predicting the mean and log-variance of the change of state, written with
torch.onnx.export so that handful's loader (`handful::model::Ensemble::load`) accepts
it. Two forms:

  --form plain   the network sees [state, action] (standardised);
  --form angle   the network sees [sin(state[I]), cos(state[I]), state[J], action]
                 (standardised), I = --angle-state-indices, J the other channels
                 (PETS's input preprocessing for the cart-pole; what handful's own
                 trainer writes, and the form that learns the cart-pole swing-up).

With --dataset DIR (a LeRobot v3 dataset handful recorded, repeatable) the ensemble is
trained on its transitions, paired exactly as handful's learner pairs them
(src/sysid/experience.rs, `transitions_from_frames`): the state at frame k, the
command the firmware applied over the step (found by `last_command_seq`), the state at
frame k+1; a step whose frames are not one control period apart (within half a period)
ends the chain, and a step whose applied command is unknown is dropped. Without
--dataset the weights stay at their seeded initialisation (the input statistics are
then 0 and 1): a valid file, for tests.

Torch is not part of models/setup.sh (it is heavy). In an opt-in venv:

    python3 -m venv /work/torch-venv
    /work/torch-venv/bin/pip install torch onnx onnxruntime==1.31.1 numpy pyarrow onnxscript
    /work/torch-venv/bin/python models/pytorch_ensemble.py --calib calib/cartpole-sim.toml \\
        --form angle --dataset runs/NAME/expert --dataset runs/NAME/learner --out angle.onnx
"""

import argparse
import glob
import hashlib
import json
import os
import sys
import time
import tomllib

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

# The angle channels of the shipped tasks (src/sysid/mod.rs, `trainer_config_for`).
TASK_ANGLES = {"cartpole_swingup": [1], "pendulum_swingup": [0], "push_to_goal": []}
# The Rust trainer's L2 decay per layer (hidden layers, then the output layer).
WEIGHT_DECAYS = [2.5e-5, 5e-5, 7.5e-5, 1e-4]


class Ensemble(nn.Module):
    """E members, each an MLP, evaluated together: every layer is one batched matmul
    [E, N, D] x [E, D, H], the graph shape the contract asks for."""

    def __init__(self, E, S, A, hidden=(64, 64, 64), angles=()):
        super().__init__()
        self.S = S
        self.angles = list(angles)
        rest = [j for j in range(S) if j not in self.angles]
        D = S + len(self.angles) + A
        sizes = [D, *hidden, 2 * S]
        self.W = nn.ParameterList(
            nn.Parameter(torch.randn(E, i, o) / (2 * i**0.5)) for i, o in zip(sizes, sizes[1:])
        )
        self.b = nn.ParameterList(nn.Parameter(torch.zeros(E, 1, o)) for o in sizes[1:])
        # The contract's four named initializers: these attribute names become their names.
        self.register_buffer("input_mean", torch.zeros(D))
        self.register_buffer("input_std", torch.ones(D))
        self.max_logvar = nn.Parameter(torch.full((S,), 0.5))  # trained, as in PETS
        self.min_logvar = nn.Parameter(torch.full((S,), -10.0))
        self.register_buffer("angle_indices", torch.tensor(self.angles, dtype=torch.int64))
        self.register_buffer("other_state_indices", torch.tensor(rest, dtype=torch.int64))

    def features(self, state, action):
        """Raw network inputs [E, N, D], before standardisation."""
        if not self.angles:
            return torch.cat([state, action], dim=2)
        a = state.index_select(2, self.angle_indices)
        parts = [torch.sin(a), torch.cos(a)]
        if self.other_state_indices.numel():
            parts.append(state.index_select(2, self.other_state_indices))
        return torch.cat([*parts, action], dim=2)

    def forward(self, state, action):  # [E, N, S], [E, N, A] -> mean, logvar [E, N, S]
        h = (self.features(state, action) - self.input_mean) / self.input_std
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            h = torch.baddbmm(b, h, W)  # b + h @ W, batched over E
            if i < len(self.W) - 1:
                h = h * torch.sigmoid(h)  # swish
        mean, lv = h[..., : self.S], h[..., self.S :]
        lv = self.max_logvar - F.softplus(self.max_logvar - lv)
        lv = self.min_logvar + F.softplus(lv - self.min_logvar)
        return mean, lv


# ---- handful datasets -> transitions (as src/sysid/experience.rs pairs them) ----


def read_dataset(root):
    """Every frame of a handful/LeRobot v3 dataset, grouped by episode, and whether it
    was recorded in lockstep."""
    import pyarrow.parquet as pq

    with open(os.path.join(root, "meta", "info.json")) as f:
        info = json.load(f)
    handful = info.get("handful", {})
    config = handful.get("config", handful.get("provenance", {}).get("config", {}))
    lockstep = bool(config.get("lockstep", False))  # default: real time, as handful reads it
    files = sorted(glob.glob(os.path.join(root, "data", "**", "*.parquet"), recursive=True))
    if not files:
        sys.exit(f"{root}: no data/**/*.parquet: not a LeRobot v3 dataset")
    episodes = {}
    for path in files:
        table = pq.read_table(path).to_pydict()
        n = len(table["episode_index"])
        column = lambda key, default: table.get(key, [default] * n)  # noqa: E731
        rows = zip(
            table["episode_index"],
            table["frame_index"],
            table["observation.state"],
            table["action"],
            column("observation.firmware_time_us", 0),
            column("action.command_seq", -1),
            column("observation.applied_command_seq", -1),
        )
        for ep, k, state, action, fw, seq, applied in rows:
            action = action if isinstance(action, list) else [action]  # lerobot's scalar form
            episodes.setdefault(ep, []).append((k, state, action, fw, seq, applied))
    return [sorted(frames) for _, frames in sorted(episodes.items())], lockstep


def pair(frames, lockstep, period_us):
    """(s, a, s') of one episode: `transitions_from_frames` in src/sysid/experience.rs."""
    has_seqs = any(f[4] >= 0 or f[5] >= 0 for f in frames)
    sent = {f[4]: i for i, f in enumerate(frames) if f[4] >= 0}
    out = []
    for t in range(len(frames) - 1):
        now, nxt = frames[t], frames[t + 1]
        if period_us > 0 and abs((nxt[3] - now[3]) - period_us) > period_us // 2:
            continue  # a gap: the chain ends here
        if has_seqs:
            seq = nxt[5] if lockstep else now[5]
            j = sent.get(seq) if seq >= 0 else None
            if j is None or (j > t if lockstep else j >= t):
                continue  # the applied command is not known: dropped, never guessed
            action = frames[j][2]
        else:
            j = t - (0 if lockstep else 1)
            if j < 0:
                continue
            action = frames[j][2]
        row = (now[1], action, nxt[1])
        if all(np.isfinite(v).all() for v in map(np.asarray, row)):
            out.append(row)
    return out


def transitions(roots, period_us):
    rows = []
    for root in roots:
        episodes, lockstep = read_dataset(root)
        for frames in episodes:
            rows += pair(frames, lockstep, period_us)
    if not rows:
        sys.exit("no transitions in the datasets given")
    s, a, n = (np.asarray([r[i] for r in rows], dtype=np.float32) for i in range(3))
    return s, a, n


def training_data_sha256(s, a, n):
    """As src/train/data.rs `Transitions::sha256`: N, S, A as little-endian u64, then
    states, actions, next states as row-major little-endian f32."""
    h = hashlib.sha256()
    for dim in (s.shape[0], s.shape[1], a.shape[1]):
        h.update(int(dim).to_bytes(8, "little"))
    for x in (s, a, n):
        h.update(np.ascontiguousarray(x, dtype="<f4").tobytes())
    return h.hexdigest()


# ---- training (PETS: bootstrapped members, Gaussian NLL, bound penalty) ----


def train(model, s, a, n, steps, batch, lr, seed, holdout_fraction=0.1):
    g = torch.Generator().manual_seed(seed)
    S, E = s.shape[1], len(model.W[0])
    states, actions, targets = map(torch.from_numpy, (s, a, n - s))
    perm = torch.randperm(len(s), generator=g)
    n_hold = int(len(s) * holdout_fraction)
    hold, fit = perm[:n_hold], perm[n_hold:]
    with torch.no_grad():
        x = model.features(states[fit][None], actions[fit][None])[0]
        std = x.std(0, unbiased=False)
        model.input_mean.copy_(x.mean(0))
        model.input_std.copy_(torch.where(std < 1e-6, torch.ones_like(std), std))
    decays = (WEIGHT_DECAYS + [WEIGHT_DECAYS[-1]] * len(model.W))[: len(model.W)]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    boot = fit[torch.randint(len(fit), (E, len(fit)), generator=g)]  # one bootstrap per member
    for step in range(steps):
        idx = boot[:, torch.randint(len(fit), (batch,), generator=g)]  # [E, B]
        mean, lv = model(states[idx], actions[idx])
        nll = (((mean - targets[idx]) ** 2) * torch.exp(-lv) + lv).mean((1, 2)).sum()
        loss = nll + 0.01 * (model.max_logvar.sum() - model.min_logvar.sum())
        loss = loss + sum(d * 0.5 * (W**2).sum() for d, W in zip(decays, model.W))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 1000 == 0 or step == steps - 1:
            print(f"step {step}: loss {loss.item():.4f}", file=sys.stderr)
    model.eval()
    with torch.no_grad():
        rows = hold if n_hold else fit
        E_rows = lambda t: t[rows][None].expand(E, *t[rows].shape)  # noqa: E731
        mean, lv = model(E_rows(states), E_rows(actions))
        err = (mean - E_rows(targets)) ** 2
        mse = err.mean((1, 2))
        nll = 0.5 * (err * torch.exp(-lv) + lv + np.log(2 * np.pi)).mean((1, 2))
    print(f"holdout MSE per member {[round(v, 5) for v in mse.tolist()]}, NLL {[round(v, 3) for v in nll.tolist()]}", file=sys.stderr)
    return mse.tolist()


# ---- export ----


def export(model, out, meta, E, S, A):
    example = (torch.zeros(E, 7, S), torch.zeros(E, 7, A))
    N = torch.export.Dim("N", min=1)
    torch.onnx.export(
        model,
        example,
        out,
        input_names=["state", "action"],
        output_names=["mean", "logvar"],
        dynamic_shapes={"state": {1: N}, "action": {1: N}},
        opset_version=18,
        dynamo=True,
        external_data=False,  # the weights inside the file: handful refuses external data
        verbose=False,
    )
    m = onnx.load(out)
    onnx.helper.set_model_props(m, meta)
    onnx.save(m, out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--calib", required=True, help="the robot's calibration TOML: names, period, task")
    p.add_argument("--form", choices=["plain", "angle"], default="angle")
    p.add_argument("--angle-state-indices", help="comma-separated; default: the task's (cart-pole 1, pendulum 0)")
    p.add_argument("--ensemble-size", type=int, default=5)
    p.add_argument("--hidden", default="64,64,64", help="the shipped real-time shape: 3 x 64")
    p.add_argument("--dataset", action="append", default=[], help="a handful dataset to train on (repeatable)")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--elites", type=int, help="members named in `elites` (best holdout MSE); default all")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--created-unix", type=int, help="default: now")
    p.add_argument("--producer", default=f"handful models/pytorch_ensemble.py (torch {torch.__version__})")
    p.add_argument("--save-check", help="also write probe rows and torch's outputs for them as JSON (the Rust test's known answer)")
    args = p.parse_args(argv)

    with open(args.calib, "rb") as f:
        calib = tomllib.load(f)
    states = [c["name"] for c in calib["state"]]
    actions = [c["name"] for c in calib["action"]]
    period_us = round(1e6 / calib["timing"]["control_rate_hz"])
    task = calib["robot"]["task"]
    S, A, E = len(states), len(actions), args.ensemble_size
    if args.form == "plain":
        angles = []
    elif args.angle_state_indices is not None:
        angles = [int(i) for i in args.angle_state_indices.split(",") if i]
    else:
        angles = TASK_ANGLES.get(task, [])
    hidden = [int(h) for h in args.hidden.split(",") if h]

    torch.manual_seed(args.seed)
    model = Ensemble(E, S, A, hidden, angles)
    sha, elites = "none", list(range(E))
    if args.dataset:
        s, a, n = transitions(args.dataset, period_us)
        print(f"{len(s)} transitions from {len(args.dataset)} datasets", file=sys.stderr)
        sha = training_data_sha256(s, a, n)
        scores = train(model, s, a, n, args.steps, args.batch_size, args.learning_rate, args.seed)
        elites = sorted(sorted(range(E), key=lambda m: scores[m])[: args.elites or E])
    model.eval()

    meta = {
        "handful.contract": "1",
        "state_names": ",".join(states),
        "action_names": ",".join(actions),
        "state_dim": str(S),
        "action_dim": str(A),
        "ensemble_size": str(E),
        "control_period_us": str(period_us),
        "producer": args.producer,
        "created_unix": str(args.created_unix if args.created_unix is not None else int(time.time())),
        "training_data_sha256": sha,
        "elites": ",".join(map(str, elites)),
        "angle_state_indices": ",".join(map(str, angles)),
    }
    with torch.no_grad():
        export(model, args.out, meta, E, S, A)

    # The same rows through PyTorch and through ONNX Runtime must agree.
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    xs = rng.uniform(-1, 1, (E, 9, S)).astype(np.float32)
    xa = rng.uniform(-1, 1, (E, 9, A)).astype(np.float32)
    with torch.no_grad():
        want = [t.numpy() for t in model(torch.from_numpy(xs), torch.from_numpy(xa))]
    got = ort.InferenceSession(args.out).run(["mean", "logvar"], {"state": xs, "action": xa})
    for name, w, g in zip(["mean", "logvar"], want, got):
        if not np.allclose(w, g, rtol=1e-4, atol=1e-5):
            sys.exit(f"{args.out}: onnxruntime's {name} differs from torch's by {np.abs(w - g).max()}")
    if args.save_check:
        with open(args.save_check, "w") as f:
            rows = {"states": xs, "actions": xa, "mean": want[0], "logvar": want[1]}
            json.dump({k: v.tolist() for k, v in rows.items()}, f)
            f.write("\n")
    size = os.path.getsize(args.out)
    with open(args.out, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    print(f"wrote {args.out}: form={args.form} E={E} S={S} A={A} hidden={hidden} angles={angles} {size} bytes sha256={digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
