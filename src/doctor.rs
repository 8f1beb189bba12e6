//! `handful doctor`: is this machine ready to drive the robot? Real-time scheduling,
//! memory locking, CPU frequency and isolation, the serial port, ONNX Runtime, the
//! calibration and the model, disk space. Each finding is `ok`, `warn` (handful runs, but
//! worse) or `fail` (a job will not start), with the fix when it is not `ok`; the exit
//! status is non-zero when something fails (`--strict`: or warns), `--json` prints the
//! report as JSON.
//!
//! Reads the machine and changes nothing on it; the one probe that asks the kernel
//! (SCHED_FIFO) does it on a scratch thread that ends at once. It validates with the
//! code the jobs use (`Calibration::load`, `Ensemble::load`, the runtime's version check),
//! so what it accepts is what a run accepts.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::calib::Calibration;
use crate::realtime::{self, CpuSet, RealtimeConfig};

/// A saved viewer session writes about this many bytes a second (`benches/README.md`).
const RECORDING_BYTES_PER_S: f64 = 0.6e6;
/// Free space below which a job is expected to fill the disk within a short run.
const DISK_FAIL_BYTES: u64 = 1 << 30;
/// Free space below which a day of recording does not fit.
const DISK_WARN_BYTES: u64 = 10 << 30;

/// Arguments of `handful doctor`.
#[derive(clap::Args, Debug, Clone)]
pub struct DoctorArgs {
    /// The calibration the robot runs with.
    #[arg(long, default_value = "calib/cartpole-sim.toml")]
    pub calib: PathBuf,
    /// Serial device of a real robot (overrides the calibration's port).
    #[arg(long)]
    pub port: Option<PathBuf>,
    /// An ONNX ensemble to check against the calibration (`--controller mpc --model`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The SCHED_FIFO priority the control thread would ask for (`--rt-priority`).
    #[arg(long, value_name = "P", default_value_t = realtime::DEFAULT_PRIORITY)]
    pub rt_priority: i32,
    /// The loop's CPU (`--rt-cpu`; default: the last this process may use).
    #[arg(long, value_name = "CPU")]
    pub rt_cpu: Option<usize>,
    /// Where datasets go.
    #[arg(long, default_value = "datasets")]
    pub datasets: PathBuf,
    /// Where run directories (and their recordings) go.
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Warnings fail too (exit status 1).
    #[arg(long)]
    pub strict: bool,
}

/// How a finding stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// handful runs, but worse than it could (jitter, no page locking, ...).
    Warn,
    /// A job will not start, or will fail.
    Fail,
}

/// One thing checked.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// A stable name (`sched_fifo`, `memlock`, `serial_port`, ...).
    pub check: &'static str,
    pub status: Status,
    /// What was found.
    pub message: String,
    /// What to do about it (`None` when ok).
    pub fix: Option<String>,
}

/// Everything `handful doctor` found.
#[derive(Clone, Debug, Serialize)]
pub struct DoctorReport {
    pub version: &'static str,
    pub findings: Vec<Finding>,
    pub ok: usize,
    pub warn: usize,
    pub fail: usize,
}

impl DoctorReport {
    fn new(findings: Vec<Finding>) -> Self {
        let count = |s| findings.iter().filter(|f| f.status == s).count();
        Self {
            version: env!("CARGO_PKG_VERSION"),
            ok: count(Status::Ok),
            warn: count(Status::Warn),
            fail: count(Status::Fail),
            findings,
        }
    }

    /// 0 when nothing fails (with `strict`, nothing warns either), else 1.
    pub fn exit_code(&self, strict: bool) -> u8 {
        u8::from(self.fail > 0 || (strict && self.warn > 0))
    }

    pub fn finding(&self, check: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.check == check)
    }
}

fn ok(check: &'static str, message: impl Into<String>) -> Finding {
    Finding {
        check,
        status: Status::Ok,
        message: message.into(),
        fix: None,
    }
}

fn warn(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        check,
        status: Status::Warn,
        message: message.into(),
        fix: Some(fix.into()),
    }
}

fn fail(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        check,
        status: Status::Fail,
        message: message.into(),
        fix: Some(fix.into()),
    }
}

/// Runs every check.
pub fn diagnose(args: &DoctorArgs) -> DoctorReport {
    let mut findings = vec![
        kernel(),
        sched_fifo(args.rt_priority),
        rt_throttling(),
        autogroup(),
        memlock(),
    ];
    findings.extend(cpus(args.rt_cpu));
    findings.push(cpu_governor());
    let calib = Calibration::load(&args.calib);
    findings.push(match &calib {
        Ok(c) => ok(
            "calibration",
            format!(
                "{}: robot `{}` ({}), {} Hz, {} states, {} actions, sha256 {}",
                args.calib.display(),
                c.robot_id,
                c.task.name(),
                1e6 / c.control_period_us as f64,
                c.state_dim(),
                c.action_dim(),
                c.short_hash()
            ),
        ),
        Err(e) => fail(
            "calibration",
            format!("{e:#}"),
            "correct what the message names (calib/cartpole-sim.toml is a complete example; \
             `handful calib FILE` checks one), or pass the robot's with --calib",
        ),
    });
    let port = args
        .port
        .clone()
        .or_else(|| calib.as_ref().ok()?.port.as_ref().map(PathBuf::from));
    findings.push(serial_port(port.as_deref(), calib.is_ok()));
    findings.push(dialout(port.is_some()));
    let runtime = onnxruntime();
    let runtime_ok = runtime.status == Status::Ok;
    findings.push(runtime);
    findings.push(model(
        args.model.as_deref(),
        calib.as_ref().ok(),
        runtime_ok,
    ));
    findings.push(disk("disk_datasets", &args.datasets, "datasets"));
    findings.push(disk(
        "disk_runs",
        &args.runs,
        "run directories and recordings",
    ));
    DoctorReport::new(findings)
}

/// The report as text: one line per finding, its fix under it, a count at the end.
pub fn render(report: &DoctorReport) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let status = match f.status {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        out.push_str(&format!("{status}  {:<14} {}\n", f.check, f.message));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("      {:<14} fix: {fix}\n", ""));
        }
    }
    out.push_str(&format!(
        "{} ok, {} warnings, {} failures\n",
        report.ok, report.warn, report.fail
    ));
    out
}

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

fn kernel() -> Finding {
    let release = read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default();
    let version = read_trimmed("/proc/sys/kernel/version").unwrap_or_default();
    let rt = read_trimmed("/sys/kernel/realtime").as_deref() == Some("1")
        || version.contains("PREEMPT_RT");
    let arch = std::env::consts::ARCH;
    if rt {
        ok("kernel", format!("{release} ({arch}): PREEMPT_RT"))
    } else if version.contains("PREEMPT") {
        ok(
            "kernel",
            format!(
                "{release} ({arch}): preemptible ({}); PREEMPT_RT would shorten the worst wake-ups",
                version
                    .split_whitespace()
                    .find(|w| w.starts_with("PREEMPT"))
                    .unwrap_or("PREEMPT")
            ),
        )
    } else {
        warn(
            "kernel",
            format!("{release} ({arch}): not preemptible: a wake-up can wait for a system call"),
            "a PREEMPT_RT kernel (Debian: apt-get install linux-image-rt-arm64 or \
             linux-image-rt-amd64), or boot with preempt=full",
        )
    }
}

fn sched_fifo(priority: i32) -> Finding {
    if !(2..=99).contains(&priority) {
        return fail(
            "sched_fifo",
            format!("--rt-priority {priority} is outside 2-99"),
            "pass a SCHED_FIFO priority from 2 to 99 (default 80)",
        );
    }
    let limit = match realtime::rtprio_limit() {
        None => "unlimited".to_owned(),
        Some(n) => n.to_string(),
    };
    let cap = if realtime::has_cap_sys_nice() {
        "CAP_SYS_NICE"
    } else {
        "no CAP_SYS_NICE"
    };
    match realtime::probe_fifo(priority) {
        Ok(()) => ok(
            "sched_fifo",
            format!("SCHED_FIFO at priority {priority} permitted (RLIMIT_RTPRIO {limit}, {cap})"),
        ),
        Err(reason) => warn(
            "sched_fifo",
            format!(
                "SCHED_FIFO at priority {priority} refused ({}; RLIMIT_RTPRIO {limit}, {cap}): \
                 `--rt` runs the loop with normal scheduling, `--require-rt` refuses to start",
                realtime::fifo_refusal(priority).unwrap_or(reason)
            ),
            realtime::FIX_RTPRIO,
        ),
    }
}

fn rt_throttling() -> Finding {
    match read_trimmed("/proc/sys/kernel/sched_rt_runtime_us").and_then(|s| s.parse::<i64>().ok()) {
        Some(-1) => warn(
            "rt_throttling",
            "real-time throttling is off (sched_rt_runtime_us = -1): a runaway SCHED_FIFO \
             thread can take a core for good",
            "echo 950000 | sudo tee /proc/sys/kernel/sched_rt_runtime_us (the default)",
        ),
        Some(us) => ok(
            "rt_throttling",
            format!(
                "real-time threads may take {:.0} % of each second (sched_rt_runtime_us {us})",
                us as f64 / 1e4
            ),
        ),
        None => ok("rt_throttling", "no sched_rt_runtime_us exposed"),
    }
}

/// Autogroup scheduling gives each session (an ssh login, a service) an equal share of
/// the CPUs whatever the nice values inside it: a build started from another login took
/// half the machine from a practice at nice 0 here, and its stale states ended the run.
fn autogroup() -> Finding {
    autogroup_finding(read_trimmed("/proc/sys/kernel/sched_autogroup_enabled").as_deref())
}

fn autogroup_finding(enabled: Option<&str>) -> Finding {
    match enabled {
        Some("1") => warn(
            "autogroup",
            "autogroup scheduling is on: work started from another login (a build) shares the              CPUs equally with handful, whatever its nice; the retrainer and a simulated robot              can be starved (--rt keeps only the loop apart)",
            "echo 0 | sudo tee /proc/sys/kernel/sched_autogroup_enabled              (kernel.sched_autogroup_enabled = 0 in /etc/sysctl.d/ to keep it)",
        ),
        Some(_) => ok(
            "autogroup",
            "autogroup scheduling is off: nice means what it says",
        ),
        None => ok("autogroup", "no autogroup scheduling in this kernel"),
    }
}

fn memlock() -> Finding {
    let limit = match realtime::memlock_limit() {
        None => "unlimited".to_owned(),
        Some(b) => format!("{} KiB", b / 1024),
    };
    match realtime::memlock_refusal() {
        None => ok(
            "memlock",
            format!(
                "memory can be locked (RLIMIT_MEMLOCK {limit}{})",
                if realtime::has_cap_ipc_lock() {
                    ", CAP_IPC_LOCK"
                } else {
                    ""
                }
            ),
        ),
        Some(reason) => warn(
            "memlock",
            format!("{reason}; `--rt` runs without locking memory"),
            realtime::FIX_MEMLOCK,
        ),
    }
}

fn cpus(rt_cpu: Option<usize>) -> Vec<Finding> {
    let allowed = match realtime::allowed_cpus() {
        Ok(a) => a,
        Err(e) => {
            return vec![fail(
                "cpus",
                e.to_string(),
                "report this: the kernel refused",
            )];
        }
    };
    let config = RealtimeConfig {
        enabled: true,
        cpu: rt_cpu,
        ..Default::default()
    };
    let loop_cpu = config.loop_cpu(&allowed);
    let cpus = match (rt_cpu, loop_cpu) {
        (Some(cpu), _) if !allowed.contains(cpu) => fail(
            "cpus",
            format!("--rt-cpu {cpu}: this process may use CPUs {allowed} only"),
            format!("pick one of {allowed}"),
        ),
        (_, None) => warn(
            "cpus",
            format!("one CPU ({allowed}): the loop cannot have a core of its own"),
            "a board with two cores or more, or a cgroup/cpuset that gives handful two",
        ),
        (_, Some(cpu)) => ok(
            "cpus",
            format!(
                "CPUs {allowed}: the loop on CPU {cpu}, the rest on {}",
                allowed.without(cpu)
            ),
        ),
    };
    let isolated = read_trimmed("/sys/devices/system/cpu/isolated")
        .and_then(|s| CpuSet::parse_list(&s))
        .unwrap_or_default();
    let isolation = match loop_cpu {
        None => ok("isolated_cores", format!("isolated CPUs: {isolated}")),
        Some(cpu) if isolated.contains(cpu) => ok(
            "isolated_cores",
            format!("CPU {cpu} is isolated from the scheduler (isolated: {isolated})"),
        ),
        Some(cpu) if !isolated.is_empty() => warn(
            "isolated_cores",
            format!("CPUs {isolated} are isolated but the loop would run on CPU {cpu}"),
            format!(
                "pass --rt-cpu {} to handful run",
                isolated.last().unwrap_or(cpu)
            ),
        ),
        Some(cpu) => warn(
            "isolated_cores",
            format!(
                "no CPU is isolated: other processes and kernel work share CPU {cpu} with \
                 the loop"
            ),
            format!(
                "add `isolcpus={cpu} nohz_full={cpu} rcu_nocbs={cpu}` to the kernel command line \
                 (GRUB_CMDLINE_LINUX in /etc/default/grub, or the board's cmdline.txt) and \
                 reboot; handful then puts its loop there (--rt-cpu {cpu})"
            ),
        ),
    };
    vec![cpus, isolation]
}

fn cpu_governor() -> Finding {
    let Ok(allowed) = realtime::allowed_cpus() else {
        return ok("cpu_governor", "CPUs not readable");
    };
    let governors: Vec<(usize, String)> = allowed
        .cpus()
        .iter()
        .filter_map(|&cpu| {
            read_trimmed(format!(
                "/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor"
            ))
            .map(|g| (cpu, g))
        })
        .collect();
    if governors.is_empty() {
        return ok(
            "cpu_governor",
            "no CPU frequency scaling exposed (a fixed clock, or a virtual machine)",
        );
    }
    let slow: Vec<String> = governors
        .iter()
        .filter(|(_, g)| g != "performance")
        .map(|(cpu, g)| format!("cpu{cpu} {g}"))
        .collect();
    if slow.is_empty() {
        ok("cpu_governor", "every CPU runs the `performance` governor")
    } else {
        warn(
            "cpu_governor",
            format!(
                "frequency scaling can slow a tick while the clock ramps up: {}",
                slow.join(", ")
            ),
            "echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor \
             (at every boot: a oneshot unit, or `cpupower frequency-set -g performance`)",
        )
    }
}

fn serial_port(port: Option<&Path>, calib_ok: bool) -> Finding {
    let Some(port) = port else {
        return ok(
            "serial_port",
            if calib_ok {
                "the calibration's port is `sim`: the simulated robot, no serial port"
            } else {
                "no port (no --port and no readable calibration)"
            },
        );
    };
    let meta = match std::fs::metadata(port) {
        Ok(m) => m,
        Err(e) => {
            return fail(
                "serial_port",
                format!("{}: {e}", port.display()),
                "plug the robot in; `ls -l /dev/serial/by-id/` names its port (a stable name): \
                 put it in the calibration's [link] port, or pass --port",
            );
        }
    };
    if !meta.file_type().is_char_device() {
        return fail(
            "serial_port",
            format!("{} is not a character device", port.display()),
            "point --port (or [link] port) at the robot's tty (/dev/ttyUSB0, /dev/ttyACM0, \
             /dev/serial/by-id/...)",
        );
    }
    let group = group_name(meta.gid()).unwrap_or_else(|| meta.gid().to_string());
    if accessible(port) {
        ok(
            "serial_port",
            format!(
                "{} readable and writable (group {group}, mode {:o})",
                port.display(),
                meta.mode() & 0o777
            ),
        )
    } else {
        fail(
            "serial_port",
            format!(
                "{} is not readable and writable by this user (group {group}, mode {:o})",
                port.display(),
                meta.mode() & 0o777
            ),
            format!(
                "sudo usermod -aG {group} $USER and log in again (the systemd unit: \
                 SupplementaryGroups={group})"
            ),
        )
    }
}

fn accessible(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c_path` is a valid C string; access only reads it.
    unsafe { libc::access(c_path.as_ptr(), libc::R_OK | libc::W_OK) == 0 }
}

/// Names of the groups in `/etc/group` text, by gid.
pub fn parse_group_file(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let gid = fields.nth(1)?.parse().ok()?;
            (!name.is_empty()).then(|| (name.to_owned(), gid))
        })
        .collect()
}

fn groups() -> Vec<(String, u32)> {
    parse_group_file(&std::fs::read_to_string("/etc/group").unwrap_or_default())
}

fn group_name(gid: u32) -> Option<String> {
    groups()
        .into_iter()
        .find(|(_, g)| *g == gid)
        .map(|(n, _)| n)
}

fn process_groups() -> Vec<u32> {
    // SAFETY: a first call with size 0 returns the count; the second fills a buffer of it.
    unsafe {
        let n = libc::getgroups(0, std::ptr::null_mut());
        if n <= 0 {
            return vec![libc::getegid()];
        }
        let mut gids = vec![0 as libc::gid_t; n as usize];
        let n = libc::getgroups(n, gids.as_mut_ptr());
        gids.truncate(n.max(0) as usize);
        gids.push(libc::getegid());
        gids
    }
}

fn dialout(real_port: bool) -> Finding {
    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return ok(
            "dialout",
            "running as root: every serial port is open to it",
        );
    }
    let Some(gid) = groups()
        .into_iter()
        .find(|(n, _)| n == "dialout")
        .map(|(_, g)| g)
    else {
        return ok(
            "dialout",
            "no `dialout` group on this system (serial_port says whether the port opens)",
        );
    };
    if process_groups().contains(&gid) {
        ok("dialout", "this user is in the `dialout` group")
    } else {
        let message = "this user is not in the `dialout` group, which owns serial ports on Debian";
        let fix = "sudo usermod -aG dialout $USER and log in again (the systemd unit: \
                   SupplementaryGroups=dialout)";
        if real_port {
            warn("dialout", message, fix)
        } else {
            warn(
                "dialout",
                format!("{message} (not needed for the simulator)"),
                fix,
            )
        }
    }
}

fn onnxruntime() -> Finding {
    let env = std::env::var_os(crate::model::DYLIB_ENV_VAR);
    let exe = std::env::current_exe().ok();
    let located = crate::model::locate_runtime(env.as_deref(), exe.as_deref())
        .and_then(|path| crate::model::runtime_version(&path).map(|v| (path, v)));
    let fix = crate::model::RUNTIME_FIX;
    match located {
        Ok((path, version)) if version.starts_with(crate::model::ACCEPTED_VERSION_PREFIX) => ok(
            "onnxruntime",
            format!(
                "ONNX Runtime {version} at {} ({})",
                path.display(),
                std::env::consts::ARCH
            ),
        ),
        Ok((path, version)) => fail(
            "onnxruntime",
            format!(
                "ONNX Runtime at {} is version {version}; this build needs {}",
                path.display(),
                crate::model::EXPECTED_ORT_VERSION
            ),
            fix,
        ),
        Err(e) => fail("onnxruntime", strip_fix(&e.to_string()), fix),
    }
}

/// An error message without its own "; to fix: ..." (the finding has a fix field).
fn strip_fix(message: &str) -> String {
    message
        .split("; to fix:")
        .next()
        .unwrap_or(message)
        .to_owned()
}

fn model(path: Option<&Path>, calib: Option<&Calibration>, runtime_ok: bool) -> Finding {
    let Some(path) = path else {
        return ok(
            "model",
            "no --model given: the learning job trains its own (pass --model M.onnx to check \
             the one `--controller mpc` would load)",
        );
    };
    let train_one = "train one: `handful run` writes runs/<name>/best.onnx (and every version \
                     to runs/<name>/models/); pass its path with --model";
    if !path.is_file() {
        return fail(
            "model",
            format!("model {} not found", path.display()),
            train_one,
        );
    }
    let Some(calib) = calib else {
        return fail(
            "model",
            format!(
                "model {} not checked: the calibration did not load",
                path.display()
            ),
            "fix the calibration first (see `calibration`)",
        );
    };
    let expect = crate::model::ModelExpectation::from_calibration(calib);
    let for_this_robot = "a model trained for this calibration (same states, actions and \
                          control period; the contract is models/README.md), or the calibration \
                          it was trained for";
    if runtime_ok {
        match crate::model::Ensemble::load(path, &expect) {
            Ok(model) => {
                let info = model.info();
                ok(
                    "model",
                    format!(
                        "{}: {} members, {} states, {} actions, {} µs period, sha256 {}",
                        path.display(),
                        info.ensemble_size,
                        info.state_dim,
                        info.action_dim,
                        info.control_period_us,
                        &info.sha256[..12.min(info.sha256.len())]
                    ),
                )
            }
            Err(e) => fail(
                "model",
                format!("{}: {}", path.display(), strip_fix(&e.to_string())),
                for_this_robot,
            ),
        }
    } else {
        let checked = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                crate::model::check_onnx_bytes(&bytes, &expect).map_err(|e| e.to_string())
            });
        match checked {
            Ok(info) => warn(
                "model",
                format!(
                    "{}: {} members, the contract holds (read without ONNX Runtime, which did \
                     not load)",
                    path.display(),
                    info.ensemble_size
                ),
                "install ONNX Runtime (see `onnxruntime`); doctor then loads the model for real",
            ),
            Err(e) => fail("model", format!("{}: {e}", path.display()), for_this_robot),
        }
    }
}

/// Free bytes for an unprivileged user at `path`'s nearest existing ancestor, and that
/// ancestor.
fn free_space(path: &Path) -> Option<(u64, PathBuf)> {
    let absolute = std::path::absolute(path).ok()?;
    let existing = absolute.ancestors().find(|p| p.exists())?.to_path_buf();
    let c_path = CString::new(existing.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain data; all-zero is a valid value to overwrite.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a valid C string and `stat` a writable statvfs.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some((stat.f_bavail as u64 * stat.f_frsize as u64, existing))
}

/// How `free` bytes stand against the thresholds (pure: tested with made-up sizes).
pub fn disk_status(free: u64) -> Status {
    if free < DISK_FAIL_BYTES {
        Status::Fail
    } else if free < DISK_WARN_BYTES {
        Status::Warn
    } else {
        Status::Ok
    }
}

fn disk(check: &'static str, path: &Path, what: &str) -> Finding {
    let Some((free, at)) = free_space(path) else {
        return fail(
            check,
            format!("cannot read the free space for {}", path.display()),
            format!("make {} (or a parent) readable", path.display()),
        );
    };
    let gib = free as f64 / (1u64 << 30) as f64;
    let hours = free as f64 / RECORDING_BYTES_PER_S / 3600.0;
    let message = format!(
        "{gib:.1} GiB free for {what} at {} ({}; about {hours:.0} h of a saved viewer \
         session at 0.6 MB/s)",
        path.display(),
        at.display()
    );
    if !accessible_dir(&at) {
        return fail(
            check,
            format!("{message}; {} is not writable by this user", at.display()),
            "chown the directory to the user that runs handful, or point it elsewhere",
        );
    }
    let fix = "free space, or put datasets (--dataset) and runs (--out) on a larger disk; for \
               runs of hours, --no-viz";
    match disk_status(free) {
        Status::Ok => ok(check, message),
        Status::Warn => warn(check, format!("{message}: less than a day"), fix),
        Status::Fail => fail(check, format!("{message}: under 1 GiB"), fix),
    }
}

fn accessible_dir(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c_path` is a valid C string; access only reads it.
    unsafe { libc::access(c_path.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autogroup_scheduling_is_a_warning_with_the_sysctl_that_turns_it_off() {
        let on = autogroup_finding(Some("1"));
        assert_eq!(on.status, Status::Warn);
        assert!(
            on.fix
                .as_deref()
                .unwrap()
                .contains("sched_autogroup_enabled")
        );
        assert_eq!(autogroup_finding(Some("0")).status, Status::Ok);
        assert_eq!(autogroup_finding(None).status, Status::Ok);
    }

    #[test]
    fn group_files_give_names_by_gid() {
        let groups = parse_group_file("root:x:0:\ndialout:x:20:ann,bob\n\nbroken\nx::y:\n");
        assert_eq!(
            groups,
            vec![("root".to_owned(), 0), ("dialout".to_owned(), 20)]
        );
    }

    #[test]
    fn disk_space_fails_under_a_gib_and_warns_under_a_day_of_recording() {
        for (free, status) in [
            (0, Status::Fail),
            ((1 << 30) - 1, Status::Fail),
            (1 << 30, Status::Warn),
            ((10 << 30) - 1, Status::Warn),
            (10 << 30, Status::Ok),
        ] {
            assert_eq!(disk_status(free), status, "{free}");
        }
    }

    #[test]
    fn the_exit_code_is_one_on_a_failure_and_with_strict_on_a_warning() {
        let report = |statuses: &[Status]| {
            DoctorReport::new(
                statuses
                    .iter()
                    .map(|&status| Finding {
                        check: "x",
                        status,
                        message: String::new(),
                        fix: None,
                    })
                    .collect(),
            )
        };
        let check = |statuses: &[Status], lenient: u8, strict: u8| {
            let r = report(statuses);
            assert_eq!(r.exit_code(false), lenient, "{statuses:?}");
            assert_eq!(r.exit_code(true), strict, "{statuses:?}");
        };
        check(&[], 0, 0);
        check(&[Status::Ok, Status::Ok], 0, 0);
        check(&[Status::Ok, Status::Warn], 0, 1);
        check(&[Status::Warn, Status::Fail], 1, 1);
    }

    #[test]
    fn a_fix_is_not_repeated_in_the_message() {
        assert_eq!(strip_fix("not found; to fix: run x"), "not found");
        assert_eq!(strip_fix("plain"), "plain");
    }
}
