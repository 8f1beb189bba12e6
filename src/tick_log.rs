//! `ticks.csv`: every tick of a run as the control thread saw and commanded it, for
//! measuring what a fault did on the host side (`handful run --ticks`,
//! `benches/faults.py`).
//!
//! Columns: `tick, deadline_us, wake_us, compute_us, mode, phase, episode, step,
//! state_age_us, firmware_us, armed, state` (values joined by `/`), `command_seq` (empty:
//! nothing sent), `action` (the command sent: the safe one whenever the controller's was
//! not), `fault` (the host fault raised at that tick, empty if none). Written on the main
//! thread from the loop's records, buffered; a record the loop had to drop (the run's
//! `records_dropped`) leaves a gap in `tick`.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;

use crate::control::TickRecord;
use crate::episodes::Watch;

/// A [`Watch`] that writes each record as a line of `ticks.csv`.
pub struct TickLog {
    out: BufWriter<File>,
    line: String,
}

impl TickLog {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut log = Self {
            out: BufWriter::with_capacity(64 * 1024, file),
            line: String::with_capacity(256),
        };
        writeln!(
            log.out,
            "tick,deadline_us,wake_us,compute_us,mode,phase,episode,step,state_age_us,\
             firmware_us,armed,state,command_seq,action,fault"
        )?;
        Ok(log)
    }

    /// Flushes what is buffered (also done on drop, silently).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.out.flush().context("writing ticks.csv")
    }
}

fn join(out: &mut String, values: &[f32]) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        let _ = write!(out, "{v}");
    }
}

impl Watch for TickLog {
    fn record(&mut self, r: &TickRecord) -> anyhow::Result<()> {
        let line = &mut self.line;
        line.clear();
        let (episode, step) = match &r.episode {
            Some(e) => (e.episode.to_string(), e.step.to_string()),
            None => (String::new(), String::new()),
        };
        let _ = write!(
            line,
            "{},{},{},{},{:?},{},{episode},{step},{},{},{},",
            r.tick,
            r.deadline_us,
            r.wake_us,
            r.compute_us,
            r.mode,
            r.phase.name(),
            r.state_age_us,
            r.firmware_us,
            u8::from(r.armed),
        );
        join(line, r.state());
        line.push(',');
        if let Some(seq) = r.command_seq {
            let _ = write!(line, "{seq}");
        }
        line.push(',');
        join(line, r.action());
        line.push(',');
        if let Some(fault) = r.fault {
            line.push_str(fault.name());
        }
        line.push('\n');
        self.out
            .write_all(line.as_bytes())
            .context("writing ticks.csv")
    }
}
