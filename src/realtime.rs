//! The control loop's share of the machine: SCHED_FIFO at a configured priority, memory
//! locked (`mlockall`), and a core of its own (`--rt`, `--rt-priority`, `--rt-cpu`).
//!
//! Where the threads go when the set-up is asked for ([`RealtimeConfig::enabled`]):
//!
//! | thread | policy | CPUs |
//! | --- | --- | --- |
//! | `handful-control` | SCHED_FIFO `priority` | `cpu` only |
//! | `handful-link-rx`, `handful-link-tx` (the loop's serial I/O) | SCHED_FIFO `priority − 1` | `cpu` only |
//! | every other thread (main, retrainer, viewer, ...) | unchanged | every allowed CPU but `cpu` |
//!
//! Threads started later inherit their parent's CPUs, so a retrainer or viewer started
//! after the loop stays off its core too. Not permitted (no `CAP_SYS_NICE` and
//! `RLIMIT_RTPRIO` below the priority; no `CAP_IPC_LOCK` and a finite `RLIMIT_MEMLOCK`)
//! is a warning that says how to allow it, and the loop runs with normal scheduling;
//! with [`RealtimeConfig::require`] (`--require-rt`) it is an error, raised before the
//! robot is armed. `mlockall(MCL_FUTURE)` under a finite memory-lock limit would make
//! every allocation past the limit fail (an abort), so memory is locked only when the
//! limit cannot be reached.
//!
//! Runs on the thread that starts the loop and, once, on the control thread before its
//! first tick: never on a tick. Linux only (the project's target); the same calls on
//! x86_64 and aarch64.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// `CAP_IPC_LOCK` and `CAP_SYS_NICE` (linux/capability.h).
const CAP_IPC_LOCK: u32 = 14;
const CAP_SYS_NICE: u32 = 23;

/// Thread names (as `/proc/self/task/*/comm` shows them) that do the loop's serial I/O.
const LOOP_IO_THREADS: [&str; 2] = ["handful-link-rx", "handful-link-tx"];

/// The default SCHED_FIFO priority: above the kernel's threaded interrupts (50 on
/// PREEMPT_RT), below its watchdogs and migration threads (99).
pub const DEFAULT_PRIORITY: i32 = 80;

/// What the loop asks of the machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RealtimeConfig {
    /// Ask at all (`--rt`). Off: nothing here touches the process.
    pub enabled: bool,
    /// SCHED_FIFO priority of the control thread, 2 to 99 (the loop's I/O threads run one
    /// below it).
    pub priority: i32,
    /// The loop's core; `None`: the last CPU the process may use, when it may use two or
    /// more (one CPU: no pinning).
    pub cpu: Option<usize>,
    /// `mlockall(MCL_CURRENT | MCL_FUTURE)` (`--rt-no-mlock` turns it off).
    pub lock_memory: bool,
    /// Refuse to run without SCHED_FIFO and the locked memory asked for (`--require-rt`).
    pub require: bool,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            priority: DEFAULT_PRIORITY,
            cpu: None,
            lock_memory: true,
            require: false,
        }
    }
}

/// The command-line flags of the set-up (`handful run`, `handful record`, `handful bench
/// rt`'s runs), flattened into each.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct RealtimeArgs {
    /// Real-time set-up of the control thread: SCHED_FIFO, memory locked, a core of its
    /// own (the loop's serial I/O beside it, every other thread elsewhere). Refused or not
    /// permitted: a warning, and the loop runs with normal scheduling (`handful doctor`
    /// says what is missing).
    #[arg(long, conflicts_with = "lockstep")]
    pub rt: bool,
    /// SCHED_FIFO priority of the control thread (2-99; the link's threads one below).
    #[arg(long, value_name = "P", default_value_t = DEFAULT_PRIORITY, requires = "rt")]
    pub rt_priority: i32,
    /// The loop's CPU (default: the last CPU this process may use, if it may use two).
    #[arg(long, value_name = "CPU", requires = "rt")]
    pub rt_cpu: Option<usize>,
    /// Do not lock memory (mlockall).
    #[arg(long, requires = "rt")]
    pub rt_no_mlock: bool,
    /// Fail instead of warning when SCHED_FIFO or memory locking is not permitted.
    #[arg(long, requires = "rt")]
    pub require_rt: bool,
}

impl RealtimeArgs {
    pub fn to_config(&self) -> Result<RealtimeConfig, RealtimeError> {
        let config = RealtimeConfig {
            enabled: self.rt,
            priority: self.rt_priority,
            cpu: self.rt_cpu,
            lock_memory: !self.rt_no_mlock,
            require: self.require_rt,
        };
        config.validate()?;
        Ok(config)
    }
}

impl RealtimeConfig {
    /// Checks what can be checked without touching the process: the priority's range and
    /// that the CPU is one this process may use.
    pub fn validate(&self) -> Result<(), RealtimeError> {
        if !self.enabled {
            return Ok(());
        }
        if !(2..=99).contains(&self.priority) {
            return Err(RealtimeError::Priority(self.priority));
        }
        if let Some(cpu) = self.cpu {
            let allowed = allowed_cpus()?;
            if !allowed.contains(cpu) {
                return Err(RealtimeError::Cpu { cpu, allowed });
            }
        }
        Ok(())
    }

    /// The loop's CPU: the configured one, or the last allowed one when there are two or
    /// more (`None`: no pinning).
    pub fn loop_cpu(&self, allowed: &CpuSet) -> Option<usize> {
        self.cpu
            .or_else(|| (allowed.len() >= 2).then(|| allowed.last()).flatten())
    }
}

/// Why the set-up was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RealtimeError {
    #[error("--rt-priority {0}: expected 2 to 99 (SCHED_FIFO; the link's threads run one below)")]
    Priority(i32),
    #[error("--rt-cpu {cpu}: this process may use CPUs {allowed} only")]
    Cpu { cpu: usize, allowed: CpuSet },
    #[error("SCHED_FIFO at priority {priority} refused: {reason}; to fix: {FIX_RTPRIO}")]
    Scheduling { priority: i32, reason: String },
    #[error("locking memory (mlockall) refused: {reason}; to fix: {FIX_MEMLOCK}")]
    MemoryLock { reason: String },
    #[error("pinning the control thread to CPU {cpu} failed: {reason}")]
    Affinity { cpu: usize, reason: String },
    #[error("reading this process's CPUs: {0}")]
    Cpus(String),
    #[error("placing the simulated robot: {0}")]
    Placement(String),
}

/// How to allow SCHED_FIFO, for messages and `handful doctor`.
pub const FIX_RTPRIO: &str = "allow real-time priorities for the user that runs handful: \
LimitRTPRIO=99 in its systemd unit (deploy/handful.service), or a line `<user> - rtprio 99` in \
/etc/security/limits.d/handful.conf (log in again), or CAP_SYS_NICE; in a container, \
--cap-add=SYS_NICE or --ulimit rtprio=99";

/// How to allow `mlockall`, likewise.
pub const FIX_MEMLOCK: &str = "allow locking memory: LimitMEMLOCK=infinity in the systemd \
unit (deploy/handful.service), or `<user> - memlock unlimited` in \
/etc/security/limits.d/handful.conf, or CAP_IPC_LOCK; or run without it (--rt-no-mlock)";

/// What the set-up achieved, reported in the loop's report (`summary.json`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealtimeStatus {
    /// `--rt` was asked for.
    pub requested: bool,
    /// The control thread's SCHED_FIFO priority (`None`: normal scheduling).
    pub fifo_priority: Option<i32>,
    /// The CPU the control thread is pinned to (`None`: any).
    pub cpu: Option<usize>,
    /// `mlockall(MCL_CURRENT | MCL_FUTURE)` is in force.
    pub memory_locked: bool,
    /// The loop's I/O threads put on its CPU with a SCHED_FIFO priority one below.
    pub io_threads: u32,
    /// Other threads moved off its CPU (threads started later follow their parent).
    pub threads_moved: u32,
}

/// A set of CPU numbers (`cpu_set_t` as a sorted list).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuSet(Vec<usize>);

impl CpuSet {
    pub fn from_cpus(cpus: impl IntoIterator<Item = usize>) -> Self {
        let mut cpus: Vec<usize> = cpus.into_iter().collect();
        cpus.sort_unstable();
        cpus.dedup();
        Self(cpus)
    }

    pub fn contains(&self, cpu: usize) -> bool {
        self.0.binary_search(&cpu).is_ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn last(&self) -> Option<usize> {
        self.0.last().copied()
    }

    pub fn cpus(&self) -> &[usize] {
        &self.0
    }

    /// Every CPU of `self` but `cpu`.
    pub fn without(&self, cpu: usize) -> Self {
        Self(self.0.iter().copied().filter(|&c| c != cpu).collect())
    }

    /// The kernel's list syntax (`0-3,6`), as in `/sys/devices/system/cpu/isolated`.
    pub fn parse_list(text: &str) -> Option<Self> {
        let mut cpus = Vec::new();
        for part in text.trim().split(',').filter(|p| !p.is_empty()) {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                    if b < a || b - a > 4096 {
                        return None;
                    }
                    cpus.extend(a..=b);
                }
                None => cpus.push(part.trim().parse().ok()?),
            }
        }
        Some(Self::from_cpus(cpus))
    }

    fn to_libc(&self) -> libc::cpu_set_t {
        // SAFETY: cpu_set_t is plain bits; all-zero is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &cpu in &self.0 {
            if cpu < libc::CPU_SETSIZE as usize {
                // SAFETY: `cpu` is within the set's size (checked above).
                unsafe { libc::CPU_SET(cpu, &mut set) };
            }
        }
        set
    }

    fn from_libc(set: &libc::cpu_set_t) -> Self {
        Self(
            (0..libc::CPU_SETSIZE as usize)
                // SAFETY: every `cpu` is below CPU_SETSIZE, within the set.
                .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, set) })
                .collect(),
        )
    }
}

impl fmt::Display for CpuSet {
    /// The kernel's list syntax: `0-3,6`; `none` for the empty set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let mut first = true;
        let mut i = 0;
        while i < self.0.len() {
            let start = self.0[i];
            let mut end = start;
            while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                i += 1;
                end = self.0[i];
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if end == start {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
            i += 1;
        }
        Ok(())
    }
}

/// The CPUs the calling thread may run on (`sched_getaffinity`).
pub fn allowed_cpus() -> Result<CpuSet, RealtimeError> {
    thread_cpus(0)
}

fn thread_cpus(tid: libc::pid_t) -> Result<CpuSet, RealtimeError> {
    // SAFETY: cpu_set_t is plain bits; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a writable cpu_set_t of the size passed.
    let rc =
        unsafe { libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(RealtimeError::Cpus(
            std::io::Error::last_os_error().to_string(),
        ));
    }
    Ok(CpuSet::from_libc(&set))
}

fn set_thread_cpus(tid: libc::pid_t, cpus: &CpuSet) -> std::io::Result<()> {
    let set = cpus.to_libc();
    // SAFETY: `set` is a valid cpu_set_t of the size passed; the call only reads it.
    let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn set_fifo(tid: libc::pid_t, priority: i32) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid sched_param; the call only reads it. `tid` 0 is the
    // calling thread (Linux: sched_setscheduler acts on a thread id).
    let rc = unsafe { libc::sched_setscheduler(tid, libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The calling thread's kernel id.
pub fn current_tid() -> libc::pid_t {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::pid_t }
}

/// A resource limit's soft value (`None`: unlimited).
pub fn soft_limit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    let rc = unsafe { libc::getrlimit(resource, &mut limit) };
    if rc != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is 32 bits on 32-bit targets
    Some(limit.rlim_cur as u64)
}

/// `RLIMIT_RTPRIO`'s soft value (`None`: unlimited).
pub fn rtprio_limit() -> Option<u64> {
    soft_limit(libc::RLIMIT_RTPRIO)
}

/// `RLIMIT_MEMLOCK`'s soft value in bytes (`None`: unlimited).
pub fn memlock_limit() -> Option<u64> {
    soft_limit(libc::RLIMIT_MEMLOCK)
}

/// The effective capabilities of this process (`CapEff` of `/proc/self/status`).
pub fn effective_capabilities() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| parse_cap_eff(&status))
        .unwrap_or(0)
}

/// `CapEff:` of a `/proc/<pid>/status` text.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

pub fn has_cap_sys_nice() -> bool {
    effective_capabilities() & (1 << CAP_SYS_NICE) != 0
}

pub fn has_cap_ipc_lock() -> bool {
    effective_capabilities() & (1 << CAP_IPC_LOCK) != 0
}

/// Why SCHED_FIFO at `priority` would be refused, from the limit and the capability
/// (`None`: permitted by them; the kernel, a cgroup or a seccomp filter may still say no,
/// which [`probe_fifo`] finds out).
pub fn fifo_refusal(priority: i32) -> Option<String> {
    if has_cap_sys_nice() {
        return None;
    }
    match rtprio_limit() {
        None => None,
        Some(limit) if limit >= priority as u64 => None,
        Some(limit) => Some(format!(
            "RLIMIT_RTPRIO is {limit} (priority {priority} needs {priority}) and the process \
             has no CAP_SYS_NICE"
        )),
    }
}

/// Why `mlockall(MCL_CURRENT | MCL_FUTURE)` must not be done (`None`: it may): a finite
/// limit without `CAP_IPC_LOCK` makes allocations past it fail.
pub fn memlock_refusal() -> Option<String> {
    if has_cap_ipc_lock() {
        return None;
    }
    memlock_limit().map(|bytes| {
        format!(
            "RLIMIT_MEMLOCK is {} KiB and the process has no CAP_IPC_LOCK: with all future \
             memory locked, every allocation past the limit would fail",
            bytes / 1024
        )
    })
}

/// Asks the kernel: does a scratch thread get SCHED_FIFO at `priority`? The thread ends
/// at once; nothing else changes.
pub fn probe_fifo(priority: i32) -> Result<(), String> {
    let thread = crate::thread::spawn_named("handful-rt-probe", move || {
        set_fifo(0, priority).map_err(|e| e.to_string())
    })
    .map_err(|e| format!("starting a probe thread: {e}"))?;
    thread
        .join()
        .unwrap_or_else(|_| Err("the probe thread panicked".into()))
}

/// Before the robot is touched, with [`RealtimeConfig::require`]: refuses what the set-up
/// would be refused later (the configuration, SCHED_FIFO, memory locking).
pub fn preflight(config: &RealtimeConfig) -> Result<(), RealtimeError> {
    config.validate()?;
    if !config.enabled || !config.require {
        return Ok(());
    }
    probe_fifo(config.priority).map_err(|reason| RealtimeError::Scheduling {
        priority: config.priority,
        reason: fifo_refusal(config.priority).unwrap_or(reason),
    })?;
    if config.lock_memory
        && let Some(reason) = memlock_refusal()
    {
        return Err(RealtimeError::MemoryLock { reason });
    }
    Ok(())
}

/// The process-wide part, on the thread that starts the loop, before it: locks memory
/// (when asked and safe). Returns whether memory is locked; a refusal is an error only
/// with `require` (otherwise a warning is logged).
pub fn lock_memory(config: &RealtimeConfig) -> Result<bool, RealtimeError> {
    if !config.enabled || !config.lock_memory {
        return Ok(false);
    }
    let refused = match memlock_refusal() {
        Some(reason) => Err(reason),
        // SAFETY: mlockall takes flags only.
        None => match unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error().to_string()),
        },
    };
    match refused {
        Ok(()) => Ok(true),
        Err(reason) if config.require => Err(RealtimeError::MemoryLock { reason }),
        Err(reason) => {
            tracing::warn!(
                "memory not locked: {reason}; the loop may page-fault under memory pressure; \
                 to fix: {FIX_MEMLOCK}"
            );
            Ok(false)
        }
    }
}

/// What the control thread got when it set itself up ([`enter_control_thread`]).
#[derive(Clone, Debug)]
pub struct ControlThreadSetup {
    pub tid: libc::pid_t,
    pub cpu: Option<usize>,
    /// The CPUs every other thread goes to (`None`: not moved).
    pub others: Option<CpuSet>,
    pub fifo: Result<i32, String>,
}

/// On the control thread, before its first tick: its CPU, SCHED_FIFO, and a 1 ns timer
/// slack (the default 50 µs delays every wake-up of a thread with normal scheduling).
pub fn enter_control_thread(config: &RealtimeConfig) -> Result<ControlThreadSetup, RealtimeError> {
    let tid = current_tid();
    // SAFETY: PR_SET_TIMERSLACK takes an integer; it only affects the calling thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let allowed = allowed_cpus()?;
    let cpu = config.loop_cpu(&allowed);
    let others = cpu
        .map(|cpu| allowed.without(cpu))
        .filter(|others| !others.is_empty());
    // Pinning refused (a cpuset changed under us): an error only with `require`.
    let cpu = match cpu.map(|cpu| (cpu, set_thread_cpus(0, &CpuSet::from_cpus([cpu])))) {
        Some((cpu, Err(e))) if config.require => {
            return Err(RealtimeError::Affinity {
                cpu,
                reason: e.to_string(),
            });
        }
        Some((cpu, Err(e))) => {
            tracing::warn!("the control thread is not pinned: CPU {cpu} refused ({e})");
            None
        }
        Some((cpu, Ok(()))) => Some(cpu),
        None => None,
    };
    let others = cpu.and(others);
    let fifo = set_fifo(0, config.priority)
        .map(|()| config.priority)
        .map_err(|e| fifo_refusal(config.priority).unwrap_or_else(|| e.to_string()));
    Ok(ControlThreadSetup {
        tid,
        cpu,
        others,
        fifo,
    })
}

/// After the control thread set itself up, from the thread that started it: the loop's
/// I/O threads join it on its CPU one priority below, every other thread of the process
/// leaves that CPU. Returns (I/O threads set, threads moved). Failures on single threads
/// are logged, not fatal: the loop's own set-up is what matters.
pub fn place_other_threads(config: &RealtimeConfig, setup: &ControlThreadSetup) -> (u32, u32) {
    let Some(cpu) = setup.cpu else {
        return (0, 0);
    };
    let Ok(tids) = thread_ids("/proc/self/task") else {
        return (0, 0);
    };
    let (mut io, mut moved) = (0, 0);
    let fifo_ok = setup.fifo.is_ok();
    for tid in tids {
        if tid == setup.tid {
            continue;
        }
        let name =
            std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap_or_default();
        let result = if LOOP_IO_THREADS.contains(&name.trim()) {
            let placed = set_thread_cpus(tid, &CpuSet::from_cpus([cpu])).and_then(|()| {
                if fifo_ok {
                    set_fifo(tid, config.priority - 1)
                } else {
                    Ok(())
                }
            });
            io += u32::from(placed.is_ok());
            placed
        } else if let Some(others) = &setup.others {
            let placed = set_thread_cpus(tid, others);
            moved += u32::from(placed.is_ok());
            placed
        } else {
            Ok(())
        };
        if let Err(e) = result {
            tracing::warn!(
                tid,
                thread = name.trim(),
                "placing a thread for the loop: {e}"
            );
        }
    }
    (io, moved)
}

/// The thread ids listed in a `/proc/<pid>/task` directory.
fn thread_ids(dir: impl AsRef<Path>) -> std::io::Result<Vec<libc::pid_t>> {
    Ok(std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect())
}

/// SCHED_FIFO priority of the simulated robot's threads, below the loop's I/O threads.
pub const fn simulated_robot_priority(config: &RealtimeConfig) -> i32 {
    if config.priority > 3 {
        config.priority - 2
    } else {
        1
    }
}

/// Places every thread of process `pid`, the simulated robot handful started, as the
/// microcontroller it stands in for would be: never waiting behind the host's work. Off
/// the loop's CPU (there it waits behind the SCHED_FIFO planner) and SCHED_FIFO below
/// the loop's I/O threads (at normal priority, beside the retrainer, the classifier's
/// fits and the evaluator, its own loop overran 22 times in three minutes of a loaded
/// practice). Threads it starts later inherit the placement. Returns how many threads were placed (0: nothing to do); SCHED_FIFO
/// refused leaves the CPU placement and says so in the error.
pub fn place_simulated_robot(pid: u32, config: &RealtimeConfig) -> Result<u32, RealtimeError> {
    if !config.enabled {
        return Ok(0);
    }
    let allowed = allowed_cpus()?;
    let others = config
        .loop_cpu(&allowed)
        .map(|cpu| allowed.without(cpu))
        .filter(|others| !others.is_empty());
    let priority = simulated_robot_priority(config);
    let tids = thread_ids(format!("/proc/{pid}/task"))
        .map_err(|e| RealtimeError::Placement(format!("the threads of process {pid}: {e}")))?;
    let mut placed = 0;
    let mut fifo_refused = None;
    for tid in tids {
        if let Some(others) = &others {
            set_thread_cpus(tid, others).map_err(|e| {
                RealtimeError::Placement(format!("thread {tid} of process {pid}: {e}"))
            })?;
        }
        if let Err(e) = set_fifo(tid, priority) {
            fifo_refused.get_or_insert(e.to_string());
        }
        placed += 1;
    }
    match fifo_refused {
        Some(why) => Err(RealtimeError::Placement(format!(
            "SCHED_FIFO {priority} refused ({why})"
        ))),
        None => Ok(placed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_and_print_in_the_kernels_syntax() {
        let check = |text: &str, cpus: &[usize], shown: &str| {
            let set = CpuSet::parse_list(text).unwrap_or_else(|| panic!("{text:?}"));
            assert_eq!(set.cpus(), cpus, "{text:?}");
            assert_eq!(set.to_string(), shown, "{text:?}");
        };
        check("", &[], "none");
        check("\n", &[], "none");
        check("3", &[3], "3");
        check("0-3,6\n", &[0, 1, 2, 3, 6], "0-3,6");
        check("1,0,2", &[0, 1, 2], "0-2");
        check("0,2,4-5", &[0, 2, 4, 5], "0,2,4-5");
        for bad in ["x", "3-1", "1-", "0-100000"] {
            assert_eq!(CpuSet::parse_list(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_loop_takes_the_configured_cpu_or_the_last_of_two_or_more() {
        let config = |cpu| RealtimeConfig {
            enabled: true,
            cpu,
            ..Default::default()
        };
        let two = CpuSet::from_cpus([0, 1]);
        assert_eq!(config(None).loop_cpu(&two), Some(1));
        assert_eq!(config(Some(0)).loop_cpu(&two), Some(0));
        assert_eq!(config(None).loop_cpu(&CpuSet::from_cpus([2])), None);
        assert_eq!(two.without(1), CpuSet::from_cpus([0]));
    }

    #[test]
    fn priorities_outside_fifo_range_are_refused_and_nothing_is_checked_when_off() {
        for priority in [-1, 0, 1, 100] {
            let config = RealtimeConfig {
                enabled: true,
                priority,
                ..Default::default()
            };
            assert_eq!(config.validate(), Err(RealtimeError::Priority(priority)));
        }
        let off = RealtimeConfig {
            priority: 0,
            cpu: Some(100_000),
            ..Default::default()
        };
        assert_eq!(off.validate(), Ok(()));
        let bad_cpu = RealtimeConfig {
            enabled: true,
            cpu: Some(100_000),
            ..Default::default()
        };
        assert!(matches!(
            bad_cpu.validate(),
            Err(RealtimeError::Cpu { cpu: 100_000, .. })
        ));
    }

    #[test]
    fn capabilities_are_read_from_the_status_file() {
        let status = "Name:\thandful\nCapInh:\t0000000000000000\nCapEff:\t0000000000804000\n";
        let caps = parse_cap_eff(status).unwrap();
        assert_ne!(caps & (1 << CAP_IPC_LOCK), 0);
        assert_ne!(caps & (1 << CAP_SYS_NICE), 0);
        assert_eq!(parse_cap_eff("Name:\tx\n"), None);
    }
}
