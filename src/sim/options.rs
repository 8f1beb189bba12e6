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
    pub stall: Option<Window>,
    pub disconnect: Option<Window>,
    pub watchdog_timeout_us: u32,
    pub heartbeat_interval_us: u32,
    pub host_timeout_us: u32,
    pub operator: Option<super::OperatorScript>,
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
            stall: None,
            disconnect: None,
            watchdog_timeout_us: 200_000,
            heartbeat_interval_us: 100_000,
            host_timeout_us: 500_000,
            operator: None,
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
            stall: self.stall_at_ms.map(|at| Window {
                at_us: ms_to_us(at),
                for_us: Some(ms_to_us(self.stall_for_ms)),
            }),
            disconnect: self.disconnect_at_ms.map(|at| Window {
                at_us: ms_to_us(at),
                for_us: self.reconnect_after_ms.map(ms_to_us),
            }),
            watchdog_timeout_us: ms_to_us_u32("watchdog_ms", self.watchdog_ms)?,
            heartbeat_interval_us: ms_to_us_u32("heartbeat_ms", self.heartbeat_ms)?,
            host_timeout_us: ms_to_us_u32("host_timeout_ms", self.host_timeout_ms)?,
            operator: self.operator,
        };
        options.validate()?;
        Ok(options)
    }

    /// The arguments after `sim`, such that parsing them gives back `self`.
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
        push("watchdog-ms", self.watchdog_ms.to_string());
        push("heartbeat-ms", self.heartbeat_ms.to_string());
        push("host-timeout-ms", self.host_timeout_ms.to_string());
        if let Some(script) = self.operator {
            use clap::ValueEnum;
            if let Some(name) = script.to_possible_value() {
                push("operator", name.get_name().to_owned());
            }
        }
        if self.lockstep {
            argv.push("--lockstep".into());
        }
        argv
    }
}
