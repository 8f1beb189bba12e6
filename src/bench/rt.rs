//! `handful bench rt`: what the real-time set-up (`--rt`) buys. The real loop against
//! the simulated robot over its pty, one `handful run` per configuration (a process of
//! its own each: locked memory and moved threads do not leak into the next), with and
//! without `--rt`, on an idle machine and while `stress-ng` loads every CPU but the loop's.
//! Each row is the run's own loop report: wake-up jitter (wake-up minus deadline), tick
//! compute, deadline misses (overruns) and skipped slots.
//!
//! A host fault (a stale state, a lost link) ends that row's run (`--max-recoveries 0`):
//! its ticks stop there and the fault is counted. Without stress-ng installed the loaded
//! rows are left out and the report says so.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use serde::Serialize;

use crate::control::timing::Percentiles;
use crate::realtime::{self, RealtimeStatus};

/// Arguments of `handful bench rt`.
#[derive(clap::Args, Debug, Clone)]
pub struct RtArgs {
    /// Where the JSON report goes.
    #[arg(long, default_value = "runs/bench-rt.json")]
    pub out: PathBuf,
    /// Seconds of control per configuration (four configurations).
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// The robot (a simulated one: its port must be `sim`).
    #[arg(long, default_value = "calib/cartpole-sim.toml")]
    pub calib: PathBuf,
    /// The controller of the runs: `expert` (microseconds a tick: the loop's own timing)
    /// or `mpc-true` (the shipped real-time planner, most of the period).
    #[arg(long, default_value = "expert")]
    pub controller: String,
    /// The loop's CPU under `--rt` (default: the last CPU); stress-ng gets the others.
    #[arg(long)]
    pub rt_cpu: Option<usize>,
    #[arg(long, default_value_t = realtime::DEFAULT_PRIORITY)]
    pub rt_priority: i32,
    /// Only the idle machine (no stress-ng rows).
    #[arg(long)]
    pub no_stress: bool,
}

/// One configuration's loop, as its run reported it.
#[derive(Clone, Debug, Serialize)]
pub struct RtRow {
    pub label: String,
    pub stress: bool,
    pub realtime_requested: bool,
    /// What the set-up achieved (priority, CPU, memory locked, threads placed).
    pub realtime: Option<RealtimeStatus>,
    pub ticks: u64,
    pub period_us: u64,
    pub jitter: Percentiles,
    pub compute: Percentiles,
    /// Ticks whose work ended after the next deadline (deadline misses).
    pub overruns: u64,
    pub skipped_slots: u64,
    /// Host faults the loop counted (stale state, link, ...).
    pub faults: serde_json::Value,
}

/// Everything `bench rt` measured.
#[derive(Clone, Debug, Serialize)]
pub struct RtReport {
    pub seconds: u64,
    pub controller: String,
    pub cpus: String,
    pub loop_cpu: Option<usize>,
    pub stress_cpus: String,
    pub kernel: String,
    pub arch: &'static str,
    /// `/proc/loadavg` before the first row: what else the machine was doing.
    pub load_average: String,
    /// `stress-ng --version`, or why the loaded rows are missing.
    pub stress_ng: Result<String, String>,
    pub rows: Vec<RtRow>,
}

/// Runs the configurations one after another and returns their reports.
pub fn run_rt(args: &RtArgs) -> anyhow::Result<RtReport> {
    let exe = std::env::current_exe().context("locating this program")?;
    let calib = crate::calib::Calibration::load(&args.calib)?;
    if calib.port.is_some() {
        anyhow::bail!(
            "bench rt drives the simulated robot: {} has a serial port",
            args.calib.display()
        );
    }
    let allowed = realtime::allowed_cpus()?;
    let config = realtime::RealtimeConfig {
        enabled: true,
        cpu: args.rt_cpu,
        priority: args.rt_priority,
        ..Default::default()
    };
    config.validate()?;
    let loop_cpu = config.loop_cpu(&allowed);
    let stress_cpus = match loop_cpu {
        Some(cpu) => allowed.without(cpu),
        None => allowed.clone(),
    };
    let stress_ng = if args.no_stress {
        Err("--no-stress".to_owned())
    } else {
        stress_ng_version()
    };
    if let Err(why) = &stress_ng {
        eprintln!("bench rt: no loaded rows: {why}");
    }
    let steps = (args.seconds * 1_000_000 / calib.control_period_us).max(1);
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let dir = tempfile_dir()?;
    let mut rows = Vec::new();
    let loads: &[bool] = if stress_ng.is_ok() {
        &[false, true]
    } else {
        &[false]
    };
    for &stress in loads {
        for rt in [false, true] {
            let label = format!(
                "{}, {}",
                if stress {
                    format!("stress-ng on CPUs {stress_cpus}")
                } else {
                    "idle".to_owned()
                },
                if rt { "--rt" } else { "normal scheduling" }
            );
            eprintln!("bench rt: {label} ({} s)", args.seconds);
            let mut load = match stress {
                true => Some(StressNg::start(&stress_cpus, args.seconds + 30)?),
                false => None,
            };
            let out = dir.join(format!("run-{}-{}", u8::from(stress), u8::from(rt)));
            let mut command = Command::new(&exe);
            command
                .args(["run", "--no-viz", "--episodes", "1", "--seed", "0"])
                .args(["--controller", &args.controller])
                .arg("--calib")
                .arg(&args.calib)
                .args(["--steps", &steps.to_string(), "--max-recoveries", "0"])
                .arg("--out")
                .arg(&out)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            if rt {
                command
                    .arg("--rt")
                    .args(["--rt-priority", &args.rt_priority.to_string()]);
                if let Some(cpu) = args.rt_cpu {
                    command.args(["--rt-cpu", &cpu.to_string()]);
                }
            }
            let output = command.output().context("running handful run")?;
            if let Some(load) = load.as_mut() {
                load.stop();
            }
            let summary = std::fs::read_to_string(out.join("summary.json")).with_context(|| {
                format!(
                    "{label}: no summary.json (the run exited {}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                )
            })?;
            rows.push(row(label, stress, rt, &summary)?);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(RtReport {
        seconds: args.seconds,
        controller: args.controller.clone(),
        cpus: allowed.to_string(),
        loop_cpu,
        stress_cpus: stress_cpus.to_string(),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        arch: std::env::consts::ARCH,
        load_average,
        stress_ng,
        rows,
    })
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("handful-bench-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn row(label: String, stress: bool, rt: bool, summary: &str) -> anyhow::Result<RtRow> {
    let summary: serde_json::Value = serde_json::from_str(summary)?;
    let report = &summary["loop_report"];
    let timing = &report["timing"];
    let get = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let percentiles = |v: &serde_json::Value| -> Percentiles {
        serde_json::from_value(v.clone()).unwrap_or_default()
    };
    Ok(RtRow {
        label,
        stress,
        realtime_requested: rt,
        realtime: serde_json::from_value(report["realtime"].clone()).ok(),
        ticks: get(&timing["ticks"]),
        period_us: get(&timing["period_us"]),
        jitter: percentiles(&timing["jitter"]),
        compute: percentiles(&timing["compute"]),
        overruns: get(&timing["overruns"]),
        skipped_slots: get(&timing["skipped_slots"]),
        faults: report["faults"].clone(),
    })
}

/// Prints the rows as a table.
pub fn print_rt(report: &RtReport) {
    println!(
        "bench rt: {} s per row, controller {}, CPUs {} (loop on {}), load {}, {}",
        report.seconds,
        report.controller,
        report.cpus,
        report
            .loop_cpu
            .map_or_else(|| "any".to_owned(), |c| c.to_string()),
        report.load_average,
        match &report.stress_ng {
            Ok(v) => v.clone(),
            Err(why) => format!("no stress-ng ({why})"),
        }
    );
    println!(
        "{:<44} {:<22} {:>6} {:>22} {:>12} {:>9} {:>7}",
        "configuration",
        "set-up",
        "ticks",
        "jitter p50/p99/max µs",
        "compute p99",
        "overruns",
        "faults"
    );
    for row in &report.rows {
        let setup = match &row.realtime {
            Some(s) if s.requested => format!(
                "{}{}{}",
                s.fifo_priority
                    .map_or_else(|| "no FIFO".to_owned(), |p| format!("FIFO {p}")),
                s.cpu.map_or_else(String::new, |c| format!(", CPU {c}")),
                if s.memory_locked { ", mlock" } else { "" }
            ),
            _ => "-".to_owned(),
        };
        let faults: u64 = row
            .faults
            .as_object()
            .map_or(0, |f| f.values().filter_map(|v| v.as_u64()).sum());
        println!(
            "{:<44} {:<22} {:>6} {:>22} {:>12} {:>9} {:>7}",
            row.label,
            setup,
            row.ticks,
            format!(
                "{}/{}/{}",
                row.jitter.p50_us, row.jitter.p99_us, row.jitter.max_us
            ),
            row.compute.p99_us,
            row.overruns,
            faults
        );
    }
}

fn stress_ng_version() -> Result<String, String> {
    match Command::new("stress-ng").arg("--version").output() {
        Ok(out) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
        Ok(out) => Err(format!("stress-ng --version exited {}", out.status)),
        Err(e) => Err(format!(
            "stress-ng not found ({e}): install it with `apt-get install -y stress-ng`"
        )),
    }
}

/// A `stress-ng --cpu N --taskset CPUS` started for one row and stopped after it (its
/// own `--timeout` ends it should this process die first).
struct StressNg {
    child: Child,
}

impl StressNg {
    fn start(cpus: &realtime::CpuSet, timeout_s: u64) -> anyhow::Result<Self> {
        let child = Command::new("stress-ng")
            .args(["--cpu", &cpus.len().max(1).to_string()])
            .args(["--taskset", &cpus.to_string()])
            .args(["--timeout", &format!("{timeout_s}s"), "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting stress-ng")?;
        // Its workers start within a few milliseconds; give them a moment to load the CPUs.
        std::thread::sleep(std::time::Duration::from_millis(500));
        Ok(Self { child })
    }

    fn stop(&mut self) {
        // SIGTERM to our own child (its workers follow it).
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

impl Drop for StressNg {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}
