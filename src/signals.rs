//! SIGINT and SIGTERM as a request to stop, not a kill: the episode in progress is
//! disarmed (the robot gets the safe command from its firmware), the run's summary is
//! written, and the process says why and exits non-zero. A second signal exits at once
//! with `128 + signal` (the firmware's watchdog still brings the robot to its safe
//! command).
//!
//! Handlers, not a blocked mask and a `signalfd`: `serialport` waits in `ppoll` with an
//! empty mask, so a blocked signal would still kill the process from the link's thread.
//! The handlers only store the signal number (`signal-hook`, async-signal-safe); long
//! waits ([`crate::episodes::EpisodeDriver`], recovery) poll [`requested`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

static REQUESTED: std::sync::OnceLock<Arc<AtomicUsize>> = std::sync::OnceLock::new();

/// Takes SIGINT and SIGTERM from now on (idempotent).
pub fn install() -> std::io::Result<()> {
    if REQUESTED.get().is_some() {
        return Ok(());
    }
    let requested = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as the previous signal left it.
        flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(&stop))?;
        flag::register(signal, Arc::clone(&stop))?;
        flag::register_usize(signal, Arc::clone(&requested), signal as usize)?;
    }
    let _ = REQUESTED.set(requested);
    Ok(())
}

/// The number of the stop signal received, if one was (2: SIGINT, 15: SIGTERM).
pub fn requested_number() -> Option<u8> {
    match REQUESTED.get()?.load(Ordering::Acquire) {
        0 => None,
        n => u8::try_from(n).ok(),
    }
}

/// The stop signal received, if one was (`"SIGINT"`, `"SIGTERM"`).
pub fn requested() -> Option<&'static str> {
    match REQUESTED.get()?.load(Ordering::Acquire) as i32 {
        0 => None,
        SIGINT => Some("SIGINT"),
        SIGTERM => Some("SIGTERM"),
        _ => Some("a signal"),
    }
}
