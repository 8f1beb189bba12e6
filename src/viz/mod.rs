//! Visualisation in the rerun viewer: the robot drawn live, states, commands, timing, link
//! health, modes and faults, the planner's predictions against what happened, training
//! curves and returns; and the replay of a recorded dataset (`handful view`).
//!
//! **Architecture invariant:** this is the only module that imports `rerun`, and only its
//! feature-gated files do (`viz` cargo feature, on by default). The producers' side —
//! [`VizEvent`], [`PlanSnapshot`], [`VizSender`] — has no rerun types and exists without
//! the feature, so the control loop compiles the same either way.
//!
//! Threads: [`Viz::start`] starts `handful-viz`, the only thread of a run that talks to
//! rerun (a replay talks to it from the caller's thread). It is fed by bounded queues;
//! [`VizSender::send`] / [`VizSender::send_tick`] are `try_send`s that drop and count on a
//! full queue, so a slow or absent viewer never reaches the control loop. The thread is
//! joined when the [`Viz`] is dropped, after draining the queues and flushing the sink.
//! Every recording carries a blueprint (the viewer's layout, see `layout.rs`).
//!
//! # Entity paths
//!
//! | path | what | timelines |
//! | --- | --- | --- |
//! | `robot/{rail,cart,pole,tip,pivot}` | the robot in 2-D (metres, y up) | tick, robot_time |
//! | `robot/plan/{mean,elites,actual}` | planned (and then actual) tip path | tick |
//! | `state/<name>`, `action/<name>` | calibrated states, sent commands | tick, robot_time |
//! | `plan/state/<name>/{mean,band,elites,actual}` | predicted state vs seconds ahead, ±2σ | tick |
//! | `plan/action/<name>/mean` | planned actions vs seconds ahead | tick |
//! | `plan/{state,action}/<name>/axes{,/labels}` | a chart's box and labels in real units | tick |
//! | `plan/error/<name>/{one_step,horizon}`, `plan/coverage` | actual − predicted; share inside ±2σ | tick |
//! | `timing/{compute_us,jitter_us,state_age_us,overruns,missed_commands}` | loop timing | tick |
//! | `link/{crc_errors,decode_errors,dropped_frames,…,heartbeat_age_ms}` | link health | tick |
//! | `mode` (text), `mode/driving`, `faults` (text), `faults/count` | modes and faults | tick |
//! | `model/version`, `log` (text) | deployed model, free text | tick |
//! | `episode/reward`, `episode/return` | per step; per trial | tick, episode |
//! | `train/v<version>/{train_nll,validation_nll}` | training curves | epoch |
//! | `train/fit/{train_nll,validation_nll,model_version}` | each fit's last epoch | tick |
//! | `viz/dropped` | events the viz queues dropped | tick |
//!
//! Timelines: `tick` (the control tick), `robot_time` (the firmware's clock of the state
//! used), `episode`, `epoch`, and rerun's own `log_time` (wall clock when logged).

mod event;
mod options;
mod sender;
mod tap;

#[cfg(feature = "viz")]
mod draw;
#[cfg(feature = "viz")]
mod layout;
#[cfg(feature = "viz")]
mod live;
#[cfg(feature = "viz")]
mod plan;
#[cfg(feature = "viz")]
mod replay;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub use event::{
    INLINE_TEXT_BYTES, InlineText, MAX_PLAN_ACTION_DIM, MAX_PLAN_ELITES, MAX_PLAN_HORIZON,
    MAX_PLAN_STATE_DIM, PlanOutcome, PlanShapeError, PlanSnapshot, TextLevel, TrainingPoint,
    VizEvent,
};
pub use options::{
    DEFAULT_BUDGET_MB, DEFAULT_CONNECT_URL, VizArgs, VizLimits, VizOptions, VizSink,
};
#[cfg(feature = "viz")]
pub use replay::view_dataset;
pub use sender::{VizQueue, VizSender};
pub use tap::PlanTap;

use crate::calib::Calibration;
use crate::thread::JoinOnDrop;

/// Why the visualisation could not start or a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum VizError {
    #[error("handful was built without the `viz` feature; rebuild with --features viz")]
    NotBuilt,
    #[error("cannot open the rerun sink {sink:?}")]
    Sink {
        sink: VizSink,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot start the viz thread")]
    Thread(#[source] std::io::Error),
    #[error("cannot replay the dataset")]
    Dataset(#[from] crate::dataset::DatasetError),
    #[error("rerun refused to log {entity}")]
    Log {
        entity: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("could not deliver the recording to {sink:?}")]
    Flush {
        sink: VizSink,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("nothing to show: the sink is off (choose --spawn, --connect, --save or --stdout)")]
    SinkOff,
}

/// What the viz thread did over its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct VizReport {
    /// Events accepted by the queues (all senders).
    pub sent: u64,
    /// Events dropped because a queue was full or the thread had stopped.
    pub dropped: u64,
    /// Events the thread logged.
    pub logged: u64,
    /// Log calls rerun refused (each is also traced once per kind).
    pub log_errors: u64,
    /// Old `.rrd` files deleted to keep the recording within its size budget.
    pub segments_deleted: u64,
}

/// What a replay showed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    pub episodes: u64,
    pub frames: u64,
    /// Whether the robot could be drawn (the dataset's calibration names a known task).
    pub robot_drawn: bool,
}

/// `handful view DATASET`: replays the dataset at `root` into the sink the flags choose
/// (a spawned viewer when none is given).
pub fn view(root: &Path, args: &VizArgs) -> Result<ReplayReport, VizError> {
    #[cfg(feature = "viz")]
    {
        view_dataset(root, &args.to_options(VizSink::Spawn))
    }
    #[cfg(not(feature = "viz"))]
    {
        let _ = (root, args);
        Err(VizError::NotBuilt)
    }
}

/// The running visualisation: hand out [`Viz::sender`]s; dropping it (or
/// [`Viz::finish`]) drains the queues, flushes the sink and joins `handful-viz`.
pub struct Viz {
    sender: VizSender,
    stop: Option<crossbeam::channel::Sender<()>>,
    thread: Option<JoinOnDrop<VizReport>>,
}

impl Viz {
    /// Opens `options.sink` and starts the viz thread for the robot `calibration`
    /// describes (channel names, task, period). With [`VizSink::Off`] no thread starts and
    /// the sender discards everything.
    pub fn start(options: &VizOptions, calibration: &Calibration) -> Result<Viz, VizError> {
        if options.sink == VizSink::Off {
            return Ok(Viz {
                sender: VizSender::disabled(),
                stop: None,
                thread: None,
            });
        }
        #[cfg(feature = "viz")]
        {
            let (sender, receivers) =
                VizSender::channel(options.event_capacity, options.plan_capacity);
            let (stop_tx, stop_rx) = crossbeam::channel::bounded(1);
            let thread = live::spawn(
                options,
                calibration,
                receivers,
                stop_rx,
                Arc::clone(sender.counters()),
            )?;
            Ok(Viz {
                sender,
                stop: Some(stop_tx),
                thread: Some(thread),
            })
        }
        #[cfg(not(feature = "viz"))]
        {
            let _ = calibration;
            Err(VizError::NotBuilt)
        }
    }

    /// A sender for a producer (cheap; clone freely).
    pub fn sender(&self) -> VizSender {
        self.sender.clone()
    }

    /// Whether a viz thread runs (the sink is not off).
    pub fn is_running(&self) -> bool {
        self.thread.is_some()
    }

    /// Events dropped so far by all senders.
    pub fn dropped(&self) -> u64 {
        self.sender.counters().dropped.load(Ordering::Relaxed)
    }

    /// Drains the queues, flushes the sink, joins the thread and reports.
    pub fn finish(mut self) -> VizReport {
        self.shut_down()
    }

    fn shut_down(&mut self) -> VizReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.try_send(());
        }
        let counters = Arc::clone(self.sender.counters());
        let mut report = match self.thread.take().map(JoinOnDrop::join) {
            Some(Ok(report)) => report,
            Some(Err(_)) => {
                tracing::error!("the viz thread panicked");
                VizReport::default()
            }
            None => VizReport::default(),
        };
        report.sent = counters.sent.load(Ordering::Relaxed);
        report.dropped = counters.dropped.load(Ordering::Relaxed);
        report
    }
}

impl Drop for Viz {
    fn drop(&mut self) {
        self.shut_down();
    }
}
