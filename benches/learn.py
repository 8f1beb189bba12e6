#!/usr/bin/env python3
"""Learning benchmark: `handful run` over seeds, modes, tasks and demonstration counts.

Runs the release binary once per configuration (sequentially: real-time runs need the
machine to themselves), reads each run's summary.json, prints a table and writes every
trial's return and timing figures as JSON. Not a test: it asserts nothing, it measures.

    python3 benches/learn.py                     # everything below (~3 h on 2 cores)
    python3 benches/learn.py --tasks cartpole --modes lockstep --demos 3 --seeds 0-4
    python3 benches/learn.py --trainer T.toml --label elites   # a variant, same grid
    python3 benches/learn.py --tasks gym-cartpole,gym-pendulum --modes lockstep  # Gymnasium

Figures per run: return per trial, the first MPC trial at the level, whether it holds
(every later trial at the hold level), deadline misses and the plan latency p99 next to
the period. The JSON keeps the whole summary.json of each run so nothing has to be
rerun to look at something else.

The oracle: for every (task, mode, seed) the same planner with the true dynamics
(`--controller mpc-true`) drives as many episodes as the learning run has, from the same
start states (episode i of a run with seed S starts from the same reset seed, whoever
drives). Each trial's regret is the oracle's return from its start minus the learner's.

The level. Cart-pole: 170 over 200 steps (the PETS benchmark's), holding = every later
trial at or above 160; every start is near hanging still, so an absolute level measures
the controller. Pendulum-v1 starts anywhere on the circle, and its return mostly
measures the start: the oracle itself scores from -1 (starting upright) through -120
(one swing) to -360 (two or three swings from hanging), so no absolute level separates
a good controller from a lucky start. A pendulum trial is at the level when its regret
is at most 50 (under half the ~110 an extra swing costs: it swung up as the oracle did),
and holding = every later trial at the level too.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# The Python stand-in firmware serving a Gymnasium environment (firmware-bridge/gym).
GYM = ".venv/bin/python firmware-bridge/gym/serve.py --env "

# Task -> (calibration, level, hold level, control period in µs, whether the levels are
# regrets against the oracle rather than returns, the simulator command: None for
# `handful sim`). See the module comment.
TASKS = {
    "cartpole": ("calib/cartpole-sim.toml", 170.0, 160.0, 40_000, False, None),
    "pendulum": ("calib/pendulum-sim.toml", 50.0, 50.0, 50_000, True, None),
    # A plant nobody tuned for: a pole 50 % heavier and 20 % longer, same task and level.
    "cartpole-heavy": ("calib/cartpole-heavy-sim.toml", 170.0, 160.0, 40_000, False, None),
    # The same tasks on Gymnasium behind the bridge: the PETS cart-pole's MuJoCo XML, and
    # Pendulum-v1 itself; the oracle (the Rust true dynamics planning) runs through the
    # bridge too, from the bridge's starts.
    "gym-cartpole": ("calib/cartpole-sim.toml", 170.0, 160.0, 40_000, False,
                     GYM + "handful/PetsCartpole-v0"),
    "gym-pendulum": ("calib/pendulum-sim.toml", 50.0, 50.0, 50_000, True, GYM + "Pendulum-v1"),
    # Gymnasium InvertedPendulum-v5 (its calibration names the bridge): 200 steps of
    # reward at most 1 (upright; the expert scores 199.98), the level 190, hold 180. The
    # oracle plans with the Rust cart-pole (no hinge stop): 146-192, a poor reference.
    "gym-inverted-pendulum": ("calib/inverted-pendulum-gym.toml", 190.0, 180.0, 40_000, False,
                              None),
}


def seeds(text):
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def oracle(binary, out_root, task, mode, seed, episodes):
    """Returns of the true-dynamics planner per episode index (reused if already run)."""
    calib, sim_cmd = TASKS[task][0], TASKS[task][5]
    name = f"oracle-{task}-{mode}-seed{seed}"
    out = out_root / name
    summary_path = out / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        if len(summary["episodes"]) >= episodes:
            return [e["episode_return"] for e in summary["episodes"]]
    cmd = [
        str(binary), "run", "--calib", str(REPO / calib), "--seed", str(seed),
        "--controller", "mpc-true", "--episodes", str(episodes), "--no-viz",
        "--out", str(out), "--name", name,
    ]
    if mode == "lockstep":
        cmd.append("--lockstep")
    if sim_cmd:
        cmd += ["--sim-cmd", sim_cmd]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0 or not summary_path.exists():
        sys.exit(f"the oracle run failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    summary = json.loads(summary_path.read_text())
    return [e["episode_return"] for e in summary["episodes"]]


def run_one(binary, out_root, task, mode, demos, seed, trials, trainer, extra, oracle_returns):
    calib, threshold, hold, period_us, by_regret, sim_cmd = TASKS[task]
    name = f"{task}-{mode}-demos{demos}-seed{seed}"
    out = out_root / name
    cmd = [
        str(binary), "run", "--calib", str(REPO / calib), "--seed", str(seed),
        "--trials", str(trials), "--expert-episodes", str(demos), "--no-viz",
        "--out", str(out), "--name", name,
    ]
    if mode == "lockstep":
        cmd.append("--lockstep")
    if trainer:
        cmd += ["--trainer", str(trainer)]
    if sim_cmd:
        cmd += ["--sim-cmd", sim_cmd]
    cmd += extra
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall_s = time.monotonic() - started
    result = {
        "task": task, "mode": mode, "demos": demos, "seed": seed, "command": cmd,
        "exit_code": proc.returncode, "wall_s": round(wall_s, 1),
        "threshold": threshold, "hold_level": hold, "period_us": period_us,
    }
    summary_path = out / "summary.json"
    if proc.returncode != 0 or not summary_path.exists():
        result["error"] = proc.stderr[-2000:]
        return result
    summary = json.loads(summary_path.read_text())
    # Every row of `trials` is one episode, in order: its index is the episode index.
    for index, t in enumerate(summary["trials"]):
        t["regret"] = (oracle_returns[index] - t["episode_return"]
                       if oracle_returns and index < len(oracle_returns) else None)
    mpc = [t for t in summary["trials"] if t["policy"] == "mpc"]
    returns = [t["episode_return"] for t in mpc]
    if by_regret:
        at = lambda t, level: t["regret"] is not None and t["regret"] <= level  # noqa: E731
    else:
        at = lambda t, level: t["episode_return"] >= level  # noqa: E731
    first = next((t["trial"] for t in mpc if at(t, threshold)), None)
    holds = None
    if first is not None:
        holds = all(at(t, hold) for t in mpc if t["trial"] > first)
    result.update({
        "returns": [round(r, 2) for r in returns],
        "oracle_returns": [round(r, 2) for r in oracle_returns[:len(summary["trials"])]]
        if oracle_returns else None,
        "regrets": [None if t["regret"] is None else round(t["regret"], 2) for t in mpc],
        "first_at_threshold": first,
        "holds": holds,
        "deadline_misses": sum(t["deadline_misses"] for t in mpc),
        "plan_p99_us_max": max((t["plan_p99_us"] for t in mpc), default=0),
        "models_published": len(summary.get("models", [])),
        "train_ms": [m["train_ms"] for m in summary.get("models", [])],
        "retrains": summary.get("retrains"),
        "pairing": summary.get("pairing"),
        "summary": summary,
    })
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="cartpole,pendulum")
    ap.add_argument("--modes", default="lockstep,realtime")
    ap.add_argument("--demos", default="3,0")
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--trainer", type=Path, help="trainer TOML for every run (a variant)")
    ap.add_argument("--label", default="default", help="name of this variant in the JSON")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "bench-learn")
    ap.add_argument("--json", type=Path, help="default: <out>/bench-learn-<label>.json")
    ap.add_argument("--binary", type=Path, default=REPO / "target" / "release" / "handful")
    ap.add_argument("--no-oracle", action="store_true",
                    help="skip the true-dynamics runs (no regrets; pendulum levels unknown)")
    ap.add_argument("extra", nargs="*", help="more `handful run` arguments, after --")
    args = ap.parse_args()
    if not args.binary.exists():
        sys.exit(f"{args.binary} not found: build with `cargo build --release` first")
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    grid = [
        (task, mode, int(demos), seed)
        for task in args.tasks.split(",")
        for mode in args.modes.split(",")
        for demos in args.demos.split(",")
        for seed in seeds(args.seeds)
    ]
    print(f"{'task':<9} {'mode':<9} {'demos':>5} {'seed':>4}  {'first':>5} {'holds':>5} "
          f"{'misses':>6} {'p99 ms':>7}/{'period':<6}  returns per MPC trial")
    for task, mode, demos, seed in grid:
        # Demonstrations (or the random trial), then the trials.
        oracle_returns = None if args.no_oracle else oracle(
            args.binary, args.out / "oracle", task, mode, seed, max(demos, 1) + args.trials)
        r = run_one(args.binary, args.out / args.label, task, mode, demos, seed,
                    args.trials, args.trainer, args.extra, oracle_returns)
        results.append(r)
        if "error" in r:
            print(f"{task:<9} {mode:<9} {demos:>5} {seed:>4}  FAILED (exit {r['exit_code']}): "
                  f"{r['error'].strip().splitlines()[-1] if r['error'].strip() else ''}")
        else:
            print(f"{task:<9} {mode:<9} {demos:>5} {seed:>4}  {str(r['first_at_threshold']):>5} "
                  f"{str(r['holds']):>5} {r['deadline_misses']:>6} "
                  f"{r['plan_p99_us_max'] / 1000:>7.1f}/{r['period_us'] / 1000:<6.0f}  "
                  + " ".join(f"{x:.0f}" for x in r["returns"])
                  + ("" if not r["oracle_returns"] else "  regret "
                     + " ".join("-" if x is None else f"{x:.0f}" for x in r["regrets"])))
        sys.stdout.flush()

    # Per (task, mode, demos): the worst seed's first trial at threshold and whether all hold.
    groups = {}
    for r in results:
        groups.setdefault((r["task"], r["mode"], r["demos"]), []).append(r)
    aggregate = []
    print("\nworst seed per configuration")
    for (task, mode, demos), rs in groups.items():
        firsts = [r.get("first_at_threshold") for r in rs]
        worst = None if any(f is None for f in firsts) else max(firsts)
        row = {
            "task": task, "mode": mode, "demos": demos,
            "seeds": [r["seed"] for r in rs],
            "first_at_threshold": firsts,
            "worst_first": worst,
            "all_hold": all(r.get("holds") for r in rs),
            "deadline_misses": sum(r.get("deadline_misses", 0) for r in rs),
            "failed_runs": sum(1 for r in rs if "error" in r),
        }
        aggregate.append(row)
        print(f"  {task:<9} {mode:<9} demos {demos}: first trial at threshold per seed "
              f"{firsts}, worst {worst}, all hold {row['all_hold']}, "
              f"misses {row['deadline_misses']}, failed {row['failed_runs']}")
    out_json = args.json or (args.out / f"bench-learn-{args.label}.json")
    out_json.write_text(json.dumps({
        "label": args.label, "trainer": str(args.trainer) if args.trainer else None,
        "machine": {"cpus": os.cpu_count(), "uname": " ".join(os.uname())},
        "aggregate": aggregate, "runs": results,
    }, indent=1))
    print(f"\nwrote {out_json}")


if __name__ == "__main__":
    main()
