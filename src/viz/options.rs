//! Where the visualisation goes ([`VizSink`]), how big its queues are ([`VizOptions`]), and
//! the command-line flags the binary flattens into its subcommands ([`VizArgs`]).
//!
//! rerun's own `rerun::clap::RerunArgs` is not used: it spawns a viewer unless told
//! otherwise (a run must default to no viewer), has no "off", keeps its fields private (no
//! conversion to [`VizOptions`]) and returns `anyhow` errors. The flags below keep its
//! familiar names: `--spawn`, `--connect [URL]`, `--save FILE`, `--stdout`.

use std::path::PathBuf;

/// The viewer's default gRPC proxy address (what `rerun` listens on when started bare).
pub const DEFAULT_CONNECT_URL: &str = "rerun+http://127.0.0.1:9876/proxy";

/// Where the recording goes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum VizSink {
    /// Nowhere: no thread is started, senders discard everything.
    #[default]
    Off,
    /// Start a viewer process (`rerun` on `PATH`, else `.venv/bin/rerun`) and stream to it.
    Spawn,
    /// Stream to a running viewer or server at this `rerun+http://…/proxy` URL.
    Connect(String),
    /// Write an `.rrd` file (flushed when the [`super::Viz`] is dropped or finished).
    Save(PathBuf),
    /// Write the `.rrd` stream to standard output (`handful view … --stdout | rerun -`).
    Stdout,
}

/// Everything [`super::Viz::start`] needs besides the calibration.
#[derive(Clone, Debug, PartialEq)]
pub struct VizOptions {
    pub sink: VizSink,
    /// The application id shown in the viewer.
    pub application_id: String,
    /// The recording's name (e.g. the run name).
    pub recording_name: Option<String>,
    /// Slots of the ordinary event queue: at least a second of ticks, so a viewer that
    /// stalls briefly does not cost data.
    pub event_capacity: usize,
    /// Slots of the plan queue (plans are ~8 KiB each).
    pub plan_capacity: usize,
    /// Plans kept until the states they predicted have been observed (for the
    /// actual-versus-predicted comparison).
    pub plans_kept: usize,
    /// The viewer executable for [`VizSink::Spawn`] (default: `rerun` on `PATH`, else
    /// `.venv/bin/rerun` under the working directory).
    pub viewer: Option<PathBuf>,
    /// [`VizSink::Save`]: a new file every this many µs of wall time (`viz.rrd`, then
    /// `viz.001.rrd`, ...). rerun's file writer keeps every chunk's metadata in memory
    /// until its file ends (about 0.6 MB a second here), so one file for a run of hours
    /// would hold gigabytes; each segment ends with its footer and frees it.
    pub segment_us: u64,
    /// [`VizSink::Save`]: the recording's files together stay within this many bytes:
    /// at each new file, the oldest are deleted (the newest hours are kept). `None`: no
    /// limit.
    pub budget_bytes: Option<u64>,
    /// Time series, robot and timing of every `tick_every`-th tick only (1: all); mode
    /// changes, faults and counters are seen on every tick.
    pub tick_every: u32,
    /// The plan of every `plans_every`-th tick only (1: all).
    pub plans_every: u32,
}

impl Default for VizOptions {
    fn default() -> Self {
        Self {
            sink: VizSink::Off,
            application_id: "handful".to_owned(),
            recording_name: None,
            event_capacity: 4096,
            plan_capacity: 64,
            plans_kept: 64,
            viewer: None,
            segment_us: 60_000_000,
            budget_bytes: Some(DEFAULT_BUDGET_MB * 1_000_000),
            tick_every: 1,
            plans_every: 1,
        }
    }
}

impl VizOptions {
    pub fn with_sink(sink: VizSink) -> Self {
        Self {
            sink,
            ..Self::default()
        }
    }
}

/// Viewer flags for the binary: `#[command(flatten)] viz: VizArgs`. At most one sink.
#[derive(Clone, Debug, Default, clap::Args)]
#[group(id = "viz-sink", multiple = false)]
pub struct VizArgs {
    /// Start a rerun viewer and stream to it.
    #[arg(long)]
    pub spawn: bool,
    /// Stream to a running rerun viewer (default URL rerun+http://127.0.0.1:9876/proxy).
    #[arg(long, value_name = "URL")]
    #[allow(clippy::option_option)] // absent / flag alone / flag with a URL
    pub connect: Option<Option<String>>,
    /// Write the visualisation to an .rrd file (open it with `rerun FILE`).
    #[arg(long, value_name = "FILE.rrd")]
    pub save: Option<PathBuf>,
    /// Write the .rrd stream to standard output (pipe it into `rerun -`).
    #[arg(long)]
    pub stdout: bool,
}

/// Decimation and the size budget of the visualisation (all sinks; the budget applies
/// to `--save`).
#[derive(Clone, Debug, clap::Args)]
pub struct VizLimits {
    /// Log the time series of every Nth tick only (an onboard computer streaming to a
    /// laptop: 5; faults, modes and counters are still seen on every tick).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub viz_every: u32,
    /// Log the plan of every Nth tick only (onboard: 20).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub viz_plans_every: u32,
    /// `--save`: the recording's files stay within this many MB; the oldest minute-long
    /// files are deleted first (0: no limit).
    #[arg(long, default_value_t = DEFAULT_BUDGET_MB, value_name = "MB")]
    pub viz_budget_mb: u64,
}

impl Default for VizLimits {
    fn default() -> Self {
        Self {
            viz_every: 1,
            viz_plans_every: 1,
            viz_budget_mb: DEFAULT_BUDGET_MB,
        }
    }
}

/// The saved recording's default size budget, MB: about half an hour of every tick and
/// plan of the cart-pole (0.5 MB a second), so a day of running cannot fill a card.
pub const DEFAULT_BUDGET_MB: u64 = 1_000;

impl VizLimits {
    /// `options` with these limits.
    pub fn apply(&self, mut options: VizOptions) -> VizOptions {
        options.tick_every = self.viz_every.max(1);
        options.plans_every = self.viz_plans_every.max(1);
        options.budget_bytes = (self.viz_budget_mb > 0).then(|| self.viz_budget_mb * 1_000_000);
        options
    }
}

impl VizArgs {
    /// The options these flags ask for; `default` when no sink flag was given (a run
    /// passes [`VizSink::Off`], `handful view` passes [`VizSink::Spawn`]).
    pub fn to_options(&self, default: VizSink) -> VizOptions {
        let sink = if self.spawn {
            VizSink::Spawn
        } else if let Some(url) = &self.connect {
            VizSink::Connect(
                url.clone()
                    .unwrap_or_else(|| DEFAULT_CONNECT_URL.to_owned()),
            )
        } else if let Some(path) = &self.save {
            VizSink::Save(path.clone())
        } else if self.stdout {
            VizSink::Stdout
        } else {
            default
        };
        VizOptions::with_sink(sink)
    }
}
