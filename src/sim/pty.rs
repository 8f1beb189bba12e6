//! The simulator's end of the wire: a raw pseudo-terminal, and the stable symlink the
//! host opens in place of a serial device.
//!
//! [`Pty`] owns the master (non-blocking: a full buffer is reported, never waited on)
//! and keeps one slave descriptor open itself, so master reads never fail with `EIO`
//! while no host is attached. The slave is raw (`cfmakeraw`, no echo) before its path is
//! published. [`Link`] publishes the slave's path atomically (symlink to a temporary
//! name, then rename) and removes it on drop if it still points at its pty. It only ever
//! replaces a path that is a symlink into `/dev/pts/` (a previous simulator's link); any
//! other file there is an error, never overwritten.

use std::io::ErrorKind;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};

use super::SimError;

/// Where the kernel puts pty slaves; links into it are the simulator's to replace.
const PTS_DIR: &str = "/dev/pts/";

/// One pseudo-terminal pair, raw, with the master non-blocking.
#[derive(Debug)]
pub struct Pty {
    master: OwnedFd,
    /// Held so master reads never see `EIO` while no host has the slave open.
    _slave: OwnedFd,
    slave_path: PathBuf,
}

impl Pty {
    pub fn open() -> Result<Self, SimError> {
        let step = |step: &'static str| move |source: Errno| SimError::Pty { step, source };
        let pair = nix::pty::openpty(None, None).map_err(step("openpty"))?;
        let mut termios = tcgetattr(&pair.slave).map_err(step("tcgetattr"))?;
        cfmakeraw(&mut termios);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &termios).map_err(step("tcsetattr"))?;
        for fd in [&pair.master, &pair.slave] {
            // Child processes (e.g. a spawned controller) must not inherit the pty.
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(step("FD_CLOEXEC"))?;
        }
        let flags = fcntl(&pair.master, FcntlArg::F_GETFL).map_err(step("F_GETFL"))?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(&pair.master, FcntlArg::F_SETFL(flags)).map_err(step("O_NONBLOCK"))?;
        let slave_path = nix::unistd::ttyname(&pair.slave).map_err(step("ttyname"))?;
        Ok(Self {
            master: pair.master,
            _slave: pair.slave,
            slave_path,
        })
    }

    /// The device path a host opens (`/dev/pts/N`).
    pub fn slave_path(&self) -> &Path {
        &self.slave_path
    }

    pub fn master(&self) -> BorrowedFd<'_> {
        self.master.as_fd()
    }

    /// Bytes from the host; `Ok(0)` when none are waiting.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        match nix::unistd::read(&self.master, buf) {
            Err(Errno::EAGAIN | Errno::EINTR) => Ok(0),
            other => other,
        }
    }

    /// Writes what fits; `Ok(0)` when the buffer is full.
    pub fn write(&self, bytes: &[u8]) -> Result<usize, Errno> {
        match nix::unistd::write(&self.master, bytes) {
            Err(Errno::EAGAIN | Errno::EINTR) => Ok(0),
            other => other,
        }
    }
}

/// The stable symlink to the current pty's slave.
#[derive(Debug)]
pub struct Link {
    path: PathBuf,
    /// What the link points at while it exists.
    target: Option<PathBuf>,
}

impl Link {
    /// Nothing is created until [`Link::point_to`].
    pub fn new(path: PathBuf) -> Self {
        Self { path, target: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Atomically makes the link point at `target`, replacing a previous simulator's
    /// link; refuses to replace anything else.
    pub fn point_to(&mut self, target: &Path) -> Result<(), SimError> {
        check_replaceable(&self.path)?;
        let temp = temp_path(&self.path);
        let link_error = |source| SimError::Link {
            path: self.path.clone(),
            source,
        };
        // A temp left behind by a crashed simulator with our pid is ours to remove.
        match std::fs::remove_file(&temp) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(link_error(e)),
            _ => {}
        }
        std::os::unix::fs::symlink(target, &temp).map_err(link_error)?;
        if let Err(e) = std::fs::rename(&temp, &self.path) {
            let _ = std::fs::remove_file(&temp);
            return Err(link_error(e));
        }
        self.target = Some(target.to_owned());
        Ok(())
    }

    /// Removes the link if it still points at our pty (another simulator may have taken
    /// the path over since).
    pub fn remove(&mut self) {
        if let Some(target) = self.target.take()
            && std::fs::read_link(&self.path).is_ok_and(|now| now == target)
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.remove();
    }
}

/// `Ok` if nothing is at `path` or it is a symlink into `/dev/pts/`.
fn check_replaceable(path: &Path) -> Result<(), SimError> {
    let taken = |found: String| SimError::LinkPathTaken {
        path: path.to_owned(),
        found,
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SimError::Link {
            path: path.to_owned(),
            source,
        }),
        Ok(meta) if meta.file_type().is_symlink() => match std::fs::read_link(path) {
            Ok(target) if target.starts_with(PTS_DIR) => Ok(()),
            Ok(target) => Err(taken(format!("a symlink to {}", target.display()))),
            Err(source) => Err(SimError::Link {
                path: path.to_owned(),
                source,
            }),
        },
        Ok(meta) if meta.is_dir() => Err(taken("a directory".to_owned())),
        Ok(_) => Err(taken("a file that is not a symlink".to_owned())),
    }
}

/// `<dir>/.<name>.<pid>.tmp`, beside the link so the rename stays on one filesystem.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}
