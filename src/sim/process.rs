//! The simulator as a process: [`run_cli`] is the binary's `handful sim` command (runs
//! until SIGINT or SIGTERM), and [`spawn_process`] starts that command as a child for
//! tests and demos that need a robot they can unplug ([`SimProcess::kill`]).
//! [`spawn_command`] starts any other simulator the same way from a shell command (a
//! stand-in firmware such as firmware-bridge/gym), in a process group of its own so
//! that terminating it reaches whatever the shell started.
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
/// How long [`spawn_command`] waits: an interpreter loading its libraries (Python with
/// gymnasium and MuJoCo takes 1–3 s here, more on a loaded machine) is slower than
/// `handful sim`.
const COMMAND_LINK_WAIT_US: u64 = 30_000_000;
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
    let process = SimProcess {
        child,
        link,
        group: false,
    };
    process
        .wait_for_link(LINK_WAIT_US)
        .map_err(|(link, status)| match status {
            Some(status) => SimError::ProcessExited { link, status },
            None => SimError::LinkTimeout {
                link,
                waited_ms: LINK_WAIT_US / 1_000,
            },
        })
}

/// Starts `sh -c '<command> "$@"'` with `args` appended (the arguments `handful sim`
/// would get: `--link PATH --seed S --watchdog-ms=W [--lockstep] --calib=FILE ...`), in a
/// process group of its own, and waits (up to 30 s) for it to create `link`. A command
/// that exits first, or never creates the link, is an error naming it (and is
/// terminated); its own error output goes to this process's stderr.
pub fn spawn_command(command: &str, args: &[String], link: &Path) -> Result<SimProcess, SimError> {
    spawn_command_waiting(command, args, link, COMMAND_LINK_WAIT_US)
}

/// [`spawn_command`], waiting `wait_us` for the link.
pub fn spawn_command_waiting(
    command: &str,
    args: &[String],
    link: &Path,
    wait_us: u64,
) -> Result<SimProcess, SimError> {
    use std::os::unix::process::CommandExt;
    remove_stale_link(link);
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{command} \"$@\""))
        .arg("handful-sim")
        .args(args)
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|source| SimError::CommandSpawn {
            command: command.to_owned(),
            source,
        })?;
    let process = SimProcess {
        child,
        link: link.to_owned(),
        group: true,
    };
    process
        .wait_for_link(wait_us)
        .map_err(|(link, status)| match status {
            Some(status) => SimError::CommandExited {
                command: command.to_owned(),
                link,
                status,
            },
            None => SimError::CommandLinkTimeout {
                command: command.to_owned(),
                link,
                waited_ms: wait_us / 1_000,
            },
        })
}

/// A simulator child process; terminated (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct SimProcess {
    child: Child,
    link: PathBuf,
    /// Started by [`spawn_command`]: the child leads a process group, and signals go to
    /// the whole group.
    group: bool,
}

impl SimProcess {
    /// Waits up to `wait_us` for the link; on failure the link's path and the child's
    /// exit status (`None`: still running at the deadline; dropping the process then
    /// terminates it).
    fn wait_for_link(mut self, wait_us: u64) -> Result<Self, (PathBuf, Option<ExitStatus>)> {
        let clock = Clock::real();
        let deadline_us = clock.now_us() + wait_us;
        loop {
            if std::fs::symlink_metadata(&self.link).is_ok() {
                return Ok(self);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // A group's other members (what the shell started) go with it.
                self.signal(Signal::SIGKILL);
                return Err((self.link.clone(), Some(status)));
            }
            if clock.now_us() >= deadline_us {
                return Err((self.link.clone(), None));
            }
            clock.sleep_us(POLL_US);
        }
    }

    /// Sends `signal` to the child, or to its process group.
    fn signal(&self, signal: Signal) {
        let Ok(raw) = i32::try_from(self.child.id()) else {
            return;
        };
        let pid = Pid::from_raw(raw);
        let _ = if self.group {
            nix::sys::signal::killpg(pid, signal)
        } else {
            nix::sys::signal::kill(pid, signal)
        };
    }

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
            if self.group {
                self.signal(Signal::SIGKILL);
            } else {
                self.child.kill().map_err(control)?;
            }
        }
        let status = self.child.wait().map_err(control)?;
        if self.group {
            // Whatever the shell left running in the group.
            self.signal(Signal::SIGKILL);
        }
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
        self.signal(Signal::SIGTERM);
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
