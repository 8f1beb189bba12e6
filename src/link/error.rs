//! [`LinkError`]: why the link could not be opened (or, logged by the rx thread,
//! re-opened). Data-carrying variants; every message names the port.

use std::path::PathBuf;

use super::handshake::HandshakeProgress;
use super::validate::Mismatches;

/// Why the link could not be opened (or, logged by the rx thread, re-opened).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("serial port path {} is not valid UTF-8", .path.display())]
    Path { path: PathBuf },
    #[error("cannot open serial port {}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: serialport::Error,
    },
    #[error("I/O error on serial port {} during the handshake", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("robot on {} did not answer the handshake after {attempts} Hello ({progress})", .path.display())]
    HandshakeTimeout {
        path: PathBuf,
        attempts: u32,
        progress: HandshakeProgress,
    },
    #[error("robot on {} speaks protocol version {firmware_version}; this host speaks 1", .path.display())]
    VersionMismatch {
        path: PathBuf,
        firmware_version: u32,
    },
    #[error("robot on {} does not match calibration {}: {mismatches}", .path.display(), .calib.display())]
    Mismatch {
        path: PathBuf,
        calib: PathBuf,
        mismatches: Mismatches,
    },
    #[error("cannot start the link threads")]
    Spawn(#[source] std::io::Error),
    #[error("link stopped during the handshake")]
    Stopped,
}
