#!/usr/bin/env python3
"""Reset-free practice benchmark: `handful practice` with each reset on one step budget.

Runs the release binary once per (task, reset, seed), sequentially, in lockstep, and
reads each run's summary.json. The four resets, as the MEDAL paper compares them:

    oracle  episodic PETS: the simulator resets before every forward phase (upper bound)
    none    forward only, reset-free: each forward phase starts where the last ended
    hand    forward-backward, the backward cost a hand-written distance to the rest state
    medal   forward-backward, the backward cost log(1 - C(s)) of the learned classifier

Every run evaluates the model in use every --eval-every steps on --eval-episodes
episodes from the task's initial distribution on a separate in-process simulator (EARL's
deployed success; the same seeded starts for every run), beside the forward successes on
the training stream (continuing). Figures per run: the last deployed success rate, the
mean over the run's evaluations, continuing successes, interventions, deadline misses.
Per reset, the worst seed and the mean; MEDAL's last deployed success as a share of the
oracle's. Not a test: it measures and asserts nothing.

    python3 benches/practice.py                                 # cart-pole, seeds 0-2
    python3 benches/practice.py --tasks cartpole,pusher --steps 6000 --seeds 0-2
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CALIB = {
    "cartpole": "calib/cartpole-sim.toml",
    "pusher": "calib/pusher-sim.toml",
}
RESETS = ["oracle", "none", "hand", "medal"]


def seeds(text):
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def run(binary, out, task, reset, seed, args):
    cmd = [
        str(binary), "practice", "--lockstep", "--no-viz",
        "--calib", CALIB[task], "--reset", reset, "--seed", str(seed),
        "--expert-episodes", str(args.demos), "--practice-steps", str(args.steps),
        "--eval-every", str(args.eval_every), "--eval-episodes", str(args.eval_episodes),
        "--out", str(out),
    ]
    started = time.time()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.time() - started
    summary_path = out / "summary.json"
    if not summary_path.exists():
        return {"task": task, "reset": reset, "seed": seed, "failed": done.stderr[-2000:],
                "exit": done.returncode, "wall_s": wall}
    summary = json.loads(summary_path.read_text())
    practice = summary.get("practice") or {}
    evals = practice.get("evaluations", [])
    rates = [e["success_rate"] for e in evals]
    phases = practice.get("phases", [])
    return {
        "task": task, "reset": reset, "seed": seed, "exit": done.returncode, "wall_s": wall,
        "steps": practice.get("steps"),
        "last_deployed": rates[-1] if rates else None,
        "mean_deployed": sum(rates) / len(rates) if rates else None,
        "deployed": [(e["at_step"], e["success_rate"], e["mean_return"]) for e in evals],
        "continuing": practice.get("forward_successes"),
        "forward_phases": practice.get("forward_phases"),
        "backward_reached": practice.get("backward_reached"),
        "backward_at_rest": practice.get("backward_at_rest"),
        "interventions": practice.get("interventions"),
        "deadline_misses": sum(p.get("deadline_misses", 0) for p in phases),
        "stopped": summary.get("stopped"),
        "summary": summary,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", default="cartpole")
    p.add_argument("--resets", default=",".join(RESETS))
    p.add_argument("--seeds", default="0-2")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--demos", type=int, default=3)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--out", default="runs/bench-practice")
    p.add_argument("--binary", default=str(REPO / "target/release/handful"))
    args = p.parse_args()
    binary = Path(args.binary)
    if not binary.exists():
        sys.exit("build first: cargo build --release")
    out_root = REPO / args.out
    out_root.mkdir(parents=True, exist_ok=True)
    rows = []
    for task in args.tasks.split(","):
        for reset in args.resets.split(","):
            for seed in seeds(args.seeds):
                row = run(binary, out_root / f"{task}-{reset}-{seed}", task, reset, seed, args)
                rows.append(row)
                print(
                    f"{task:9} {reset:7} seed {seed}: deployed last {fmt(row.get('last_deployed'))}"
                    f" mean {fmt(row.get('mean_deployed'))}, continuing {row.get('continuing')}"
                    f" of {row.get('forward_phases')}, interventions {row.get('interventions')},"
                    f" misses {row.get('deadline_misses')}, {row['wall_s']:.0f} s"
                    + (f"  FAILED: {row['failed'][-300:]}" if "failed" in row else ""),
                    flush=True,
                )
    print()
    table = {}
    for task in args.tasks.split(","):
        for reset in args.resets.split(","):
            mine = [r for r in rows if r["task"] == task and r["reset"] == reset
                    and r.get("last_deployed") is not None]
            if not mine:
                continue
            last = [r["last_deployed"] for r in mine]
            table[(task, reset)] = sum(last) / len(last)
            print(f"{task:9} {reset:7}: last deployed success mean {sum(last) / len(last):.2f},"
                  f" worst seed {min(last):.2f}; continuing mean"
                  f" {sum(r['continuing'] for r in mine) / len(mine):.1f};"
                  f" interventions {sum(r['interventions'] for r in mine)}")
        if (task, "medal") in table and table.get((task, "oracle")):
            print(f"{task:9} medal / oracle deployed: {table[(task, 'medal')] / table[(task, 'oracle')]:.2f}")
    (out_root / "results.json").write_text(json.dumps(
        {"args": vars(args), "runs": rows}, indent=1, default=str))
    print(f"\nJSON: {out_root / 'results.json'}")


def fmt(v):
    return "-" if v is None else f"{v:.2f}"


if __name__ == "__main__":
    main()
