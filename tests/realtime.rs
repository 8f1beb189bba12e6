//! The control thread's real-time set-up (`--rt`) through the binary, in real time
//! against the simulated robot: where this machine permits it the loop runs SCHED_FIFO on
//! a core of its own with its I/O threads beside it, memory locked; where it does not (a
//! child without CAP_SYS_NICE and CAP_IPC_LOCK, RLIMIT_RTPRIO 0) the run warns, says how
//! to fix it and goes on, and `--require-rt` refuses before the robot is touched.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::cli::handful;

fn run_rt(out: &Path, extra: &[&str], unprivileged: bool) -> Output {
    let mut command: Command = handful();
    command
        .args(["run", "--controller", "expert", "--no-viz", "--rt"])
        .args(["--episodes", "1", "--steps", "25", "--out"])
        .arg(out)
        .args(extra);
    if unprivileged {
        // SAFETY: only async-signal-safe calls between fork and exec (prctl, setrlimit).
        unsafe {
            command.pre_exec(|| {
                // Out of the bounding set, root's capabilities lose them at exec.
                for cap in [23, 14] {
                    libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
                }
                let zero = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::setrlimit(libc::RLIMIT_RTPRIO, &zero);
                let small = libc::rlimit {
                    rlim_cur: 64 << 10,
                    rlim_max: 64 << 10,
                };
                libc::setrlimit(libc::RLIMIT_MEMLOCK, &small);
                Ok(())
            });
        }
    }
    command.output().unwrap()
}

fn summary(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn with_rt_the_loop_gets_fifo_its_own_core_its_io_beside_it_and_locked_memory_when_permitted() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = run_rt(&out, &[], false);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Whether the episode completes is not the point (a machine loaded by other work can
    // end it on a lost link without the set-up): the run and what it reports are.
    assert!(out.join("summary.json").is_file(), "{stderr}");
    let summary = summary(&out);
    let status = &summary["loop_report"]["realtime"];
    assert_eq!(status["requested"], true, "{status}");
    let allowed = handful::realtime::allowed_cpus().unwrap();
    // What this machine permits decides what must have happened.
    match handful::realtime::probe_fifo(handful::realtime::DEFAULT_PRIORITY) {
        Ok(()) => {
            eprintln!("SCHED_FIFO permitted here");
            assert_eq!(status["fifo_priority"], 80, "{status}");
            if allowed.len() >= 2 {
                assert_eq!(status["cpu"], allowed.last().unwrap(), "{status}");
                assert_eq!(status["io_threads"], 2, "{status}");
                assert!(status["threads_moved"].as_u64().unwrap() >= 1, "{status}");
            }
        }
        Err(why) => {
            eprintln!("SCHED_FIFO refused here: {why}");
            assert!(status["fifo_priority"].is_null(), "{status}");
            assert!(stderr.contains("normal scheduling"), "{stderr}");
        }
    }
    assert_eq!(
        status["memory_locked"],
        handful::realtime::memlock_refusal().is_none(),
        "{status}"
    );
}

#[test]
fn without_permission_rt_warns_with_the_fix_and_require_rt_refuses_before_the_robot_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = run_rt(&out, &[], true);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(out.join("summary.json").is_file(), "{stderr}");
    assert!(stderr.contains("normal scheduling"), "{stderr}");
    assert!(stderr.contains("LimitRTPRIO"), "{stderr}");
    assert!(stderr.contains("memory not locked"), "{stderr}");
    let status = &summary(&out)["loop_report"]["realtime"];
    assert!(status["fifo_priority"].is_null(), "{status}");
    assert_eq!(status["memory_locked"], false, "{status}");

    let refused = dir.path().join("refused");
    let output = run_rt(&refused, &["--require-rt"], true);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("RLIMIT_RTPRIO"), "{stderr}");
    assert!(stderr.contains("to fix"), "{stderr}");
    assert!(!refused.exists(), "the run started: {stderr}");
}

#[test]
fn rt_is_refused_in_lockstep_and_out_of_range_settings_are_named() {
    let check = |args: &[&str], says: &str| {
        let output = handful().arg("run").args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    };
    check(&["--lockstep", "--rt"], "--lockstep");
    check(&["--rt", "--rt-priority", "100"], "--rt-priority 100");
    check(&["--rt", "--rt-cpu", "4096"], "--rt-cpu 4096");
    check(&["--rt-priority", "50"], "--rt");
}

#[test]
fn bench_rt_without_stress_ng_measures_the_idle_rows_and_says_how_to_get_the_loaded_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench-rt.json");
    let output = handful()
        .args(["bench", "rt", "--seconds", "1", "--out"])
        .arg(&out)
        // No stress-ng on this PATH (the runs are started by absolute path).
        .env("PATH", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("apt-get install -y stress-ng"), "{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(
        report["stress_ng"]["Err"]
            .as_str()
            .unwrap()
            .contains("stress-ng"),
        "{report:#}"
    );
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{report:#}");
    for (row, rt) in rows.iter().zip([false, true]) {
        assert_eq!(row["stress"], false);
        assert_eq!(row["realtime_requested"], rt);
        assert!(row["ticks"].as_u64().unwrap() >= 20, "{row}");
        assert!(row["jitter"]["p99_us"].as_u64().unwrap() > 0, "{row}");
    }
}

#[test]
fn with_rt_the_simulated_robot_it_starts_runs_off_the_loops_cpu_as_sched_fifo() {
    let allowed = handful::realtime::allowed_cpus().unwrap();
    if allowed.len() < 2 {
        eprintln!("one CPU here: nothing to keep apart");
        return;
    }
    let loop_cpu = allowed.last().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = handful()
        .args(["run", "--controller", "expert", "--no-viz", "--rt"])
        .args(["--episodes", "1", "--steps", "50", "--out"])
        .arg(dir.path().join("run"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The simulator is handful's child: where each of its threads may run, and how it
    // is scheduled (field 41 of stat, after the parenthesised name; 1 is SCHED_FIFO).
    let children = format!("/proc/{0}/task/{0}/children", child.id());
    let mut seen = None;
    for _ in 0..200 {
        let sim = std::fs::read_to_string(&children)
            .ok()
            .and_then(|t| t.split_whitespace().next().map(str::to_owned));
        let tasks: Vec<std::path::PathBuf> = sim
            .iter()
            .flat_map(|pid| {
                std::fs::read_dir(format!("/proc/{pid}/task"))
                    .into_iter()
                    .flatten()
            })
            .flatten()
            .map(|task| task.path())
            .collect();
        let cpus: Vec<String> = tasks
            .iter()
            .filter_map(|task| std::fs::read_to_string(task.join("status")).ok())
            .filter_map(|status| {
                status.lines().find_map(|l| {
                    l.strip_prefix("Cpus_allowed_list:")
                        .map(|v| v.trim().to_owned())
                })
            })
            .collect();
        let policies: Vec<u32> = tasks
            .iter()
            .filter_map(|task| std::fs::read_to_string(task.join("stat")).ok())
            .filter_map(|stat| {
                stat.rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(38)?
                    .parse()
                    .ok()
            })
            .collect();
        // Placed once the link is up: wait (bounded) until every thread shows it.
        if !cpus.is_empty() && cpus.iter().all(|l| l != &format!("0-{loop_cpu}")) {
            seen = Some((cpus, policies));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = child.wait();
    let (lists, policies) =
        seen.expect("the simulator's threads were never moved off the loop's CPU");
    for list in &lists {
        let cpus: Vec<usize> = list
            .split(',')
            .flat_map(|part| match part.split_once('-') {
                Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).collect::<Vec<usize>>(),
                None => vec![part.parse().unwrap()],
            })
            .collect();
        assert!(
            !cpus.contains(&loop_cpu),
            "a simulator thread may run on CPU {loop_cpu}: {lists:?}"
        );
    }
    if handful::realtime::probe_fifo(handful::realtime::DEFAULT_PRIORITY).is_ok() {
        assert!(
            !policies.is_empty() && policies.iter().all(|p| *p == 1),
            "the simulator's threads are not SCHED_FIFO: {policies:?}"
        );
    }
}
