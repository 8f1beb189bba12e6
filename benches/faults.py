#!/usr/bin/env python3
"""Fault matrix: every fault a robot meets, injected through the simulator over the pty,
and what the whole system did about it. Writes benches/faults.md (the table the docs
link) and runs/faults/faults.json (every figure, and each run's summary).

    python3 benches/faults.py                 # every row, ~6 min on 2 cores
    python3 benches/faults.py --only stall,unplug-replug

Each run row is `handful run --controller expert` in real time (the robot's condition),
3 episodes of 100 steps, seed 0, with `--ticks` (the host's view of every tick) and the
simulator's `--trace` (the robot's view, firmware clock). Per row:

- host ticks to safe: from the first tick whose input was bad (a state older than the
  calibrated staleness bound, or non-finite) to the first tick that sent the safe
  command with a fault raised (goal 0: the same tick), and whether every tick with a
  fault raised sent the safe command;
- robot ticks to safe: from the injected fault's onset (trace `inject`) to the first
  firmware tick that actuated the safe value or was not armed (a host-side fault is
  answered by the host's safe commands; a lost host by the firmware's watchdog, whose
  timeout bounds it);
- what the user is shown: the host faults and firmware reports of the run's fault
  account, and the reason it stopped, if it did;
- episodes completed of those asked, recoveries (re-armed and went on), exit status;
- panics: any `panicked` in either process's output (goal: never).

Other rows: a model returning NaN, a truncated model, a malformed calibration (refused
before the robot moves?); kill -9 while recording (frames lost after `dataset recover`);
kill -9 of a learning run while it trains and writes models (a model file half-written?
does `--resume` go on?); SIGTERM to a run. Not a test: it asserts nothing, it measures.
"""

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PERIOD_US = 40_000
STALE_US = 100_000
EPISODES, STEPS = 3, 100
ONSET_MS = 3000

RUN_ROWS = [
    ("baseline", "no fault", []),
    ("unplug-replug", "cable pulled at 3 s, back 1 s later",
     [f"--disconnect-at-ms={ONSET_MS}", "--reconnect-after-ms=1000"]),
    ("unplug", "cable pulled at 3 s for good", [f"--disconnect-at-ms={ONSET_MS}"]),
    ("stall", "firmware stalls 1 s at 3 s", [f"--stall-at-ms={ONSET_MS}", "--stall-for-ms=1000"]),
    ("noise-1", "1 % of bytes corrupted, both ways", ["--corrupt-byte-prob=0.01"]),
    ("noise-5", "5 % of bytes corrupted", ["--corrupt-byte-prob=0.05"]),
    ("noise-10", "10 % of bytes corrupted", ["--corrupt-byte-prob=0.10"]),
    ("drop-10", "10 % of the robot's frames dropped", ["--drop-prob=0.10"]),
    ("spikes", "200 ms latency spike every 2 s from 3 s",
     [f"--latency-spike-at-ms={ONSET_MS}", "--latency-spike-ms=200", "--latency-spike-every-ms=2000"]),
    ("heartbeat-stop", "firmware stops heartbeating at 3 s", [f"--heartbeat-stop-at-ms={ONSET_MS}"]),
    ("mute", "robot's transmit line dead 1 s at 3 s", [f"--mute-at-ms={ONSET_MS}", "--mute-for-ms=1000"]),
    ("sensor-nan", "sensors read NaN for 200 ms at 3 s",
     [f"--sensor-fail-at-ms={ONSET_MS}", "--sensor-fail-for-ms=200"]),
]


def handful(binary, args, timeout=300, **kw):
    return subprocess.run([str(binary), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, **kw)


def read_csv(path):
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def floats(text):
    return [float(v) for v in text.split("/")] if text else []


def host_view(ticks):
    """Ticks from the first bad input to the first safe command with a fault raised."""
    def bad_input(t):
        return int(t["state_age_us"]) > STALE_US or any(
            v != v or abs(v) == float("inf") for v in floats(t["state"]))

    # The first bad input the host met while it was driving (the tick that sees it may
    # already show the Fault mode it led to).
    bad = next((i for i in range(1, len(ticks))
                if ticks[i - 1]["mode"] == "Autonomous" and bad_input(ticks[i])), None)
    faulted = [t for t in ticks if t["fault"]]
    all_safe = all(all(v == 0.0 for v in floats(t["action"])) for t in faulted)
    to_safe = None
    if bad is not None:
        first = next((i for i in range(bad, len(ticks)) if ticks[i]["fault"]), None)
        to_safe = None if first is None else first - bad
    return {"bad_input_tick": None if bad is None else int(ticks[bad]["tick"]),
            "host_ticks_to_safe": to_safe, "faulted_ticks": len(faulted),
            "faulted_ticks_all_safe": all_safe}


def robot_view(trace):
    """Firmware ticks from the first injected fault to the first safe actuation."""
    onset = next((int(r["t_us"]) for r in trace if r["event"] == "inject"), None)
    if onset is None:
        return {"robot_ticks_to_safe": None}
    for r in trace:
        if r["event"] != "tick" or int(r["t_us"]) < onset:
            continue
        detail = dict(kv.split("=", 1) for kv in r["detail"].split() if "=" in kv)
        u = floats(detail.get("u", ""))
        if r["what"].lower() != "armed" or (u and all(v == 0.0 for v in u)):
            return {"robot_ticks_to_safe": round((int(r["t_us"]) - onset) / PERIOD_US, 1)}
    return {"robot_ticks_to_safe": None}


def shown(summary):
    faults = summary.get("faults", {})
    host = {k: v for k, v in (faults.get("host") or {}).items() if v}
    parts = [f"{k} {v}" for k, v in sorted(host.items())]
    if faults.get("firmware_reports"):
        last = faults.get("last_firmware_report") or {}
        parts.append(f"firmware reports {faults['firmware_reports']} (last {last.get('code')})")
    link = faults.get("link") or {}
    parts += [f"{k} {v}" for k, v in link.items() if v]
    return ", ".join(parts) or "nothing"


def run_row(binary, out_root, name, what, sim_args):
    out = out_root / name
    subprocess.run(["rm", "-rf", str(out)])
    out.mkdir(parents=True)
    trace = out / "trace.csv"
    args = ["run", "--controller", "expert", "--episodes", str(EPISODES), "--steps", str(STEPS),
            "--seed", "0", "--no-viz", "--ticks", "--out", str(out),
            f"--sim-arg=--trace={trace}", *(f"--sim-arg={a}" for a in sim_args)]
    started = time.time()
    p = handful(binary, args)
    row = {"row": name, "fault": what, "exit": p.returncode, "seconds": round(time.time() - started, 1),
           "panicked": "panicked" in p.stderr or "panicked" in p.stdout}
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    episodes = summary.get("episodes", [])
    row.update({
        "completed": sum(1 for e in episodes if e.get("end") == "completed"),
        "asked": EPISODES,
        "recoveries": summary.get("recoveries"),
        "stopped": summary.get("stopped"),
        "shown": shown(summary),
        **host_view(read_csv(out / "ticks.csv")),
        **robot_view(read_csv(trace)),
        "summary": summary,
    })
    row["recovered"] = bool(row["recoveries"]) and any(
        e.get("end") == "completed" for e in episodes[1:])
    if not summary:
        errors = [line for line in p.stderr.splitlines() if "error" in line.lower()]
        row["shown"] = (errors[-1] if errors else p.stderr.strip()[-200:])[:240]
        row["stderr_tail"] = p.stderr[-400:]
    return row


def refusal_row(binary, out_root, name, what, args):
    out = out_root / name
    subprocess.run(["rm", "-rf", str(out)])
    p = handful(binary, [*args, "--out", str(out)])
    message = [line for line in p.stderr.splitlines() if "error" in line.lower()]
    return {"row": name, "fault": what, "exit": p.returncode,
            "panicked": "panicked" in p.stderr,
            "run_started": (out / "summary.json").exists(),
            "shown": (message[-1] if message else p.stderr.strip()[-200:])[:200]}


def model_rows(binary, out_root):
    python = REPO / ".venv" / "bin" / "python"
    rows = []
    models = out_root / "models"
    models.mkdir(parents=True, exist_ok=True)
    nan = models / "nan.onnx"
    subprocess.run([str(python), str(REPO / "models" / "make_ensemble.py"), "--defect", "nan-weights",
                    "--hidden", "32,32", "--state-names",
                    "cart_position,pole_angle,cart_velocity,pole_angular_velocity",
                    "--action-names", "force", "--control-period-us", "40000", "--out", str(nan)],
                   check=True, capture_output=True)
    truncated = models / "truncated.onnx"
    data = (REPO / "models" / "fixtures" / "cartpole.onnx").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    base = ["run", "--controller", "mpc", "--episodes", "1", "--steps", "50", "--no-viz", "--model"]
    rows.append(refusal_row(binary, out_root, "model-nan", "a model whose every output is NaN",
                            [*base, str(nan)]))
    rows.append(refusal_row(binary, out_root, "model-truncated", "a model file cut in half",
                            [*base, str(truncated)]))
    bad = out_root / "bad-calib.toml"
    text = (REPO / "calib" / "cartpole-sim.toml").read_text().replace("max = 3.0", "max = 1e300")
    bad.write_text(text)
    rows.append(refusal_row(binary, out_root, "calib-malformed",
                            "a calibration whose limit is +inf as f32",
                            ["run", "--controller", "expert", "--calib", str(bad)]))
    return rows


def kill_record_row(binary, out_root):
    """kill -9 while recording demonstrations: what `dataset recover` gets back."""
    out = out_root / "kill-record"
    subprocess.run(["rm", "-rf", str(out)])
    out.mkdir(parents=True)
    dataset = out / "demos"
    p = subprocess.Popen([str(binary), "record", "--teleop", "expert", "--episodes", "100",
                          "--steps", "100", "--dataset", str(dataset)], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(11.0)  # two whole episodes (4 s each plus starts) and into the third
    p.send_signal(signal.SIGKILL)
    killed_at = time.time()
    _, stderr = p.communicate()
    rec = handful(binary, ["dataset", "recover", str(dataset)])
    info = handful(binary, ["dataset", "info", str(dataset)])
    validate = handful(binary, ["dataset", "validate", str(dataset)])
    return {"row": "kill-record", "fault": "kill -9 while recording (11 s in)",
            "panicked": "panicked" in stderr or "panicked" in rec.stderr,
            "recover": (rec.stdout + rec.stderr).strip()[-300:],
            "info": info.stdout.strip()[-400:], "valid": validate.returncode == 0,
            "shown": (rec.stdout.strip().splitlines() or [""])[-1][:200],
            "killed_unix": killed_at}


def kill_learn_row(binary, out_root):
    """kill -9 of a learning run while its retrainer trains and exports; then --resume."""
    out = out_root / "kill-learn"
    subprocess.run(["rm", "-rf", str(out)])
    p = subprocess.Popen([str(binary), "run", "--lockstep", "--no-viz", "--trials", "3",
                          "--expert-episodes", "2", "--out", str(out)], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Kill as soon as a model file exists (the retrainer is exporting or just did).
    deadline = time.time() + 240
    while time.time() < deadline and not list((out / "models").glob("*.onnx*")):
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    _, stderr = p.communicate()
    leftovers = sorted(str(f.relative_to(out)) for f in (out / "models").glob("*")) if (out / "models").exists() else []
    resumed = out_root / "kill-learn-resumed"
    subprocess.run(["rm", "-rf", str(resumed)])
    r = handful(binary, ["run", "--lockstep", "--no-viz", "--trials", "1", "--resume", str(out),
                         "--out", str(resumed)], timeout=600)
    after = sorted(str(f.relative_to(out)) for f in (out / "models").glob("candidate*")) if (out / "models").exists() else []
    return {"row": "kill-learn", "fault": "kill -9 of a learning run as its first model is written",
            "panicked": "panicked" in stderr or "panicked" in r.stderr,
            "models_left": leftovers, "resume_exit": r.returncode, "candidates_after_resume": after,
            "shown": ((r.stderr.strip().splitlines() or [""])[-1])[:200]}


def sigterm_row(binary, out_root):
    out = out_root / "sigterm"
    subprocess.run(["rm", "-rf", str(out)])
    p = subprocess.Popen([str(binary), "run", "--controller", "expert", "--episodes", "3", "--steps",
                          "100", "--no-viz", "--out", str(out)], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(5.0)
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=60)
    return {"row": "sigterm", "fault": "SIGTERM to a run 5 s in", "exit": p.returncode,
            "panicked": "panicked" in stderr, "summary_written": (out / "summary.json").exists(),
            "shown": ((stderr.strip().splitlines() or [""])[-1])[:200]}


def cell(v):
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v).replace("|", "/")


def markdown(rows, machine):
    lines = ["# Fault matrix", "",
             f"Produced by `python3 benches/faults.py` ({machine}); every figure and each run's "
             "summary are in `runs/faults/faults.json`. The expert drives the simulated cart-pole "
             f"in real time, {EPISODES} episodes of {STEPS} steps (40 ms), faults from 3 s. "
             "Host ticks to safe: from the first tick whose state was stale or non-finite to the "
             "safe command with the fault raised (goal 0). Robot ticks to safe: from the fault's "
             "onset to the first firmware tick actuating the safe value or disarmed (a lost host "
             "is bounded by the 200 ms = 5-tick watchdog).", "",
             "| fault | exit | episodes completed | recovered | host ticks to safe | every faulted tick safe | robot ticks to safe | shown to the user | panicked |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "asked" not in r:
            continue
        stopped = f"; stopped: {r['stopped']}" if r.get("stopped") else ""
        lines.append("| " + " | ".join(cell(v) for v in [
            r["fault"], r["exit"], f"{r['completed']} of {r['asked']}", r["recovered"],
            r["host_ticks_to_safe"], r["faulted_ticks_all_safe"], r["robot_ticks_to_safe"],
            r["shown"] + stopped, r["panicked"]]) + " |")
    lines += ["", "| fault | exit | the robot was driven | shown to the user | panicked |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        if "run_started" in r:
            lines.append("| " + " | ".join(cell(v) for v in [
                r["fault"], r["exit"], r["run_started"], r["shown"], r["panicked"]]) + " |")
    lines += ["", "| fault | outcome | panicked |", "| --- | --- | --- |"]
    for r in rows:
        if r["row"] == "kill-record":
            lines.append(f"| {r['fault']} | recovered: {cell(r['shown'])}; valid after: {cell(r['valid'])} | {cell(r['panicked'])} |")
        elif r["row"] == "kill-learn":
            after = r.get("candidates_after_resume")
            after = "not measured" if after is None else (", ".join(after) or "none")
            lines.append(f"| {r['fault']} | model files left: {', '.join(r['models_left']) or 'none'}; `--resume` exit {r['resume_exit']}; candidates left after it: {after} | {cell(r['panicked'])} |")
        elif r["row"] == "sigterm":
            lines.append(f"| {r['fault']} | exit {r['exit']}, summary written: {cell(r['summary_written'])}; {cell(r['shown'])} | {cell(r['panicked'])} |")
    return "\n".join(lines).replace(f"{REPO}/", "") + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma-separated row names")
    ap.add_argument("--binary", type=Path, default=REPO / "target" / "release" / "handful")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "faults")
    ap.add_argument("--markdown", type=Path, default=REPO / "benches" / "faults.md")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, what, sim_args in RUN_ROWS:
        if only is None or name in only:
            rows.append(run_row(args.binary, args.out, name, what, sim_args))
            r = rows[-1]
            print(f"{name:15} exit {r['exit']} completed {r['completed']}/{r['asked']} "
                  f"host {r['host_ticks_to_safe']} robot {r['robot_ticks_to_safe']} | {r['shown']}",
                  flush=True)
    extra = [("models", model_rows), ("kill-record", kill_record_row), ("kill-learn", kill_learn_row),
             ("sigterm", sigterm_row)]
    for name, fn in extra:
        if only is None or name in only:
            got = fn(args.binary, args.out)
            got = got if isinstance(got, list) else [got]
            for r in got:
                print(f"{r['row']:15} {r.get('shown', '')}", flush=True)
            rows.extend(got)
    machine = f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}"
    (args.out / "faults.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    args.markdown.write_text(markdown(rows, machine))
    print(f"wrote {args.markdown} and {args.out / 'faults.json'}")


if __name__ == "__main__":
    sys.exit(main())
