//! The fault account of a run: what the host's safety layer, the firmware and the link
//! each saw, in one place, written to `summary.json` (`faults`) and printed at the end of
//! every `run`, `record` and learning job, so nothing a robot went through stays hidden
//! in a counter nobody reads.

use std::fmt;

use serde::Serialize;

use crate::control::{FaultCounts, LoopReport};
use crate::link::{FaultRecord, LinkStats};

/// Everything that went wrong during a run, by who saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct FaultAccount {
    /// Ticks that raised each host fault; every one sent the safe command.
    pub host: FaultCounts,
    /// `Fault` frames the firmware sent (watchdog, host timeout, limits, e-stop), and the
    /// last of them.
    pub firmware_reports: u64,
    pub last_firmware_report: Option<FaultRecord>,
    pub link: LinkFaults,
    /// Tick records the loop could not hand to the main thread (a full queue).
    pub records_dropped: u64,
}

/// What the link lost or could not read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LinkFaults {
    /// Frames missing from the firmware's sequence.
    pub frames_lost: u64,
    pub out_of_order_frames: u64,
    pub crc_errors: u64,
    /// Frames that did not decode (COBS, length, version, kind, field).
    pub undecodable_frames: u64,
    pub unexpected_frames: u64,
    pub reconnects: u64,
    pub reconnect_failures: u64,
    /// Commands not sent: the transmit queue was full.
    pub commands_not_queued: u64,
    /// Writes that timed out (the frame was lost).
    pub write_timeouts: u64,
}

impl FaultAccount {
    /// The account of a run whose loop reported `report` (none if it did not stop
    /// cleanly) over a link that counted `link`.
    pub fn new(report: Option<&LoopReport>, link: &LinkStats, records_dropped: u64) -> Self {
        Self {
            host: report.map(|r| r.faults).unwrap_or_default(),
            firmware_reports: link.faults_received,
            last_firmware_report: link.last_fault,
            link: LinkFaults {
                frames_lost: link.dropped_frames,
                out_of_order_frames: link.out_of_order_frames,
                crc_errors: link.crc_errors,
                undecodable_frames: link.decode_errors.total(),
                unexpected_frames: link.unexpected_frames,
                reconnects: link.reconnects,
                reconnect_failures: link.reconnect_failures,
                commands_not_queued: link.tx_full_drops,
                write_timeouts: link.tx_timeouts,
            },
            records_dropped,
        }
    }

    /// Nothing went wrong.
    pub fn is_clean(&self) -> bool {
        self.host.total() == 0
            && self.firmware_reports == 0
            && self.link == LinkFaults::default()
            && self.records_dropped == 0
    }
}

/// Lines for the end-of-run printout, each indented by two spaces: "faults: none", or
/// one line per party that saw something.
impl fmt::Display for FaultAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            return write!(f, "  faults: none");
        }
        let mut lines = Vec::new();
        let host: Vec<String> = self
            .host
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(fault, n)| format!("{} {n}", fault.name()))
            .collect();
        if !host.is_empty() {
            lines.push(format!(
                "  host faults (ticks on the safe command): {}",
                host.join(", ")
            ));
        }
        if self.firmware_reports > 0 {
            let last = self
                .last_firmware_report
                .map(|r| format!(" (last: {:?}, detail {})", r.code, r.detail))
                .unwrap_or_default();
            lines.push(format!(
                "  firmware fault reports: {}{last}",
                self.firmware_reports
            ));
        }
        let l = &self.link;
        let link: Vec<String> = [
            (l.frames_lost, "frames lost"),
            (l.out_of_order_frames, "out of order"),
            (l.crc_errors, "CRC errors"),
            (l.undecodable_frames, "undecodable"),
            (l.unexpected_frames, "unexpected"),
            (l.reconnects, "reconnects"),
            (l.reconnect_failures, "failed reconnects"),
            (l.commands_not_queued, "commands not queued"),
            (l.write_timeouts, "write timeouts"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if !link.is_empty() {
            lines.push(format!("  link: {}", link.join(", ")));
        }
        if self.records_dropped > 0 {
            lines.push(format!("  tick records dropped: {}", self.records_dropped));
        }
        write!(f, "{}", lines.join("\n"))
    }
}
