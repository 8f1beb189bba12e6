#!/usr/bin/env bash
# Runs cargo-fuzz targets (nightly, libFuzzer, AddressSanitizer) one after another and
# writes what each reached — executions, seconds, crashes, coverage — to runs/fuzz.json
# (entries of other targets already there are kept). See fuzz/README.md.
#
#   fuzz/run.sh [--runs N] [--time S] [TARGET...] [-- LIBFUZZER_ARGS...]
#
# --runs N   stop each target after N executions (default 10000000)
# --time S   ... or after S seconds, whichever comes first (default: no limit)
# TARGET     default: every target of fuzz/Cargo.toml
# after --   passed to libFuzzer as they are (e.g. -max_len=1024)
#
# New inputs go to fuzz/target/corpus/<target>/ (the committed seeds in
# fuzz/corpus/<target>/ are read, never written); crash, timeout and out-of-memory
# inputs go to fuzz/artifacts/<target>/. libFuzzer stops a target at its first finding:
# fix it, commit the input to fuzz/regressions/<target>/, run again.
set -euo pipefail
cd "$(dirname "$0")"

runs=10000000
time_limit=0
targets=()
extra=()
while (($#)); do
    case "$1" in
        --) shift; extra=("$@"); break ;;
        --runs) runs="$2"; shift 2 ;;
        --time) time_limit="$2"; shift 2 ;;
        -h|--help) sed -n 2,17p "$0"; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' Cargo.toml | grep -v '^handful')
fi

# The dataset target writes a small dataset per input: keep that in memory.
export TMPDIR="${TMPDIR:-/dev/shm}"
mkdir -p ../runs logs
for target in "${targets[@]}"; do
    mkdir -p "target/corpus/$target" "artifacts/$target"
    log="logs/$target.log"
    # One core: the machine is shared. -timeout: an input slower than 10 s is a finding.
    args=(-runs="$runs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048
          -artifact_prefix="artifacts/$target/")
    if ((time_limit > 0)); then args+=(-max_total_time="$time_limit"); fi
    args+=("${extra[@]}")
    command="cargo +nightly fuzz run $target target/corpus/$target corpus/$target -- ${args[*]}"
    echo "== $command" >&2
    cargo +nightly fuzz build "$target" >&2
    start=$(date +%s.%N)
    set +e
    cargo +nightly fuzz run "$target" "target/corpus/$target" "corpus/$target" -- "${args[@]}" \
        >"$log" 2>&1
    status=$?
    set -e
    end=$(date +%s.%N)
    tail -n 12 "$log" >&2
    python3 - "$target" "$log" "$status" "$start" "$end" "$command" <<'EOF'
import json, re, sys, pathlib, datetime
target, log, status, start, end, command = sys.argv[1:]
text = pathlib.Path(log).read_text(errors="replace")
def stat(name):
    m = re.findall(rf"stat::{name}:\s+(\d+)", text)
    return int(m[-1]) if m else None
# The last status line: "#N  DONE|pulse|NEW  cov: C ft: F corp: U/S ..."
status_lines = re.findall(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/", text, re.M)
last = status_lines[-1] if status_lines else None
artifacts = sorted(str(p) for p in pathlib.Path(f"artifacts/{target}").iterdir()
                   if p.stat().st_mtime >= float(start))
findings = [a for a in artifacts if re.search(r"/(crash|oom|timeout|leak|slow-unit)-", a)]
# libFuzzer's own count of its running time ("Done N runs in S second(s)"); the wall
# time around it also covers loading the corpus and any rebuild.
done = re.findall(r"^Done (\d+) runs in (\d+) second", text, re.M)
wall = float(end) - float(start)
seconds = float(done[-1][1]) if done else wall
entry = {
    "target": target,
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "execs": stat("number_of_executed_units") or (int(last[0]) if last else 0),
    "seconds": round(seconds, 1),
    "wall_seconds": round(wall, 1),
    "execs_per_sec": stat("average_exec_per_sec"),
    "crashes": len(findings),
    "findings": findings,
    "exit_code": int(status),
    "cov": int(last[1]) if last else None,
    "ft": int(last[2]) if last else None,
    "corpus_units": int(last[3]) if last else None,
    "new_units_added": stat("new_units_added"),
    "peak_rss_mb": stat("peak_rss_mb"),
    "command": f"cd fuzz && {command}",
    "log": f"fuzz/{log}",
}
out = pathlib.Path("../runs/fuzz.json")
runs = json.loads(out.read_text()) if out.exists() else []
runs = [r for r in runs if r.get("target") != target] + [entry]
out.write_text(json.dumps(runs, indent=2) + "\n")
print(json.dumps(entry))
EOF
done
