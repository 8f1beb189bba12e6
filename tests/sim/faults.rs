//! The fault windows the fault matrix (`benches/faults.py`) injects — line noise on
//! every byte, latency spikes, heartbeats that stop, a mute transmitter — and the trace
//! it measures them with.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use handful::sim::{SimOptions, Spikes, Window, spawn};
use handful_protocol::*;

use super::host::{Host, Integrator, PERIOD_US};
use super::{assert_sane, link, lockstep};

/// One trace line: `(t_us, event, what, seq, detail)`.
type Line = (u64, String, String, String, String);

fn read_trace(path: &Path) -> Vec<Line> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("t_us,event,what,seq,detail"));
    lines
        .map(|line| {
            let f: Vec<&str> = line.splitn(5, ',').collect();
            assert_eq!(f.len(), 5, "{line}");
            let t = f[0].parse().unwrap_or_else(|_| panic!("{line}"));
            (t, f[1].into(), f[2].into(), f[3].into(), f[4].into())
        })
        .collect()
}

/// Sends one command and waits (briefly) for its answer; the answer may be lost.
fn step(host: &mut Host, seq: u32) -> Option<(u64, State)> {
    host.command(seq, &[1.0], u64::MAX);
    while let Some(frame) = host.recv(50) {
        if let Message::State(s) = frame.message {
            return Some((frame.timestamp_us, s));
        }
    }
    None
}

#[test]
fn line_noise_corrupts_bytes_both_ways_and_the_trace_names_every_frame_the_host_lost() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("noise.csv");
    let options = SimOptions {
        corrupt_byte_prob: 0.02,
        seed: 11,
        trace: Some(trace.clone()),
        ..lockstep(&dir, "noise")
    };
    let sim = spawn(options, Integrator::boxed([0.0, 0.0])).unwrap();
    let mut host = Host::open(sim.link_path());
    let mut received = BTreeSet::new();
    for k in 1..=600 {
        host.command(k, &[0.0], u64::MAX);
        while let Some(frame) = host.recv(10) {
            received.insert(frame.seq);
        }
    }
    let report = sim.stop().unwrap();
    assert_sane(&report);
    assert!(report.bytes_corrupted > 0 && report.bytes_corrupted_rx > 0);
    assert!(host.decode_errors > 0);
    let fates: BTreeMap<u32, String> = read_trace(&trace)
        .into_iter()
        .filter(|l| l.1 == "tx")
        .map(|l| {
            (
                l.3.parse().unwrap(),
                l.4.split(' ').next().unwrap().to_owned(),
            )
        })
        .collect();
    let count = |fate: &str| fates.values().filter(|f| *f == fate).count();
    assert!(count("corrupted") > 0 && count("merged") > 0, "{fates:?}");
    // Whatever the host decoded was sent intact, and nothing the trace calls corrupted or
    // merged (its predecessor lost its delimiter) reached it.
    for seq in &received {
        assert_eq!(
            fates.get(seq).map(String::as_str),
            Some("sent"),
            "seq {seq}"
        );
    }
    let last = *received.last().unwrap();
    for (seq, fate) in fates.range(..=last) {
        if fate == "sent" {
            assert!(received.contains(seq), "sent frame {seq} never decoded");
        }
    }
    // Noise on the host's bytes: some commands never reached the firmware.
    let rx_commands = read_trace(&trace)
        .iter()
        .filter(|l| l.1 == "rx" && l.2 == "command")
        .count();
    assert!(
        rx_commands < 600,
        "{rx_commands} of 600 commands got through"
    );
}

#[test]
fn a_latency_spike_holds_every_frame_back_and_delivers_them_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("spike.csv");
    let options = SimOptions {
        latency_spikes: Some(Spikes {
            at_us: 300_000,
            hold_us: 200_000,
            every_us: Some(600_000),
        }),
        trace: Some(trace.clone()),
        ..SimOptions::new(link(&dir, "spike"))
    };
    let sim = spawn(options, Integrator::boxed([0.0, 0.0])).unwrap();
    let mut host = Host::open(sim.link_path());
    let mut states = Vec::new();
    while states.len() < 160 {
        if let Some(Frame {
            timestamp_us,
            message: Message::State(_),
            ..
        }) = host.recv(1_000)
        {
            states.push(timestamp_us);
        }
    }
    let report = sim.stop().unwrap();
    assert_sane(&report);
    assert!(report.latency_spikes >= 2 && report.frames_held > 0);
    assert_eq!(report.frames_lost_hold, 0);
    // Nothing lost, nothing reordered (seq gaps count lost frames).
    assert_eq!(host.missing, 0);
    assert!(states.windows(2).all(|w| w[0] < w[1]));
    // States stamped inside a spike were held, and arrived.
    let inside = |t: &u64| (300_000..500_000).contains(t) || (900_000..1_100_000).contains(t);
    assert!(states.iter().filter(|t| inside(t)).count() >= 20);
    let lines = read_trace(&trace);
    let held = lines
        .iter()
        .filter(|l| l.1 == "tx" && l.4 == "held")
        .count();
    assert_eq!(held as u64, report.frames_held);
    let edges: Vec<&str> = lines
        .iter()
        .filter(|l| l.1 == "inject")
        .map(|l| l.2.as_str())
        .take(4)
        .collect();
    assert_eq!(
        edges,
        ["spike_start", "spike_end", "spike_start", "spike_end"]
    );
}

#[test]
fn heartbeats_that_stop_leave_the_states_going() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("heartbeats.csv");
    let options = SimOptions {
        heartbeat_stop_us: Some(300_000),
        trace: Some(trace.clone()),
        ..lockstep(&dir, "heartbeats")
    };
    let sim = spawn(options, Integrator::boxed([0.0, 0.0])).unwrap();
    let mut host = Host::open(sim.link_path());
    let (mut heartbeats, mut states) = (Vec::new(), Vec::new());
    for k in 1..=80 {
        host.command(k, &[0.0], u64::MAX);
        while let Some(frame) = host.recv(20) {
            match frame.message {
                Message::Heartbeat(_) => heartbeats.push(frame.timestamp_us),
                Message::State(_) => states.push(frame.timestamp_us),
                _ => {}
            }
        }
    }
    let report = sim.stop().unwrap();
    assert_sane(&report);
    assert!(heartbeats.len() >= 2, "{heartbeats:?}");
    assert!(heartbeats.iter().all(|&t| t < 300_000), "{heartbeats:?}");
    assert_eq!(states.len(), 80);
    // Never sent, rather than lost on the way: the host sees no gap.
    assert_eq!((host.missing, report.frames_muted), (0, 0));
    let lines = read_trace(&trace);
    assert!(
        lines
            .iter()
            .any(|l| (l.1.as_str(), l.2.as_str()) == ("inject", "heartbeats_stop"))
    );
}

#[test]
fn a_mute_firmware_still_obeys_the_host_and_the_trace_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("mute.csv");
    let options = SimOptions {
        mute: Some(Window {
            at_us: 10 * PERIOD_US,
            for_us: Some(10 * PERIOD_US),
        }),
        trace: Some(trace.clone()),
        ..lockstep(&dir, "mute")
    };
    let sim = spawn(options, Integrator::boxed([0.0, 0.0])).unwrap();
    let mut host = Host::open(sim.link_path());
    host.send(Message::Arm);
    let mut answered = Vec::new();
    for k in 1..=30 {
        if let Some((t, s)) = step(&mut host, k) {
            answered.push((t, s.last_command_seq));
        }
    }
    host.send(Message::Disarm);
    // Answered once the Disarm has been handled.
    while step(&mut host, 31).is_none() {}
    let report = sim.stop().unwrap();
    assert_sane(&report);
    // No answer while mute; the first one after it shows every command was applied.
    assert!(
        answered
            .iter()
            .all(|(t, _)| !(10 * PERIOD_US..20 * PERIOD_US).contains(t)),
        "{answered:?}"
    );
    let first_after = answered.iter().find(|(t, _)| *t >= 20 * PERIOD_US).unwrap();
    assert_eq!(first_after.1 as u64, first_after.0 / PERIOD_US);
    assert_eq!(report.steps, 30);
    let lines = read_trace(&trace);
    let ticks: Vec<&Line> = lines.iter().filter(|l| l.1 == "tick").collect();
    assert!(ticks.iter().any(|l| l.2 == "armed" && l.4.ends_with("u=1")));
    let accepted_while_mute = lines
        .iter()
        .filter(|l| {
            l.1 == "rx"
                && l.2 == "command"
                && l.4.contains("ok=1")
                && (10 * PERIOD_US..20 * PERIOD_US).contains(&l.0)
        })
        .count();
    assert_eq!(accepted_while_mute, 10);
    let muted = lines
        .iter()
        .filter(|l| l.1 == "tx" && l.4 == "muted")
        .count();
    assert_eq!(muted as u64, report.frames_muted);
    let disarm = lines
        .iter()
        .find(|l| (l.1.as_str(), l.2.as_str()) == ("rx", "disarm"))
        .unwrap();
    assert_eq!(disarm.4, "arm=disarmed");
    let edges: Vec<&str> = lines
        .iter()
        .filter(|l| l.1 == "inject")
        .map(|l| l.2.as_str())
        .collect();
    assert_eq!(edges, ["mute_start", "mute_end"]);
}

#[test]
fn the_trace_shows_a_stalled_firmware_holding_its_action_until_the_watchdog_trips() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("stall.csv");
    let options = SimOptions {
        stall: Some(Window {
            at_us: 200_000,
            for_us: Some(400_000),
        }),
        trace: Some(trace.clone()),
        ..SimOptions::new(link(&dir, "stall"))
    };
    let sim = spawn(options, Integrator::boxed([0.0, 0.0])).unwrap();
    let mut host = Host::open(sim.link_path());
    host.send(Message::Arm);
    // Commands answer States until the firmware reports itself faulted after the stall.
    let mut seq = 0;
    loop {
        let (timestamp_us, state) = host.state();
        if state.arm_state == ArmState::Faulted {
            break;
        }
        seq += 1;
        // Valid for 1 s, so the commands queued while it stalls are not refused as late.
        host.command(seq, &[1.0], timestamp_us + 1_000_000);
    }
    sim.stop().unwrap();
    let lines = read_trace(&trace);
    let at = |what: &str| {
        lines
            .iter()
            .find(|l| (l.1.as_str(), l.2.as_str()) == ("inject", what))
            .map(|l| l.0)
            .unwrap()
    };
    let (start, end) = (at("stall_start"), at("stall_end"));
    let held: Vec<&Line> = lines.iter().filter(|l| l.1 == "held").collect();
    assert!(!held.is_empty());
    assert!(held.iter().all(|l| (start..end).contains(&l.0)));
    assert!(
        held.iter().all(|l| l.4 == "u=1"),
        "the held action is applied"
    );
    // The first tick after the stall is the watchdog's: safe values, latched flag.
    let first = lines.iter().find(|l| l.1 == "tick" && l.0 >= end).unwrap();
    assert_eq!(first.2, "faulted");
    assert_eq!(
        first.4,
        format!("flags={FAULT_WATCHDOG} u=0"),
        "watchdog only: the host's frames were still in the pty"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.1 == "tx" && l.4.contains("code=Watchdog"))
    );
}
