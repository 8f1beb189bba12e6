//! The simulator's trace (`--trace FILE`): what the robot saw and did, one CSV line per
//! event, on the firmware clock, so a fault's effect can be measured where it matters —
//! at the actuator — whoever caused it.
//!
//! Columns `t_us,event,what,seq,detail`; `detail` holds space-separated `key=value`
//! pairs (action values joined by `/`). Events:
//!
//! | event | what | seq | detail |
//! | --- | --- | --- | --- |
//! | `tick` | arm state after the tick | last accepted command seq | `flags=` fault flags, `u=` actuation applied |
//! | `held` | | | `u=` the action a stalled firmware holds while the plant moves on |
//! | `rx` | host frame kind | frame seq | commands: `cmd=` seq, `ok=` accepted (0/1), `u=`; others: `arm=` state after |
//! | `rx_error` | | | a byte run from the host that did not decode |
//! | `tx` | frame kind | frame seq | its fate (`sent`, `corrupted`, `merged`, `held`, `dropped`, `muted`, ...); fault frames add `code=` and `d=` |
//! | `inject` | `stall_start`, `stall_end`, `disconnect`, `reconnect`, `spike_start`, `spike_end`, `heartbeats_stop`, `mute_start`, `mute_end`, `sensor_fail_start`, `sensor_fail_end` | | |
//!
//! Writes go to a 64 KiB buffer (formatting allocates nothing); a full buffer is one
//! `write` to the page cache. A failed write is reported once and ends the trace; the
//! simulator runs on.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use handful_protocol::{ArmState, Frame, Message};

use super::SimError;
use super::fault::Fate;

const BUFFER_BYTES: usize = 64 * 1024;

/// The trace file, or nothing when no trace was asked for.
#[derive(Debug)]
pub struct Trace {
    out: Option<BufWriter<File>>,
    path: PathBuf,
}

impl Trace {
    /// Creates (truncates) `path`, or a trace that writes nothing.
    pub fn open(path: Option<&Path>) -> Result<Self, SimError> {
        let Some(path) = path else {
            return Ok(Self {
                out: None,
                path: PathBuf::new(),
            });
        };
        let file = File::create(path).map_err(|source| SimError::Trace {
            path: path.to_owned(),
            source,
        })?;
        let mut trace = Self {
            out: Some(BufWriter::with_capacity(BUFFER_BYTES, file)),
            path: path.to_owned(),
        };
        trace.line(format_args!("t_us,event,what,seq,detail"));
        Ok(trace)
    }

    fn line(&mut self, args: std::fmt::Arguments<'_>) {
        let Some(out) = &mut self.out else {
            return;
        };
        if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
            tracing::warn!(path = %self.path.display(), error = %e, "sim: the trace stops here");
            self.out = None;
        }
    }

    /// A firmware tick: its arm state, fault flags and the actuation it applies.
    pub fn tick(&mut self, t_us: u64, arm: ArmState, seq: u32, flags: u32, action: &[f32]) {
        if self.out.is_some() {
            self.line(format_args!(
                "{t_us},tick,{},{seq},flags={flags} u={}",
                arm_name(arm),
                Values(action)
            ));
        }
    }

    /// A control period of a stalled firmware: the plant moved under the held action.
    pub fn held(&mut self, t_us: u64, action: &[f64]) {
        if self.out.is_some() {
            self.line(format_args!("{t_us},held,,,u={}", Values64(action)));
        }
    }

    /// A host frame the firmware handled; `accepted` for commands.
    pub fn rx(&mut self, t_us: u64, frame: &Frame, arm: ArmState, accepted: bool) {
        if self.out.is_none() {
            return;
        }
        let kind = kind_name(&frame.message);
        match &frame.message {
            Message::Command(c) => self.line(format_args!(
                "{t_us},rx,{kind},{},cmd={} ok={} valid_until={} u={}",
                frame.seq,
                c.seq,
                u8::from(accepted),
                c.valid_until_us,
                Values(c.values.as_slice())
            )),
            _ => self.line(format_args!(
                "{t_us},rx,{kind},{},arm={}",
                frame.seq,
                arm_name(arm)
            )),
        }
    }

    /// Host bytes that did not decode.
    pub fn rx_error(&mut self, t_us: u64) {
        if self.out.is_some() {
            self.line(format_args!("{t_us},rx_error,,,"));
        }
    }

    /// What became of an outgoing frame.
    pub fn tx(&mut self, t_us: u64, frame: &Frame, fate: Fate) {
        if self.out.is_none() {
            return;
        }
        let kind = kind_name(&frame.message);
        match &frame.message {
            Message::Fault(f) => self.line(format_args!(
                "{t_us},tx,{kind},{},{} code={:?} d={}",
                frame.seq,
                fate.name(),
                f.code,
                f.detail
            )),
            _ => self.line(format_args!(
                "{t_us},tx,{kind},{},{}",
                frame.seq,
                fate.name()
            )),
        }
    }

    /// An injected fault's edge.
    pub fn inject(&mut self, t_us: u64, what: &'static str) {
        if self.out.is_some() {
            self.line(format_args!("{t_us},inject,{what},,"));
        }
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) {
        if let Some(out) = &mut self.out
            && let Err(e) = out.flush()
        {
            tracing::warn!(path = %self.path.display(), error = %e, "sim: the trace is incomplete");
            self.out = None;
        }
    }
}

fn arm_name(arm: ArmState) -> &'static str {
    match arm {
        ArmState::Disarmed => "disarmed",
        ArmState::Armed => "armed",
        ArmState::Faulted => "faulted",
        ArmState::EStopped => "estopped",
    }
}

fn kind_name(message: &Message) -> &'static str {
    match message {
        Message::Hello(_) => "hello",
        Message::Capabilities(_) => "capabilities",
        Message::ChannelInfo(_) => "channel_info",
        Message::Arm => "arm",
        Message::Disarm => "disarm",
        Message::EStop => "estop",
        Message::Command(_) => "command",
        Message::Reset(_) => "reset",
        Message::ResetTo(_) => "reset_to",
        Message::State(_) => "state",
        Message::Heartbeat(_) => "heartbeat",
        Message::Teleop(_) => "teleop",
        Message::Fault(_) => "fault",
    }
}

/// Values joined by `/`, formatted without allocating.
struct Values<'a>(&'a [f32]);

impl std::fmt::Display for Values<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

struct Values64<'a>(&'a [f64]);

impl std::fmt::Display for Values64<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            write!(f, "{}", *v as f32)?;
        }
        Ok(())
    }
}
