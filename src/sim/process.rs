//! The simulator as a process: [`run_cli`] is the binary's `handful sim` command (runs
//! until SIGINT or SIGTERM), and [`spawn_process`] starts that command as a child for
//! tests and demos that need a robot they can unplug ([`SimProcess::kill`]).
//!
//! Signals are taken synchronously through a `signalfd` (SIGINT and SIGTERM blocked in
//! every thread), so there is no signal handler and no `unsafe`.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use anyhow::Context;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use super::{SimArgs, SimError, spawn};
use crate::clock::Clock;

/// How long [`spawn_process`] waits for the child's link.
const LINK_WAIT_US: u64 = 5_000_000;
/// How long a child gets to exit after SIGTERM before SIGKILL.
const TERM_GRACE_US: u64 = 2_000_000;
const POLL_US: u64 = 5_000;

/// Runs `handful sim`: prints the link path, runs until SIGINT/SIGTERM (or a fatal
/// error), removes the link and prints the report.
pub fn run_cli(args: SimArgs) -> anyhow::Result<()> {
    let options = args.to_options()?;
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    // Blocked before the simulator thread starts, so it inherits the mask and the
    // signals wait in the signalfd.
    signals.thread_block().map_err(SimError::Signal)?;
    // A simulator started by `handful run` must not outlive it, even if it is killed:
    // the kernel sends SIGTERM (caught below) when the parent dies.
    let parent = nix::unistd::getppid();
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(SimError::Signal)?;
    if nix::unistd::getppid() != parent {
        anyhow::bail!("the process that started the simulator is gone");
    }
    let signal_fd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(SimError::Signal)?;
    let plant = args.plant_params()?;
    tracing::debug!(?plant, "plant physics");
    let handle = spawn(options, plant.build()).context("starting the simulator")?;
    println!("{}", handle.link_path().display());
    while !handle.is_finished() {
        let mut fds = [PollFd::new(signal_fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(SimError::Signal(e).into()),
        }
        if let Ok(Some(info)) = signal_fd.read_signal() {
            eprintln!("handful sim: signal {}, stopping", info.ssi_signo);
            break;
        }
    }
    let report = handle.stop().context("simulator")?;
    println!("{report}");
    Ok(())
}

/// Starts `exe sim <args...>` and waits (up to 5 s) for its link to appear. A stale
/// link at the path (a symlink into /dev/pts left by a killed simulator) is removed
/// first, so the link that appears is the new child's.
pub fn spawn_process(exe: &Path, args: &SimArgs) -> Result<SimProcess, SimError> {
    let link = args.link_path();
    remove_stale_link(&link);
    let child = Command::new(exe)
        .arg("sim")
        .args(args.to_argv())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|source| SimError::Spawn {
            exe: exe.to_owned(),
            source,
        })?;
    let mut process = SimProcess { child, link };
    let clock = Clock::real();
    let deadline_us = clock.now_us() + LINK_WAIT_US;
    loop {
        if std::fs::symlink_metadata(&process.link).is_ok() {
            return Ok(process);
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            return Err(SimError::ProcessExited {
                link: process.link.clone(),
                status,
            });
        }
        if clock.now_us() >= deadline_us {
            // Dropping `process` terminates the child.
            return Err(SimError::LinkTimeout {
                link: process.link.clone(),
                waited_ms: LINK_WAIT_US / 1_000,
            });
        }
        clock.sleep_us(POLL_US);
    }
}

/// A simulator child process; terminated (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct SimProcess {
    child: Child,
    link: PathBuf,
}

impl SimProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn link_path(&self) -> &Path {
        &self.link
    }

    /// SIGKILL, like pulling the robot's power: no clean shutdown. The dangling link is
    /// removed, as udev removes a device's link when it is unplugged.
    pub fn kill(&mut self) -> Result<ExitStatus, SimError> {
        let pid = self.child.id();
        let control = |source| SimError::ProcessControl { pid, source };
        if self.child.try_wait().map_err(control)?.is_none() {
            self.child.kill().map_err(control)?;
        }
        let status = self.child.wait().map_err(control)?;
        remove_stale_link(&self.link);
        Ok(status)
    }

    /// SIGTERM (the simulator removes its link and exits), then SIGKILL after 2 s.
    pub fn terminate(&mut self) -> Result<ExitStatus, SimError> {
        let pid = self.child.id();
        let control = |source| SimError::ProcessControl { pid, source };
        if let Some(status) = self.child.try_wait().map_err(control)? {
            return Ok(status);
        }
        if let Ok(raw) = i32::try_from(pid) {
            let _ = nix::sys::signal::kill(Pid::from_raw(raw), Signal::SIGTERM);
        }
        let clock = Clock::real();
        let deadline_us = clock.now_us() + TERM_GRACE_US;
        while clock.now_us() < deadline_us {
            if let Some(status) = self.child.try_wait().map_err(control)? {
                return Ok(status);
            }
            clock.sleep_us(POLL_US);
        }
        self.kill()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        if let Err(e) = self.terminate() {
            tracing::warn!(error = %e, "sim process: terminate failed");
        }
    }
}

/// Removes `link` if it is a symlink into /dev/pts (a simulator's link).
fn remove_stale_link(link: &Path) {
    if std::fs::read_link(link).is_ok_and(|target| target.starts_with("/dev/pts/")) {
        let _ = std::fs::remove_file(link);
    }
}
