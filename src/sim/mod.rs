//! The simulated robot: the firmware logic crate and a physics plant behind a
//! pseudo-terminal, so a controller opens it exactly like a real serial port.
//!
//! The host opens a stable symlink ([`SimOptions::link`], `/tmp/handful-sim-<plant>` by
//! default) to the pty's slave. Two clock modes: real time (the firmware ticks on the
//! real clock at absolute deadlines, `realtime.rs`) and lockstep (one control period per
//! Command, sim time is the firmware clock, `lockstep.rs`). Faults can be injected on
//! the wire (drops, bit flips, line noise on every byte both ways, latency spikes, a
//! mute transmitter, no heartbeats, stalls, unplugging) and in the sensors (noise,
//! latency), all from one seeded RNG and on the firmware clock. `--trace` writes what
//! the robot saw and did to a CSV file (`trace.rs`), to measure a fault's effect at the
//! actuator.
//!
//! Entry points: [`run`] (blocking), [`spawn`] (a named thread, [`SimHandle`]),
//! [`spawn_process`] (a child `handful sim` process, [`SimProcess`]), [`spawn_command`]
//! (any other simulator, from a shell command: `--sim-cmd`) and [`run_cli`] (the
//! binary's `sim` command).
//!
//! Invariants: the simulator never blocks on the host (a full pty drops frames, counted
//! in [`SimReport`]); it only touches the pty, its link and the plant; it shares every
//! safety rule with real robots because it runs the same `handful_firmware::Firmware`.

mod config;
mod engine;
mod fault;
mod lockstep;
mod operator;
mod options;
mod process;
mod pty;
mod realtime;
mod sensor;
mod trace;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use config::{firmware_config, firmware_version};
pub use operator::OperatorScript;
pub use options::{SimArgs, SimOptions, Spikes, Window};
pub use process::{SimProcess, run_cli, spawn_command, spawn_command_waiting, spawn_process};

use crate::plant::Plant;
use crate::thread::{JoinOnDrop, spawn_named};

/// What can stop the simulator from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid option {name} = {value:?}: expected {expected}")]
    InvalidOption {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("the plant's spec cannot be announced: {field} = {value:?}, expected {expected}")]
    PlantSpec {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("creating the pseudo-terminal failed at {step}")]
    Pty {
        step: &'static str,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("pty {op} failed")]
    PtyIo {
        op: &'static str,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("link path {} is taken by {found}; the simulator only replaces its own links into /dev/pts", path.display())]
    LinkPathTaken { path: PathBuf, found: String },
    #[error("cannot create the link {}", path.display())]
    Link {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the simulator thread")]
    Thread(#[source] std::io::Error),
    #[error("the simulator thread panicked")]
    Panicked,
    #[error("cannot start {}", exe.display())]
    Spawn {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the simulator process exited ({status}) before creating {}", link.display())]
    ProcessExited {
        link: PathBuf,
        status: std::process::ExitStatus,
    },
    #[error("the simulator process did not create {} within {waited_ms} ms", link.display())]
    LinkTimeout { link: PathBuf, waited_ms: u64 },
    #[error("cannot start the simulator command `{command}` (/bin/sh)")]
    CommandSpawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the simulator command `{command}` exited ({status}) before creating its link {}; its own message is above", link.display())]
    CommandExited {
        command: String,
        link: PathBuf,
        status: std::process::ExitStatus,
    },
    #[error("the simulator command `{command}` did not create its link {} within {waited_ms} ms (it is given `--link PATH`, and must make PATH a symlink to its pty)", link.display())]
    CommandLinkTimeout {
        command: String,
        link: PathBuf,
        waited_ms: u64,
    },
    #[error("controlling simulator process {pid} failed")]
    ProcessControl {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("signal handling setup failed")]
    Signal(#[source] nix::errno::Errno),
    #[error("cannot create the trace file {}", path.display())]
    Trace {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the simulator did, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    /// Plant steps (control periods simulated).
    pub steps: u64,
    /// Frames written to the pty (corrupted ones included).
    pub frames_sent: u64,
    /// Frames dropped by fault injection.
    pub frames_dropped: u64,
    /// Frames with one bit flipped or bytes corrupted by fault injection (and still sent).
    pub frames_corrupted: u64,
    /// Bytes the line noise corrupted, outgoing and incoming.
    pub bytes_corrupted: u64,
    pub bytes_corrupted_rx: u64,
    /// Frames not sent while mute (or, heartbeats, after they stopped).
    pub frames_muted: u64,
    /// Frames held back by a latency spike (sent when it ended).
    pub frames_held: u64,
    /// Frames lost because a spike's queue was full.
    pub frames_lost_hold: u64,
    pub latency_spikes: u64,
    /// Frames lost because the pty buffer was full (the host was not reading).
    pub frames_lost_full: u64,
    /// Frames lost while disconnected.
    pub frames_lost_offline: u64,
    /// Frames the firmware lost to a full outbox.
    pub frames_lost_outbox: u64,
    /// Frames that failed to encode (a bug if ever non-zero).
    pub encode_errors: u64,
    /// Valid frames received from the host.
    pub frames_received: u64,
    /// Received byte runs that did not decode.
    pub decode_errors: u64,
    /// Plant resets: Reset frames and accepted ResetTo frames.
    pub resets: u64,
    /// Control periods skipped because the loop was late (real time only).
    pub overruns: u64,
    pub stalls: u64,
    pub disconnects: u64,
    pub reconnects: u64,
    /// Firmware time at the last tick or fault window, µs.
    pub sim_time_us: u64,
}

impl std::fmt::Display for SimReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "steps {} | sent {} dropped {} corrupted {} muted {} held {} lost (full {}, \
             offline {}, outbox {}, spike {}) | bytes corrupted {} out {} in | received {} \
             decode errors {} | resets {} overruns {} stalls {} latency spikes {} \
             disconnects {} reconnects {} | sim time {:.3} s",
            self.steps,
            self.frames_sent,
            self.frames_dropped,
            self.frames_corrupted,
            self.frames_muted,
            self.frames_held,
            self.frames_lost_full,
            self.frames_lost_offline,
            self.frames_lost_outbox,
            self.frames_lost_hold,
            self.bytes_corrupted,
            self.bytes_corrupted_rx,
            self.frames_received,
            self.decode_errors,
            self.resets,
            self.overruns,
            self.stalls,
            self.latency_spikes,
            self.disconnects,
            self.reconnects,
            self.sim_time_us as f64 * 1e-6,
        )
    }
}

/// Runs the simulated robot until `stop` is set or a fatal error. The link exists from
/// before the first tick until this returns.
pub fn run(
    options: SimOptions,
    plant: Box<dyn Plant>,
    stop: &AtomicBool,
) -> Result<SimReport, SimError> {
    let sim = engine::Sim::new(options, plant)?;
    run_sim(sim, stop)
}

fn run_sim(mut sim: engine::Sim, stop: &AtomicBool) -> Result<SimReport, SimError> {
    let result = if sim.options.lockstep {
        sim.run_lockstep(stop)
    } else {
        sim.run_realtime(stop)
    };
    let report = sim.finish();
    result.map(|()| report)
}

/// Starts the simulator on a thread named `handful-sim`; returns once the link exists.
pub fn spawn(options: SimOptions, plant: Box<dyn Plant>) -> Result<SimHandle, SimError> {
    let sim = engine::Sim::new(options, plant)?;
    let link = sim.link().path().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    let thread =
        spawn_named("handful-sim", move || run_sim(sim, &thread_stop)).map_err(SimError::Thread)?;
    Ok(SimHandle {
        link,
        stop,
        thread: Some(thread),
    })
}

/// A simulator running on its own thread; stops and joins when dropped.
#[derive(Debug)]
pub struct SimHandle {
    link: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinOnDrop<Result<SimReport, SimError>>>,
}

impl SimHandle {
    /// The symlink the host opens.
    pub fn link_path(&self) -> &Path {
        &self.link
    }

    /// `true` once the simulator has stopped (on a fatal error, before `stop`).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinOnDrop::is_finished)
    }

    /// Stops the simulator and returns its report (or the error that ended it).
    pub fn stop(mut self) -> Result<SimReport, SimError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinOnDrop::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) | None => Err(SimError::Panicked),
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        // The thread field joins after this, when it is dropped.
        self.stop.store(true, Ordering::Relaxed);
    }
}
