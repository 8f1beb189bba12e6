//! The simulator's options: [`SimArgs`] as typed on the command line (flattened into
//! `handful sim <plant> ...`, and rendered back to argv for [`spawn_process`]), and the
//! validated, immutable [`SimOptions`] the simulator runs with.
//!
//! Fault-injection times are on the firmware clock (sim time), so lockstep runs are
//! deterministic. Parsing and checking happen once here; nothing downstream re-checks.
//!
//! [`spawn_process`]: super::spawn_process

use std::ffi::OsString;
use std::path::PathBuf;

use clap::ValueEnum;

use super::SimError;
use crate::plant::PlantKind;

/// `handful sim` arguments (raw, as typed).
#[derive(Clone, Debug, PartialEq, clap::Args)]
pub struct SimArgs {
    /// The plant to simulate.
    #[arg(value_enum)]
    pub plant: PlantKind,
    /// The stable path the host opens, a symlink to the pty (default: /tmp/handful-sim-PLANT).
    #[arg(long, value_name = "PATH")]
    pub link: Option<PathBuf>,
    /// Advance the plant one control period per Command instead of on a wall clock.
    #[arg(long)]
    pub lockstep: bool,
    /// Seed of every random draw of the simulator (sensor noise, fault injection).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Standard deviation of Gaussian noise added to every published state value (SI units).
    #[arg(long, value_name = "STD", default_value_t = 0.0)]
    pub sensor_noise: f64,
    /// Published states are this old (rounded up to whole control periods).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub sensor_latency_ms: u64,
    /// Probability of dropping each outgoing frame.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub drop_prob: f64,
    /// Probability of flipping one random bit of each outgoing encoded frame.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub corrupt_prob: f64,
    /// Line noise: probability of corrupting each byte on the wire, both ways (replaced
    /// by another value; frame delimiters too, so frames merge and split).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub corrupt_byte_prob: f64,
    /// Sim time at which the firmware stalls (stops reading and publishing).
    #[arg(long, value_name = "MS")]
    pub stall_at_ms: Option<u64>,
    /// How long the stall lasts.
    #[arg(long, value_name = "MS", default_value_t = 0, requires = "stall_at_ms")]
    pub stall_for_ms: u64,
    /// Sim time at which the pty is closed and the link removed (the cable is pulled).
    #[arg(long, value_name = "MS")]
    pub disconnect_at_ms: Option<u64>,
    /// A new pty and link appear this long after the disconnect (default: never).
    #[arg(long, value_name = "MS", requires = "disconnect_at_ms")]
    pub reconnect_after_ms: Option<u64>,
    /// Sim time of the first latency spike: outgoing frames are held back, then
    /// delivered at once, in order (a buffering USB-serial adapter). Real time only.
    #[arg(long, value_name = "MS")]
    pub latency_spike_at_ms: Option<u64>,
    /// How long each latency spike holds frames back.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 100,
        requires = "latency_spike_at_ms"
    )]
    pub latency_spike_ms: u64,
    /// A latency spike every this often from the first (default: only one).
    #[arg(long, value_name = "MS", requires = "latency_spike_at_ms")]
    pub latency_spike_every_ms: Option<u64>,
    /// Sim time from which the firmware sends no more Heartbeats, as if its heartbeat
    /// task had hung (States go on, the frame seq has no gap).
    #[arg(long, value_name = "MS")]
    pub heartbeat_stop_at_ms: Option<u64>,
    /// Sim time at which nothing the firmware sends reaches the host any more (a broken
    /// transmit line); it still receives and obeys the host.
    #[arg(long, value_name = "MS")]
    pub mute_at_ms: Option<u64>,
    /// How long the firmware stays mute (default: for good).
    #[arg(long, value_name = "MS", requires = "mute_at_ms")]
    pub mute_for_ms: Option<u64>,
    /// Sim time at which the sensors fail: every published state value is NaN.
    #[arg(long, value_name = "MS")]
    pub sensor_fail_at_ms: Option<u64>,
    /// How long the sensors stay failed (default: for good).
    #[arg(long, value_name = "MS", requires = "sensor_fail_at_ms")]
    pub sensor_fail_for_ms: Option<u64>,
    /// Firmware watchdog: longest time armed without an accepted command.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    pub watchdog_ms: u32,
    /// Firmware heartbeat interval.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub heartbeat_ms: u32,
    /// Firmware host timeout: longest time armed without any frame from the host.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub host_timeout_ms: u32,
    /// A scripted operator at the robot's controls, forwarded in Teleop frames (real
    /// time only).
    #[arg(long, value_enum)]
    pub operator: Option<super::OperatorScript>,
    /// Write a CSV trace of what the robot saw and did, on the firmware clock: every
    /// tick (arm state, fault flags, actuation), every host frame handled, the fate of
    /// every outgoing frame, and the edges of every injected fault.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// A calibration whose `[plant]` table gives the plant's physics (masses, lengths,
    /// damping, gear, rail); without one, the benchmark's.
    #[arg(long, value_name = "FILE")]
    pub calib: Option<PathBuf>,
}

/// Latency spikes: `[at_us + k·every_us, at_us + k·every_us + hold_us)` for k = 0, 1, ...
/// (only k = 0 without `every_us`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spikes {
    pub at_us: u64,
    pub hold_us: u64,
    pub every_us: Option<u64>,
}

impl Spikes {
    /// Whether `now_us` lies inside a spike.
    pub fn contains(&self, now_us: u64) -> bool {
        let Some(since) = now_us.checked_sub(self.at_us) else {
            return false;
        };
        let into = match self.every_us {
            Some(every) => since % every.max(1),
            None => since,
        };
        into < self.hold_us
    }
}

/// A window of sim time, `[at_us, at_us + for_us)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub at_us: u64,
    /// `None`: never ends.
    pub for_us: Option<u64>,
}

impl Window {
    pub fn end_us(&self) -> Option<u64> {
        self.for_us.map(|d| self.at_us.saturating_add(d))
    }

    /// Whether `now_us` lies inside the window.
    pub fn contains(&self, now_us: u64) -> bool {
        now_us >= self.at_us && self.end_us().is_none_or(|end| now_us < end)
    }
}

/// Validated simulator options (the plant is passed to [`run`](super::run) separately).
#[derive(Clone, Debug, PartialEq)]
pub struct SimOptions {
    /// The symlink the host opens.
    pub link: PathBuf,
    pub lockstep: bool,
    pub seed: u64,
    pub sensor_noise_std: f64,
    pub sensor_latency_us: u64,
    pub drop_prob: f64,
    pub corrupt_prob: f64,
    /// Per byte, both directions.
    pub corrupt_byte_prob: f64,
    pub stall: Option<Window>,
    pub disconnect: Option<Window>,
    pub latency_spikes: Option<Spikes>,
    /// Sim time from which no Heartbeat is sent.
    pub heartbeat_stop_us: Option<u64>,
    /// Nothing the firmware sends reaches the host inside this window.
    pub mute: Option<Window>,
    /// The sensors read NaN inside this window (a failed sensor or its wiring).
    pub sensor_failure: Option<Window>,
    pub watchdog_timeout_us: u32,
    pub heartbeat_interval_us: u32,
    pub host_timeout_us: u32,
    pub operator: Option<super::OperatorScript>,
    /// The CSV trace file (`--trace`).
    pub trace: Option<PathBuf>,
}

impl SimOptions {
    /// Defaults (real time, no noise, no faults) with the link at `link`.
    pub fn new(link: impl Into<PathBuf>) -> Self {
        Self {
            link: link.into(),
            lockstep: false,
            seed: 0,
            sensor_noise_std: 0.0,
            sensor_latency_us: 0,
            drop_prob: 0.0,
            corrupt_prob: 0.0,
            corrupt_byte_prob: 0.0,
            stall: None,
            disconnect: None,
            latency_spikes: None,
            heartbeat_stop_us: None,
            mute: None,
            sensor_failure: None,
            watchdog_timeout_us: 200_000,
            heartbeat_interval_us: 100_000,
            host_timeout_us: 500_000,
            operator: None,
            trace: None,
        }
    }

    /// Checks every value; the first bad one is the error.
    pub fn validate(&self) -> Result<(), SimError> {
        let probability = |name: &'static str, p: f64| {
            if (0.0..=1.0).contains(&p) {
                Ok(())
            } else {
                Err(invalid(name, p, "a probability in [0, 1]"))
            }
        };
        probability("drop_prob", self.drop_prob)?;
        probability("corrupt_prob", self.corrupt_prob)?;
        probability("corrupt_byte_prob", self.corrupt_byte_prob)?;
        if let Some(spikes) = self.latency_spikes {
            if spikes.hold_us == 0 {
                return Err(invalid("latency_spike_ms", 0, "a duration > 0 ms"));
            }
            if spikes.every_us.is_some_and(|every| every <= spikes.hold_us) {
                let every_ms = spikes.every_us.unwrap_or(0) / 1_000;
                return Err(invalid(
                    "latency_spike_every_ms",
                    every_ms,
                    "longer than latency_spike_ms (spikes one after another)",
                ));
            }
            if self.lockstep {
                return Err(invalid(
                    "latency_spike_at_ms",
                    "with --lockstep",
                    "real time only (in lockstep the host waits for every answer)",
                ));
            }
        }
        if !(self.sensor_noise_std.is_finite() && self.sensor_noise_std >= 0.0) {
            let expected = "a finite standard deviation >= 0";
            return Err(invalid("sensor_noise", self.sensor_noise_std, expected));
        }
        for (name, value) in [
            ("watchdog_ms", self.watchdog_timeout_us),
            ("heartbeat_ms", self.heartbeat_interval_us),
            ("host_timeout_ms", self.host_timeout_us),
        ] {
            if value == 0 {
                return Err(invalid(name, 0, "a duration > 0 ms"));
            }
        }
        if self.operator.is_some() && self.lockstep {
            return Err(invalid(
                "operator",
                "with --lockstep",
                "real time only (a person's inputs are timed)",
            ));
        }
        if self.link.as_os_str().is_empty() {
            return Err(invalid("link", "", "a file path"));
        }
        Ok(())
    }
}

fn invalid(name: &'static str, value: impl ToString, expected: &'static str) -> SimError {
    SimError::InvalidOption {
        name,
        value: value.to_string(),
        expected,
    }
}

fn ms_to_us<T: Into<u64>>(ms: T) -> u64 {
    ms.into().saturating_mul(1_000)
}

fn ms_to_us_u32(name: &'static str, ms: u32) -> Result<u32, SimError> {
    ms.checked_mul(1_000)
        .ok_or_else(|| invalid(name, ms, "at most 4294967 ms"))
}

impl SimArgs {
    /// The link path: `--link`, or `/tmp/handful-sim-<plant>`.
    pub fn link_path(&self) -> PathBuf {
        self.link
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("/tmp/handful-sim-{}", self.plant.name())))
    }

    /// Validates into [`SimOptions`].
    pub fn to_options(&self) -> Result<SimOptions, SimError> {
        let options = SimOptions {
            link: self.link_path(),
            lockstep: self.lockstep,
            seed: self.seed,
            sensor_noise_std: self.sensor_noise,
            sensor_latency_us: ms_to_us(self.sensor_latency_ms),
            drop_prob: self.drop_prob,
            corrupt_prob: self.corrupt_prob,
            corrupt_byte_prob: self.corrupt_byte_prob,
            stall: self.stall_at_ms.map(|at| Window {
                at_us: ms_to_us(at),
                for_us: Some(ms_to_us(self.stall_for_ms)),
            }),
            disconnect: self.disconnect_at_ms.map(|at| Window {
                at_us: ms_to_us(at),
                for_us: self.reconnect_after_ms.map(ms_to_us),
            }),
            latency_spikes: self.latency_spike_at_ms.map(|at| Spikes {
                at_us: ms_to_us(at),
                hold_us: ms_to_us(self.latency_spike_ms),
                every_us: self.latency_spike_every_ms.map(ms_to_us),
            }),
            heartbeat_stop_us: self.heartbeat_stop_at_ms.map(ms_to_us),
            mute: self.mute_at_ms.map(|at| Window {
                at_us: ms_to_us(at),
                for_us: self.mute_for_ms.map(ms_to_us),
            }),
            sensor_failure: self.sensor_fail_at_ms.map(|at| Window {
                at_us: ms_to_us(at),
                for_us: self.sensor_fail_for_ms.map(ms_to_us),
            }),
            watchdog_timeout_us: ms_to_us_u32("watchdog_ms", self.watchdog_ms)?,
            heartbeat_interval_us: ms_to_us_u32("heartbeat_ms", self.heartbeat_ms)?,
            host_timeout_us: ms_to_us_u32("host_timeout_ms", self.host_timeout_ms)?,
            operator: self.operator,
            trace: self.trace.clone(),
        };
        options.validate()?;
        Ok(options)
    }

    /// The arguments after `sim`, such that parsing them gives back `self`.
    /// The plant's physics: the `[plant]` of `--calib` (whose task must be this
    /// plant's), or the benchmark's.
    pub fn plant_params(&self) -> anyhow::Result<crate::plant::PlantParams> {
        let Some(path) = &self.calib else {
            return Ok(crate::plant::PlantParams::default_for(self.plant));
        };
        let calib = crate::calib::Calibration::load(path)?;
        if calib.plant.kind() != self.plant {
            anyhow::bail!(
                "calibration {} is for a {} (task {}), not a {}",
                path.display(),
                calib.plant.kind().name(),
                calib.task.name(),
                self.plant.name()
            );
        }
        Ok(calib.plant)
    }

    pub fn to_argv(&self) -> Vec<OsString> {
        let plant = self
            .plant
            .to_possible_value()
            .map_or_else(|| self.plant.name().to_owned(), |v| v.get_name().to_owned());
        let mut argv = vec![OsString::from(plant)];
        if let Some(link) = &self.link {
            let mut arg = OsString::from("--link=");
            arg.push(link);
            argv.push(arg);
        }
        // `--flag=value`, so a value starting with `-` is never taken for a flag.
        let mut push = |flag: &str, value: String| argv.push(format!("--{flag}={value}").into());
        push("seed", self.seed.to_string());
        // `{:?}` prints the shortest decimal that parses back to the same f64.
        push("sensor-noise", format!("{:?}", self.sensor_noise));
        push("sensor-latency-ms", self.sensor_latency_ms.to_string());
        push("drop-prob", format!("{:?}", self.drop_prob));
        push("corrupt-prob", format!("{:?}", self.corrupt_prob));
        if self.corrupt_byte_prob != 0.0 {
            push("corrupt-byte-prob", format!("{:?}", self.corrupt_byte_prob));
        }
        if let Some(at) = self.stall_at_ms {
            push("stall-at-ms", at.to_string());
            push("stall-for-ms", self.stall_for_ms.to_string());
        }
        if let Some(at) = self.disconnect_at_ms {
            push("disconnect-at-ms", at.to_string());
        }
        if let Some(after) = self.reconnect_after_ms {
            push("reconnect-after-ms", after.to_string());
        }
        if let Some(at) = self.latency_spike_at_ms {
            push("latency-spike-at-ms", at.to_string());
            push("latency-spike-ms", self.latency_spike_ms.to_string());
        }
        if let Some(every) = self.latency_spike_every_ms {
            push("latency-spike-every-ms", every.to_string());
        }
        if let Some(at) = self.heartbeat_stop_at_ms {
            push("heartbeat-stop-at-ms", at.to_string());
        }
        if let Some(at) = self.mute_at_ms {
            push("mute-at-ms", at.to_string());
        }
        if let Some(duration) = self.mute_for_ms {
            push("mute-for-ms", duration.to_string());
        }
        if let Some(at) = self.sensor_fail_at_ms {
            push("sensor-fail-at-ms", at.to_string());
        }
        if let Some(duration) = self.sensor_fail_for_ms {
            push("sensor-fail-for-ms", duration.to_string());
        }
        push("watchdog-ms", self.watchdog_ms.to_string());
        push("heartbeat-ms", self.heartbeat_ms.to_string());
        push("host-timeout-ms", self.host_timeout_ms.to_string());
        if let Some(script) = self.operator {
            use clap::ValueEnum;
            if let Some(name) = script.to_possible_value() {
                push("operator", name.get_name().to_owned());
            }
        }
        if let Some(trace) = &self.trace {
            let mut arg = OsString::from("--trace=");
            arg.push(trace);
            argv.push(arg);
        }
        if let Some(calib) = &self.calib {
            let mut arg = OsString::from("--calib=");
            arg.push(calib);
            argv.push(arg);
        }
        if self.lockstep {
            argv.push("--lockstep".into());
        }
        argv
    }
}
