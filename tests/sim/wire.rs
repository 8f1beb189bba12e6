//! The transmit path under injected faults and a host that stops reading (lockstep, so
//! every count is reproducible from the seed).

use handful::sim::{SimOptions, spawn};
use handful_protocol::*;

use super::host::{Host, Integrator, PERIOD_US};
use super::{assert_sane, lockstep};

#[test]
fn dropped_and_corrupted_frames_show_as_seq_gaps_and_decode_errors() {
    let dir = tempfile::tempdir().unwrap();
    let options = SimOptions {
        drop_prob: 0.1,
        corrupt_prob: 0.1,
        seed: 3,
        ..lockstep(&dir, "faults")
    };
    let sim = spawn(options, Integrator::boxed([0.0, 0.0])).unwrap();
    let mut host = Host::open(sim.link_path());
    // Disarmed, so paused: every command is answered, and the State timestamp counts the
    // commands handled. At most 8 in flight, so the pty never fills.
    const N: u64 = 800;
    let mut handled = 0u64;
    let mut sent = 0u64;
    while sent < N {
        if sent - handled < 8 {
            sent += 1;
            host.command(sent as u32, &[0.0], u64::MAX);
            continue;
        }
        match host.recv(200) {
            Some(Frame {
                timestamp_us,
                message: Message::State(_),
                ..
            }) => handled = handled.max(timestamp_us / PERIOD_US),
            Some(_) => {}
            // Every answer in flight was lost (or is late): send more anyway.
            None => handled = sent,
        }
    }
    // Hello until a Capabilities gets through: everything before it has been seen.
    let clock = handful::clock::Clock::real();
    let deadline = clock.now_us() + 10_000_000;
    'sync: loop {
        assert!(clock.now_us() < deadline, "no Capabilities got through");
        host.hello();
        while let Some(frame) = host.recv(100) {
            if let Message::Capabilities(_) = frame.message
                && frame.timestamp_us == N * PERIOD_US
            {
                break 'sync;
            }
        }
    }
    let report = sim.stop().unwrap();
    assert_sane(&report);
    assert_eq!(report.frames_lost_full, 0);
    // Frames the firmware queued: those up to the last one the host decoded, and after.
    let seen_horizon = u64::from(host.last_seq.unwrap()) + 1;
    let queued = report.frames_sent + report.frames_dropped;
    assert!(queued >= seen_horizon);
    let after_horizon = queued - seen_horizon;
    // Every frame missing at the host was dropped or corrupted, and vice versa up to the
    // frames after the horizon.
    let injected = report.frames_dropped + report.frames_corrupted;
    let missing = seen_horizon - host.frames;
    assert!(
        missing <= injected && injected <= missing + after_horizon,
        "missing {missing} injected {injected} after {after_horizon}"
    );
    for (what, count) in [
        ("dropped", report.frames_dropped),
        ("corrupted", report.frames_corrupted),
    ] {
        let rate = count as f64 / queued as f64;
        assert!((0.06..0.14).contains(&rate), "{what} rate {rate}");
    }
    let missing_rate = missing as f64 / seen_horizon as f64;
    assert!(
        (0.13..0.25).contains(&missing_rate),
        "missing rate {missing_rate}"
    );
    assert!(
        host.decode_errors > 0 && host.decode_errors <= 2 * report.frames_corrupted,
        "decode errors {}",
        host.decode_errors
    );
    let first_seq = u64::from(host.first_seq.unwrap());
    assert_eq!(
        host.missing + first_seq,
        missing,
        "seq gaps are the missing frames"
    );
}

#[test]
fn a_host_that_stops_reading_never_blocks_the_sim() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn(lockstep(&dir, "full"), Integrator::boxed([0.0, 0.0])).unwrap();
    let mut host = Host::open(sim.link_path());
    // ~175 kB of answers, far more than the pty buffers, and nobody reading them. If
    // the sim blocked on the full pty it would stop reading, and these writes would
    // time out.
    const N: u64 = 5_000;
    for k in 1..=N {
        host.command(k as u32, &[0.0], u64::MAX);
    }
    // Now read: the backlog, then the answer to a Hello sent after all the commands.
    let clock = handful::clock::Clock::real();
    let deadline = clock.now_us() + 20_000_000;
    'sync: loop {
        assert!(
            clock.now_us() < deadline,
            "no Capabilities after the commands"
        );
        host.hello();
        while let Some(frame) = host.recv(100) {
            if let Message::Capabilities(_) = frame.message
                && frame.timestamp_us == N * PERIOD_US
            {
                break 'sync;
            }
        }
    }
    let report = sim.stop().unwrap();
    assert_sane(&report);
    assert!(report.frames_lost_full > 0, "the pty filled up");
    assert!(host.missing > 0, "the host sees the loss as seq gaps");
    assert_eq!(
        host.decode_errors, 0,
        "whole frames only, even when the pty is full"
    );
    assert!(report.frames_received > N, "every command was read");
    assert_eq!(report.decode_errors, 0);
}
