//! Counts of each [`HostFault`], kept on the control thread without allocating.

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::HostFault;

const KINDS: [HostFault; 11] = [
    HostFault::LinkLost,
    HostFault::StaleState,
    HostFault::NonFiniteState,
    HostFault::NonFiniteAction,
    HostFault::Controller,
    HostFault::Overrun,
    HostFault::RepeatedOverrun,
    HostFault::Firmware,
    HostFault::NotArmed,
    HostFault::SendFailed,
    HostFault::HeartbeatLost,
];

/// How many ticks raised each fault.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    counts: [u64; KINDS.len()],
}

impl FaultCounts {
    pub fn add(&mut self, fault: HostFault) {
        self.counts[index(fault)] += 1;
    }

    pub fn get(&self, fault: HostFault) -> u64 {
        self.counts[index(fault)]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Every kind with its count, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (HostFault, u64)> + '_ {
        KINDS.iter().copied().zip(self.counts)
    }
}

fn index(fault: HostFault) -> usize {
    KINDS.iter().position(|&k| k == fault).unwrap_or(0)
}

impl Serialize for FaultCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(KINDS.len()))?;
        for (kind, count) in KINDS.iter().zip(self.counts) {
            map.serialize_entry(kind.name(), &count)?;
        }
        map.end()
    }
}
