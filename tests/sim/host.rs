//! The host side of the simulator tests: a tiny link over the real pty (opened with
//! `serialport`, as the controller does) that encodes frames with
//! `handful_protocol::encode` and decodes them with `Decoder`, and the test plant (a
//! damped double integrator) with its reference model.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use handful::clock::Clock;
use handful::plant::{ActionSpec, Plant, PlantSpec, StateSpec};
use handful::task::Task;
use handful_protocol::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serialport::TTYPort;

pub const PERIOD_US: u64 = 10_000;
const DT_S: f64 = PERIOD_US as f64 * 1e-6;
const DAMPING_PER_S: f64 = 2.0;

pub static SPEC: PlantSpec = PlantSpec {
    robot_id: "test-integrator",
    task: Task::CartpoleSwingup,
    control_period_us: PERIOD_US as u32,
    states: &[
        StateSpec {
            name: "position",
            unit: "m",
        },
        StateSpec {
            name: "velocity",
            unit: "m/s",
        },
    ],
    actions: &[ActionSpec {
        name: "force",
        unit: "N",
        min: -2.0,
        max: 2.0,
        safe: 0.0,
    }],
};

/// A unit mass on a damped rail: `v += (u - c v) dt; x += v dt`.
pub struct Integrator {
    pub state: [f64; 2],
}

impl Integrator {
    pub fn boxed(state: [f64; 2]) -> Box<dyn Plant> {
        Box::new(Self { state })
    }

    /// The reference model the host predicts with.
    pub fn next(state: [f64; 2], force: f64) -> [f64; 2] {
        let v = state[1] + (force - DAMPING_PER_S * state[1]) * DT_S;
        [state[0] + v * DT_S, v]
    }

    /// The start state a seed draws.
    pub fn start(rng: &mut ChaCha8Rng) -> [f64; 2] {
        [rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)]
    }
}

impl Plant for Integrator {
    fn spec(&self) -> &'static PlantSpec {
        &SPEC
    }
    fn state(&self) -> &[f64] {
        &self.state
    }
    fn reset(&mut self, rng: &mut ChaCha8Rng) {
        self.state = Self::start(rng);
    }
    fn set_state(&mut self, state: &[f64]) {
        self.state.copy_from_slice(state);
    }
    fn step(&mut self, action: &[f64]) {
        self.state = Self::next(self.state, action[0].clamp(-2.0, 2.0));
    }
    fn fault_flags(&self) -> u32 {
        0
    }
}

pub fn as_f32(state: [f64; 2]) -> [f32; 2] {
    [state[0] as f32, state[1] as f32]
}

/// The controller's end of the wire.
pub struct Host {
    port: TTYPort,
    decoder: Decoder,
    seq: u32,
    inbox: VecDeque<Frame>,
    clock: Clock,
    /// Valid frames received.
    pub frames: u64,
    pub decode_errors: u64,
    /// Frames missing between the valid ones received (seq gaps).
    pub missing: u64,
    pub last_seq: Option<u32>,
    pub first_seq: Option<u32>,
}

impl Host {
    pub fn open(path: &Path) -> Self {
        let port = serialport::new(path.to_str().unwrap(), 1_000_000)
            .timeout(Duration::from_millis(20))
            .open_native()
            .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
        Self {
            port,
            decoder: Decoder::new(),
            seq: 0,
            inbox: VecDeque::new(),
            clock: Clock::real(),
            frames: 0,
            decode_errors: 0,
            missing: 0,
            last_seq: None,
            first_seq: None,
        }
    }

    pub fn send(&mut self, message: Message) {
        let frame = Frame {
            seq: self.seq,
            timestamp_us: 0,
            message,
        };
        self.seq += 1;
        let mut wire = [0u8; MAX_ENCODED_LEN];
        let n = encode(&frame, &mut wire).unwrap();
        self.port.write_all(&wire[..n]).expect("host write");
    }

    pub fn hello(&mut self) {
        self.send(Message::Hello(Hello {
            protocol_min: 1,
            protocol_max: 1,
        }));
    }

    pub fn command(&mut self, seq: u32, values: &[f32], valid_until_us: u64) {
        let values = ActionVector::from_slice(values).unwrap();
        self.send(Message::Command(Command {
            seq,
            valid_until_us,
            values,
        }));
    }

    /// Reads what is there (waiting at most the port timeout) into the inbox; `Err` when
    /// the port is gone.
    pub fn pump(&mut self) -> std::io::Result<()> {
        let mut buf = [0u8; 4096];
        let n = match self.port.read(&mut buf) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => 0,
            Err(e) => return Err(e),
        };
        for &byte in &buf[..n] {
            match self.decoder.push(byte) {
                None => {}
                Some(Err(_)) => self.decode_errors += 1,
                Some(Ok(frame)) => {
                    if let Some(last) = self.last_seq {
                        self.missing += u64::from(frame.seq.wrapping_sub(last).wrapping_sub(1));
                    }
                    self.last_seq = Some(frame.seq);
                    self.first_seq.get_or_insert(frame.seq);
                    self.frames += 1;
                    self.inbox.push_back(frame);
                }
            }
        }
        Ok(())
    }

    /// The next frame, waiting up to `timeout_ms`.
    pub fn recv(&mut self, timeout_ms: u64) -> Option<Frame> {
        let deadline = self.clock.now_us() + timeout_ms * 1_000;
        loop {
            if let Some(frame) = self.inbox.pop_front() {
                return Some(frame);
            }
            if self.clock.now_us() >= deadline || self.pump().is_err() {
                return None;
            }
        }
    }

    /// The next frame whose message `pick` accepts (others are discarded), within 5 s.
    pub fn expect<T>(&mut self, what: &str, mut pick: impl FnMut(&Frame) -> Option<T>) -> T {
        let deadline = self.clock.now_us() + 5_000_000;
        while self.clock.now_us() < deadline {
            if let Some(found) = self.recv(100).as_ref().and_then(&mut pick) {
                return found;
            }
        }
        panic!("no {what} within 5 s");
    }

    /// The next State, with its timestamp.
    pub fn state(&mut self) -> (u64, State) {
        self.expect("State", |f| match &f.message {
            Message::State(s) => Some((f.timestamp_us, *s)),
            _ => None,
        })
    }

    /// Every frame up to (excluding) the next Capabilities, which answers a Hello sent
    /// now: all frames the simulator sent before handling the Hello.
    pub fn sync(&mut self) -> Vec<Frame> {
        self.hello();
        let mut before = Vec::new();
        loop {
            let frame = self.recv(5_000).expect("no Capabilities after Hello");
            if matches!(frame.message, Message::Capabilities(_)) {
                return before;
            }
            before.push(frame);
        }
    }
}
