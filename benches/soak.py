#!/usr/bin/env python3
"""Soak: the main job in real time for a given time, with the retrainer and the viewer.

Runs `handful run --overlap` (trials back to back, models swapped in as they are
ready, the visualization saved to the run's .rrd) for about `--minutes` — or, with
`--job practice`, the reset-free practice (`handful practice`: forward and backward
phases with no reset, the retrainer, the classifier's fits and the EARL evaluator
beside the loop) for `--minutes` of practice steps — and samples
every few seconds the resident memory, open file descriptors and threads of handful and
of its simulator. At the end it reads the run's summary.json and writes, as JSON and a
table: the samples, their growth after warm-up, deadline misses and plan latency per
window of `--window-minutes`, the loop's jitter, the disk the run used per hour, and
whether anything panicked. Not a test of speed: with `--check` it fails (exit 1) only on
behaviour — a non-zero exit, a panic, descriptors or threads that keep growing, memory
that grows beyond what the experience itself explains.

    python3 benches/soak.py --minutes 60                 # the soak (JSON in runs/soak/)
    python3 benches/soak.py --minutes 60 --job practice  # an hour of reset-free practice
    python3 benches/soak.py --minutes 2 --check          # the short one
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# A real-time trial of the cart-pole: 200 steps at 25 Hz plus its reset, about 8.5 s.
TRIAL_S = 8.5
# Memory the learning job may add after warm-up in a short soak: experience (a few kB a
# trial), model versions, histograms. Leaks show up as steady growth well beyond it.
RSS_SLACK_MB = 64


def proc_sample(pid):
    """(rss_kb, threads, fds) of `pid`, or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kb = int(fields["VmRSS"].split()[0]) if "VmRSS" in fields else 0
    return rss_kb, int(fields["Threads"]), fds


def children(pid):
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def renice(pids, nice):
    """Every thread of each process in `pids` (a nice value is per thread on Linux)."""
    for pid in pids:
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                if os.getpriority(os.PRIO_PROCESS, tid) != nice:
                    os.setpriority(os.PRIO_PROCESS, tid, nice)
            except OSError:
                pass


def dir_bytes(path):
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def growth(samples, key):
    """How much `key` rose from the middle of the run to its end: the median of the last
    third minus the median of the second (after warm-up). A leak grows steadily; the
    sawtooth of the `.rrd` segments (memory freed each time a file ends) does not."""
    values = [s[key] for s in samples if s.get(key) is not None]
    if len(values) < 3:
        return 0
    third = len(values) // 3
    middle = sorted(values[third:2 * third])
    last = sorted(values[2 * third:])
    return last[len(last) // 2] - middle[len(middle) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--window-minutes", type=float, default=5.0)
    ap.add_argument("--sample-s", type=float, default=5.0)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "soak")
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    ap.add_argument("--binary", type=Path, default=target / "release" / "handful")
    ap.add_argument("--check", action="store_true", help="exit 1 if a behaviour check fails")
    ap.add_argument("--job", choices=["run", "practice"], default="run")
    ap.add_argument("--rt", action="store_true", help="pass --rt (SCHED_FIFO control thread)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sim-nice", type=int, default=None,
                    help="renice the simulator (the stand-in for the robot's own "
                         "microcontroller, which shares nothing with the host) once it runs")
    args = ap.parse_args()
    if not args.binary.exists():
        sys.exit(f"{args.binary} not found: build with `cargo build --release` first")
    suffix = "" if args.job == "run" else f"-{args.job}"
    run_dir = args.out / f"soak{suffix}-{int(args.minutes)}min"
    if args.job == "run":
        trials = max(2, int(args.minutes * 60 / TRIAL_S))
        cmd = [str(args.binary), "run", "--overlap", "--trials", str(trials),
               "--expert-episodes", "1"]
    else:
        # 25 Hz practice steps; an evaluation every 10 minutes of them.
        steps = max(500, int(args.minutes * 60 * 25))
        cmd = [str(args.binary), "practice", "--practice-steps", str(steps),
               "--expert-episodes", "3", "--eval-every", str(min(15000, max(250, steps // 2))),
               "--eval-episodes", "3"]
    cmd += ["--seed", str(args.seed), "--out", str(run_dir), "--name", run_dir.name]
    if args.rt:
        cmd.append("--rt")
    args.out.mkdir(parents=True, exist_ok=True)
    log = (args.out / f"{run_dir.name}.log").open("w")
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    samples = []
    while proc.poll() is None:
        t = time.monotonic() - started
        row = {"t_s": round(t, 1)}
        main_sample = proc_sample(proc.pid)
        if main_sample:
            row["rss_mb"] = round(main_sample[0] / 1024, 1)
            row["threads"], row["fds"] = main_sample[1], main_sample[2]
        sims = [s for s in (proc_sample(c) for c in children(proc.pid)) if s]
        if sims:
            row["sim_rss_mb"] = round(sims[0][0] / 1024, 1)
            row["sim_threads"], row["sim_fds"] = sims[0][1], sims[0][2]
        samples.append(row)
        # Wait for the next sample; the simulator is reniced as soon as it appears.
        waited = 0.0
        while waited < args.sample_s and proc.poll() is None:
            if args.sim_nice is not None:
                renice(children(proc.pid), args.sim_nice)
            time.sleep(0.2)
            waited += 0.2
    wall_s = time.monotonic() - started
    log.close()
    output = (args.out / f"{run_dir.name}.log").read_text()
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None

    windows = []
    if summary:
        period_s = 0.04
        width = args.window_minutes * 60
        if args.job == "practice" and summary.get("practice"):
            rows = summary["practice"]["phases"]
        else:
            rows = [t for t in summary["trials"] if t["policy"] == "mpc"]
        for t in rows:
            w = int(t["first_tick"] * period_s // width)
            while len(windows) <= w:
                windows.append({"from_min": len(windows) * args.window_minutes, "trials": 0,
                                "deadline_misses": 0, "plan_p99_us_max": 0, "ticks": 0})
            win = windows[w]
            win["trials"] += 1
            win["deadline_misses"] += t["deadline_misses"]
            win["plan_p99_us_max"] = max(win["plan_p99_us_max"], t["plan_p99_us"])
            win["ticks"] += t["last_tick"] - t["first_tick"] + 1
    disk = dir_bytes(run_dir) if run_dir.exists() else 0
    checks = {
        "exit_code": proc.returncode,
        "panicked": "panicked" in output,
        "fd_growth": growth(samples, "fds"),
        "thread_growth": growth(samples, "threads"),
        "rss_growth_mb": round(growth(samples, "rss_mb"), 1),
        "sim_rss_growth_mb": round(growth(samples, "sim_rss_mb"), 1),
    }
    failures = []
    if checks["exit_code"] != 0:
        failures.append(f"handful exited {checks['exit_code']}")
    if checks["panicked"]:
        failures.append("something panicked")
    if checks["fd_growth"] > 4:
        failures.append(f"file descriptors grew by {checks['fd_growth']} after warm-up")
    if checks["thread_growth"] > 2:
        failures.append(f"threads grew by {checks['thread_growth']} after warm-up")
    if checks["rss_growth_mb"] > RSS_SLACK_MB * max(1.0, args.minutes / 10):
        failures.append(f"memory grew by {checks['rss_growth_mb']} MB after warm-up")
    if checks["sim_rss_growth_mb"] > 8:
        failures.append(f"the simulator's memory grew by {checks['sim_rss_growth_mb']} MB")
    report = {
        "command": cmd, "minutes": args.minutes, "wall_s": round(wall_s, 1),
        "sim_nice": args.sim_nice,
        "machine": {"cpus": os.cpu_count(), "uname": " ".join(os.uname())},
        "checks": checks, "failures": failures,
        "disk_mb": round(disk / 2**20, 1),
        "disk_mb_per_hour": round(disk / 2**20 / max(wall_s / 3600, 1e-9), 1),
        "jitter": summary["loop_report"]["timing"]["jitter"] if summary and summary.get("loop_report") else None,
        "faults": summary.get("faults") if summary else None,
        "retrains": summary.get("retrains") if summary else None,
        "practice": ({k: v for k, v in summary["practice"].items() if k != "phases"}
                     if summary and summary.get("practice") else None),
        "windows": windows, "samples": samples,
    }
    out_json = args.out / f"{run_dir.name}.json"
    out_json.write_text(json.dumps(report, indent=1))
    print(f"soak {args.minutes:g} min ({wall_s:.0f} s), exit {proc.returncode}, "
          f"{len(samples)} samples; JSON: {out_json}")
    print(f"  after warm-up: rss +{checks['rss_growth_mb']} MB, fds +{checks['fd_growth']}, "
          f"threads +{checks['thread_growth']}; simulator rss +{checks['sim_rss_growth_mb']} MB")
    print(f"  disk {report['disk_mb']} MB ({report['disk_mb_per_hour']} MB/h)")
    for w in windows:
        print(f"  {w['from_min']:>5g} min: {w['trials']} {'phases' if args.job == 'practice' else 'trials'}, {w['deadline_misses']} deadline "
              f"misses in {w['ticks']} ticks, plan p99 max {w['plan_p99_us_max'] / 1000:.1f} ms / 40 ms")
    for f in failures:
        print(f"  FAILED: {f}")
    if args.check and failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
