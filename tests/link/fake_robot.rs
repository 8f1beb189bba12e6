//! A fake robot for the link tests: `handful_firmware::Firmware` with a tiny fixed
//! config behind a pseudo-terminal, ticking on the real clock, with knobs to misbehave
//! (drop frames, inject bytes, ignore Hellos, pause) and counters of what it received.
//!
//! Test support only; it is deliberately not the real simulated robot.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use handful::clock::Clock;
use handful::thread::{JoinOnDrop, spawn_named};
use handful_firmware::{ChannelSpec, Event, Firmware, FirmwareConfig, Outbox};
use handful_protocol::{Decoder, MAX_ENCODED_LEN, Message, Name, Teleop, Unit, encode};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};

pub const ROBOT_ID: &str = "fake-bot";
pub const PERIOD_US: u32 = 5_000;
pub const HEARTBEAT_US: u32 = 20_000;
pub const WATCHDOG_US: u32 = 500_000;

fn channel(name: &str, unit: &str, min: f32, max: f32, safe: f32) -> ChannelSpec {
    ChannelSpec {
        name: Name::new(name).unwrap(),
        unit: Unit::new(unit).unwrap(),
        min,
        max,
        safe,
    }
}

/// Two state channels (`position` m, raw values in [-1, 1] for a ResetTo, `velocity`
/// m/s), one action (`force` N in [-2, 2]). `CAP_RESET` only.
pub fn config() -> FirmwareConfig {
    FirmwareConfig {
        robot_id: Name::new(ROBOT_ID).unwrap(),
        firmware_version: [0, 1, 0],
        state_channels: [
            channel("position", "m", -1.0, 1.0, 0.0),
            channel("velocity", "m/s", f32::NEG_INFINITY, f32::INFINITY, 0.0),
        ]
        .into_iter()
        .collect(),
        action_channels: [channel("force", "N", -2.0, 2.0, 0.0)]
            .into_iter()
            .collect(),
        control_period_us: PERIOD_US,
        watchdog_timeout_us: WATCHDOG_US,
        heartbeat_interval_us: HEARTBEAT_US,
        host_timeout_us: 500_000,
        capabilities: handful_protocol::CAP_RESET,
    }
}

/// Knobs and counters shared between a test and the robot thread.
#[derive(Default)]
pub struct Control {
    stop: AtomicBool,
    /// No ticks (no State, no Heartbeat) while set.
    pub paused: AtomicBool,
    /// Raw state values as f32 bits.
    pub raw_state: [AtomicU32; 2],
    /// Encoded frames to discard instead of writing (their seq is still consumed).
    pub drop_next_frames: AtomicU32,
    /// Hellos to ignore, as if they were lost on the line.
    pub ignore_hellos: AtomicU32,
    /// Operator inputs to forward once, as a Teleop frame.
    pub teleop: Mutex<Option<Teleop>>,
    /// Bytes to write between two frames.
    pub inject: Mutex<Vec<u8>>,
    /// Seq of every Command frame received, in order.
    pub command_seqs: Mutex<Vec<u32>>,
    pub host_heartbeats: AtomicU64,
    pub hellos: AtomicU64,
    pub accepted_commands: AtomicU64,
    /// ResetTo frames received (accepted or not).
    pub reset_tos: AtomicU64,
}

impl Control {
    pub fn set_state(&self, raw: [f32; 2]) {
        for (slot, value) in self.raw_state.iter().zip(raw) {
            slot.store(value.to_bits(), Ordering::Relaxed);
        }
    }

    pub fn inject(&self, bytes: &[u8]) {
        self.inject.lock().unwrap().extend_from_slice(bytes);
    }
}

/// A running fake robot. Dropping it closes the pty (the host sees a hang-up).
pub struct FakeRobot {
    pub control: Arc<Control>,
    pub tty_path: PathBuf,
    _thread: JoinOnDrop<()>,
}

impl FakeRobot {
    pub fn start() -> Self {
        Self::start_with(config())
    }

    /// A fake robot announcing `config` (another robot's channels or limits).
    pub fn start_with(config: FirmwareConfig) -> Self {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let mut termios = tcgetattr(&pty.slave).expect("tcgetattr");
        cfmakeraw(&mut termios);
        tcsetattr(&pty.slave, SetArg::TCSANOW, &termios).expect("tcsetattr");
        fcntl(&pty.master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("nonblocking master");
        let tty_path = nix::unistd::ttyname(&pty.slave).expect("ttyname");
        let control = Arc::new(Control::default());
        let ctl = Arc::clone(&control);
        let (master, slave) = (pty.master, pty.slave);
        let thread = spawn_named("test-fake-robot", move || {
            run(&ctl, &master, config);
            drop(slave);
        })
        .expect("spawn fake robot");
        Self {
            control,
            tty_path,
            _thread: thread,
        }
    }

    /// Points the symlink `link` at this robot's pty, atomically replacing it.
    pub fn expose_at(&self, link: &Path) {
        let tmp = link.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&self.tty_path, &tmp).expect("symlink");
        std::fs::rename(&tmp, link).expect("rename symlink");
    }
}

impl Drop for FakeRobot {
    fn drop(&mut self) {
        self.control.stop.store(true, Ordering::Release);
    }
}

fn write_all(master: &OwnedFd, mut bytes: &[u8]) {
    let mut stalls = 0;
    while !bytes.is_empty() {
        match nix::unistd::write(master.as_fd(), bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EAGAIN) if stalls < 1_000 => {
                stalls += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(_) => return,
        }
    }
}

fn run(ctl: &Control, master: &OwnedFd, config: FirmwareConfig) {
    let clock = Clock::real();
    let mut firmware = Firmware::new(config);
    let mut decoder = Decoder::new();
    let mut outbox = Outbox::new();
    let mut wire = [0u8; MAX_ENCODED_LEN];
    let mut buf = [0u8; 512];
    let mut next_tick_us = clock.now_us();
    while !ctl.stop.load(Ordering::Acquire) {
        // EAGAIN: nothing to read; EIO: no host has the slave open yet.
        while let Ok(n @ 1..) = nix::unistd::read(master.as_fd(), &mut buf) {
            for &byte in &buf[..n] {
                let Some(Ok(frame)) = decoder.push(byte) else {
                    continue;
                };
                match frame.message {
                    Message::Hello(_) => {
                        ctl.hellos.fetch_add(1, Ordering::Relaxed);
                        let ignored = ctl.ignore_hellos.fetch_update(
                            Ordering::AcqRel,
                            Ordering::Acquire,
                            |n| n.checked_sub(1),
                        );
                        if ignored.is_ok() {
                            continue;
                        }
                    }
                    Message::Command(c) => ctl.command_seqs.lock().unwrap().push(c.seq),
                    Message::Heartbeat(_) => {
                        ctl.host_heartbeats.fetch_add(1, Ordering::Relaxed);
                    }
                    Message::ResetTo(_) => {
                        ctl.reset_tos.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                // A ResetTo the firmware accepts sets the raw state, like a plant would.
                if let Some(Event::ResetTo { state }) =
                    firmware.handle(&frame, clock.now_us(), &mut outbox)
                    && let Ok(raw) = <[f32; 2]>::try_from(state.as_slice())
                {
                    ctl.set_state(raw);
                }
            }
        }
        let now_us = clock.now_us();
        if now_us >= next_tick_us && !ctl.paused.load(Ordering::Acquire) {
            let state = ctl
                .raw_state
                .each_ref()
                .map(|bits| f32::from_bits(bits.load(Ordering::Relaxed)));
            firmware.tick(now_us, &state, 0, &mut outbox);
            ctl.accepted_commands
                .store(firmware.accepted_commands(), Ordering::Relaxed);
            next_tick_us += u64::from(PERIOD_US);
            if next_tick_us <= now_us {
                next_tick_us = now_us + u64::from(PERIOD_US);
            }
        }
        if let Some(teleop) = ctl.teleop.lock().unwrap().take() {
            firmware.forward_teleop(now_us, teleop, &mut outbox);
        }
        while let Some(frame) = outbox.pop_front() {
            let dropped =
                ctl.drop_next_frames
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
            if dropped.is_ok() {
                continue;
            }
            let n = encode(&frame, &mut wire).expect("encode");
            write_all(master, &wire[..n]);
        }
        let injected = std::mem::take(&mut *ctl.inject.lock().unwrap());
        write_all(master, &injected);
        clock.sleep_us(500);
    }
}
