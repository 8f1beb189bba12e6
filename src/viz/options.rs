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
