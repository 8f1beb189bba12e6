//! The port plumbing the handshake, the rx thread and the tx thread share: opening a raw
//! serial port, the read and write timeouts, writing one frame, telling a timeout from a
//! failure, and the port hand-over from rx to tx ([`PortChange`]).
//!
//! A leaf module: it names no other module of the link but `sample` (the shared frame
//! counter), so `handshake` and `tx` both use it and neither uses the other.

use std::io::{ErrorKind, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use handful_protocol::{Frame, MAX_ENCODED_LEN, Message, encode};
use serialport::TTYPort;

use super::LinkError;
use super::sample::Shared;
use super::stats::Counters;
use crate::clock::Clock;

/// Read timeout of the rx port: how long a read waits, so the stop flag is seen promptly.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_millis(5);

/// Write timeout of the tx port. A write that cannot finish in this time is dropped
/// (counted in `tx_timeouts`); the firmware resynchronises at the next `0x00`.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_millis(100);

/// Port hand-over from the rx thread to the tx thread.
pub(crate) enum PortChange {
    /// A port and its generation (1 for the port of `Link::open`, +1 per reconnection).
    New(TTYPort, u64),
    Lost,
}

/// Opens `path` as a raw serial port at `baud` with the rx read timeout.
pub(crate) fn open_port(path: &Path, baud: u32) -> Result<TTYPort, LinkError> {
    let name = path.to_str().ok_or_else(|| LinkError::Path {
        path: path.to_owned(),
    })?;
    serialport::new(name, baud)
        .timeout(READ_TIMEOUT)
        .open_native()
        .map_err(|source| LinkError::Open {
            path: path.to_owned(),
            source,
        })
}

/// Encodes `message` with the next host frame seq and the host time, and writes it.
///
/// Allocation-free; blocks at most the port's timeout.
pub(crate) fn write_frame(
    port: &mut TTYPort,
    shared: &Shared,
    clock: &Clock,
    message: Message,
) -> std::io::Result<()> {
    let frame = Frame {
        seq: shared.tx_seq.fetch_add(1, Ordering::Relaxed),
        timestamp_us: clock.now_us(),
        message,
    };
    let mut wire = [0u8; MAX_ENCODED_LEN];
    // Cannot fail: `wire` holds any encoded frame.
    let n = encode(&frame, &mut wire).map_err(std::io::Error::other)?;
    port.write_all(&wire[..n])?;
    Counters::count(&shared.counters.frames_sent);
    Ok(())
}

/// Errors that only mean "no data within the read timeout".
pub(crate) fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::TimedOut | ErrorKind::WouldBlock | ErrorKind::Interrupted
    )
}
