//! `handful bench footprint`: what the main job takes of a small board. It runs the
//! learning job (`handful run`, real time, the viewer's recording saved as shipped) as a
//! child and samples it every 100 ms from `/proc/<pid>`: resident memory (VmRSS, and
//! VmHWM, the peak), each thread's CPU time (`/proc/<pid>/task/*/stat`, utime + stime)
//! as a share of the job's wall time, grouped by thread name; the start-up time from
//! `exec` to the loop's first tick (the child's `control loop started` line, logged on
//! the thread that started the loop once the control thread has set itself up, just
//! before its first tick); and the size of this binary, as built and stripped.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use serde::Serialize;

use crate::clock::Clock;

/// Arguments of `handful bench footprint`.
#[derive(clap::Args, Debug, Clone)]
pub struct FootprintArgs {
    /// Where the JSON report goes.
    #[arg(long, default_value = "runs/bench-footprint.json")]
    pub out: PathBuf,
    /// MPC trials of the learning job after its first model.
    #[arg(long, default_value_t = 1)]
    pub trials: u32,
    /// Scripted-expert demonstrations it records first.
    #[arg(long, default_value_t = 1)]
    pub expert_episodes: u32,
    /// Extra arguments for the job (e.g. `--job-arg=--rt`), repeatable.
    #[arg(long = "job-arg", allow_hyphen_values = true)]
    pub job_args: Vec<String>,
}

/// One thread name's share of the job.
#[derive(Clone, Debug, Serialize)]
pub struct ThreadShare {
    pub name: String,
    /// Threads of that name seen over the job.
    pub threads: usize,
    pub cpu_s: f64,
    /// CPU time over the job's wall time (1.0: one core all the time).
    pub share: f64,
}

/// Everything `bench footprint` measured.
#[derive(Clone, Debug, Serialize)]
pub struct FootprintReport {
    pub job: Vec<String>,
    pub wall_s: f64,
    pub exit_status: Option<i32>,
    /// `exec` to the `control loop started` line.
    pub startup_to_first_tick_ms: Option<f64>,
    pub rss_final_kib: u64,
    pub rss_peak_kib: u64,
    pub threads: Vec<ThreadShare>,
    pub cpu_total_s: f64,
    pub binary_bytes: u64,
    pub binary_stripped_bytes: Option<u64>,
    pub arch: &'static str,
}

/// Runs the job to its end while sampling it.
pub fn run_footprint(args: &FootprintArgs) -> anyhow::Result<FootprintReport> {
    let exe = std::env::current_exe().context("locating this program")?;
    let dir = std::env::temp_dir().join(format!("handful-bench-footprint-{}", std::process::id()));
    let mut job: Vec<String> = vec![
        "run".into(),
        "--trials".into(),
        args.trials.to_string(),
        "--expert-episodes".into(),
        args.expert_episodes.to_string(),
        "--seed".into(),
        "0".into(),
        "--out".into(),
        dir.join("run").display().to_string(),
    ];
    job.extend(args.job_args.iter().cloned());
    let clock = Clock::real();
    let started = clock.now_us();
    let mut child = Command::new(&exe)
        .args(&job)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the job")?;
    let pid = child.id();
    // The first-tick line, timed on the bench's clock as it arrives.
    let first_tick = Arc::new(AtomicU64::new(0));
    let stderr = child.stderr.take().context("the job's stderr")?;
    let reader = {
        let first_tick = Arc::clone(&first_tick);
        let clock = clock.clone();
        crate::thread::spawn_named("handful-bench-log", move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("control loop started") && first_tick.load(Ordering::Acquire) == 0
                {
                    first_tick.store(
                        clock.now_us().saturating_sub(started).max(1),
                        Ordering::Release,
                    );
                }
            }
        })?
    };
    let mut peak_kib = 0;
    let mut final_kib = 0;
    let mut per_thread: BTreeMap<u32, (String, u64)> = BTreeMap::new();
    let exit = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Some((rss, hwm)) = rss_kib(pid) {
            final_kib = rss;
            peak_kib = peak_kib.max(hwm).max(rss);
        }
        for (tid, name, ticks) in thread_times(pid) {
            let entry = per_thread.entry(tid).or_insert((name, 0));
            entry.1 = entry.1.max(ticks);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let wall_s = clock.now_us().saturating_sub(started) as f64 / 1e6;
    drop(reader);
    // SAFETY: sysconf has no memory arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut by_name: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for (name, ticks) in per_thread.into_values() {
        let entry = by_name.entry(name).or_default();
        entry.0 += 1;
        entry.1 += ticks;
    }
    let mut threads: Vec<ThreadShare> = by_name
        .into_iter()
        .map(|(name, (threads, ticks))| ThreadShare {
            name,
            threads,
            cpu_s: ticks as f64 / hz,
            share: ticks as f64 / hz / wall_s.max(1e-9),
        })
        .collect();
    threads.sort_by(|a, b| b.cpu_s.total_cmp(&a.cpu_s));
    let cpu_total_s = threads.iter().map(|t| t.cpu_s).sum();
    let binary_bytes = std::fs::metadata(&exe)?.len();
    let stripped = dir.join("handful.stripped");
    let binary_stripped_bytes = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(&exe)
        .status()
        .ok()
        .filter(|s| s.success())
        .and_then(|_| std::fs::metadata(&stripped).ok())
        .map(|m| m.len());
    let _ = std::fs::remove_dir_all(&dir);
    let first = first_tick.load(Ordering::Acquire);
    Ok(FootprintReport {
        job,
        wall_s,
        exit_status: exit.code(),
        startup_to_first_tick_ms: (first > 0).then(|| first as f64 / 1e3),
        rss_final_kib: final_kib,
        rss_peak_kib: peak_kib,
        threads,
        cpu_total_s,
        binary_bytes,
        binary_stripped_bytes,
        arch: std::env::consts::ARCH,
    })
}

/// VmRSS and VmHWM of a process, KiB.
fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |key: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Every thread of a process: id, name, utime + stime in clock ticks.
fn thread_times(pid: u32) -> Vec<(u32, String, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|entry| {
            let tid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (name, ticks) = parse_stat(&stat)?;
            Some((tid, name, ticks))
        })
        .collect()
}

/// The name and utime + stime (clock ticks) of a `/proc/<pid>/task/<tid>/stat` line. The
/// name is in parentheses and may hold spaces and parentheses itself: it ends at the last
/// `)`.
pub fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    // After the name: state (field 3), ..., utime (14), stime (15).
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// Prints the report.
pub fn print_footprint(r: &FootprintReport) {
    println!(
        "bench footprint: `handful {}` ({:.1} s, {})",
        r.job.join(" "),
        r.wall_s,
        r.exit_status
            .map_or_else(|| "ended by a signal".to_owned(), |c| format!("exit {c}"))
    );
    println!(
        "  start-up to the first tick: {}",
        r.startup_to_first_tick_ms
            .map_or_else(|| "not seen".to_owned(), |ms| format!("{ms:.0} ms"))
    );
    println!(
        "  resident memory: {:.1} MiB at the end, {:.1} MiB peak",
        r.rss_final_kib as f64 / 1024.0,
        r.rss_peak_kib as f64 / 1024.0
    );
    println!(
        "  binary: {:.1} MiB ({})",
        r.binary_bytes as f64 / 1048576.0,
        r.binary_stripped_bytes.map_or_else(
            || "strip not available".to_owned(),
            |b| format!("{:.1} MiB stripped", b as f64 / 1048576.0)
        )
    );
    println!(
        "  CPU {:.1} s in all; per thread (share of one core over the job):",
        r.cpu_total_s
    );
    for t in &r.threads {
        println!(
            "    {:<18} x{:<3} {:>7.2} s {:>6.1} %",
            t.name,
            t.threads,
            t.cpu_s,
            100.0 * t.share
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_name_and_cpu_ticks_even_with_parentheses_in_the_name() {
        let line = "4242 (handful-control) S 1 2 3 4 5 6 7 8 9 10 120 30 0 0 20 0 1 0";
        assert_eq!(parse_stat(line), Some(("handful-control".into(), 150)));
        let odd = "7 (a) b (c)) R 1 2 3 4 5 6 7 8 9 10 5 6 0 0";
        assert_eq!(parse_stat(odd), Some(("a) b (c)".into(), 11)));
        assert_eq!(parse_stat("7 (x) R 1 2"), None);
    }
}
