//! The `handful-viz` thread: drains the viz queues into a rerun recording. It may allocate
//! and block on the sink freely (it is nobody's deadline); it never talks back to the
//! producers. Mode changes and faults are derived here from consecutive ticks, so the
//! control loop only sends its [`TickRecord`]s.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam::channel::{Receiver, select};
use rerun::{RecordingStream, RecordingStreamBuilder, RecordingStreamError, TextLogLevel};

use super::draw::{Layout, log_scalar, log_scalars, log_text};
use super::event::{PlanSnapshot, TextLevel, TrainingPoint};
use super::layout::blueprint;
use super::plan::PlanTracker;
use super::sender::{Counters, Queued, Receivers};
use super::{VizError, VizOptions, VizReport, VizSink};
use crate::calib::Calibration;
use crate::control::{EpisodeEnd, EpisodeSummary, HostFault, Mode, TickRecord};
use crate::link::{Health, LinkStats};
use crate::thread::{JoinOnDrop, spawn_named};

/// Opens the sink of `options` as a recording stream, with the blueprint for `layout`.
pub fn open_recording(options: &VizOptions, layout: &Layout) -> Result<RecordingStream, VizError> {
    let mut builder = RecordingStreamBuilder::new(rerun::ApplicationId::new_or_unknown(
        options.application_id.clone(),
    ));
    builder = builder.with_blueprint(blueprint(layout));
    if let Some(name) = &options.recording_name {
        builder = builder.recording_name(name.clone());
    }
    let result = match &options.sink {
        VizSink::Off => return Err(VizError::SinkOff),
        VizSink::Spawn => {
            let mut spawn = rerun::SpawnOptions::default();
            let venv = std::path::Path::new(".venv/bin/rerun");
            spawn.executable_path = match &options.viewer {
                Some(path) => Some(path.display().to_string()),
                None if !on_path("rerun") && venv.exists() => Some(venv.display().to_string()),
                None => None,
            };
            builder.spawn_opts(&spawn)
        }
        VizSink::Connect(url) => builder.connect_grpc_opts(url.clone()),
        VizSink::Save(path) => builder.save(path),
        VizSink::Stdout => builder.stdout(),
    };
    result.map_err(|e| VizError::Sink {
        sink: options.sink.clone(),
        source: Box::new(e),
    })
}

/// How long a viewer sink (spawned or connected) gets to take the last data when a run
/// ends. A viewer that never came up (nothing listening at the URL, no display for the
/// spawned one) must not keep handful from exiting.
pub const VIEWER_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Flushes `rec` and lets it go. File and stdout sinks are flushed to the end; a viewer
/// that does not take the data within [`VIEWER_FLUSH_TIMEOUT`] is abandoned with its
/// data: dropping the stream would wait for it forever (rerun joins its sending thread,
/// which blocks on the connection that never opened), so the stream and its threads are
/// left to the process's exit.
pub fn finish_recording(
    rec: RecordingStream,
    sink: &VizSink,
) -> Result<(), rerun::sink::SinkFlushError> {
    match sink {
        VizSink::Spawn | VizSink::Connect(_) => {
            if let Err(e) = rec.flush_with_timeout(VIEWER_FLUSH_TIMEOUT) {
                std::mem::forget(rec);
                return Err(e);
            }
            Ok(())
        }
        _ => rec.flush_blocking(),
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Opens the sink and starts the thread.
pub fn spawn(
    options: &VizOptions,
    calibration: &Calibration,
    receivers: Receivers,
    stop: Receiver<()>,
    counters: Arc<Counters>,
) -> Result<JoinOnDrop<VizReport>, VizError> {
    let layout = Layout::from_calibration(calibration);
    let rec = open_recording(options, &layout)?;
    let plans_kept = options.plans_kept;
    let (tick_every, plans_every) = (options.tick_every.max(1), options.plans_every.max(1));
    let sink = options.sink.clone();
    let segments = match &options.sink {
        VizSink::Save(path) => Some(Segments {
            first: path.clone(),
            every_us: options.segment_us.max(1),
            next: 1,
            clock: crate::clock::Clock::real(),
            started_us: 0,
            budget_bytes: options.budget_bytes,
            oldest: 0,
        }),
        _ => None,
    };
    spawn_named("handful-viz", move || {
        let mut logger = Logger::new(rec, layout, plans_kept, counters);
        logger.tick_every = u64::from(tick_every);
        logger.plans_every = u64::from(plans_every);
        logger.segments = segments.map(|mut s| {
            s.started_us = s.clock.now_us();
            s
        });
        let report = logger.run(&receivers, &stop);
        let rec = std::mem::replace(&mut logger.rec, RecordingStream::disabled());
        if let Err(e) = finish_recording(rec, &sink) {
            tracing::warn!(
                error = %e,
                ?sink,
                "the viewer did not take the recording; its data was dropped"
            );
        }
        report
    })
    .map_err(VizError::Thread)
}

/// The thread's state: the recording and what it remembers between events.
struct Logger {
    rec: RecordingStream,
    layout: Layout,
    plans: PlanTracker,
    counters: Arc<Counters>,
    report: VizReport,
    last_tick: Option<u64>,
    last_firmware_us: Option<u64>,
    last_mode: Option<Mode>,
    last_fault: Option<HostFault>,
    faults: u64,
    overruns: u64,
    missed_commands: u64,
    /// Whether a refused log call was already traced (one warning, then counts).
    warned: bool,
    /// File sinks: when to start the next file.
    segments: Option<Segments>,
    /// Decimation (`VizOptions::tick_every`, `plans_every`).
    tick_every: u64,
    plans_every: u64,
}

/// A file sink written as a sequence of files (see `VizOptions::segment_us`).
struct Segments {
    first: std::path::PathBuf,
    every_us: u64,
    /// Number of the next file (the first is `first` itself).
    next: u32,
    clock: crate::clock::Clock,
    started_us: u64,
    /// The files together stay within this (`VizOptions::budget_bytes`).
    budget_bytes: Option<u64>,
    /// Number of the oldest file still on disk (0: `first`).
    oldest: u32,
}

impl Segments {
    /// `viz.rrd` → `viz.001.rrd`, `viz.002.rrd`, ...
    fn path(&self, n: u32) -> std::path::PathBuf {
        let stem = self.first.file_stem().unwrap_or_default().to_string_lossy();
        let ext = self
            .first
            .extension()
            .map(|e| e.to_string_lossy().into_owned());
        let name = match ext {
            Some(ext) => format!("{stem}.{n:03}.{ext}"),
            None => format!("{stem}.{n:03}"),
        };
        self.first.with_file_name(name)
    }

    /// File `n` (0: `first`).
    fn file(&self, n: u32) -> std::path::PathBuf {
        if n == 0 {
            self.first.clone()
        } else {
            self.path(n)
        }
    }

    /// Deletes the oldest finished files until the files on disk, with room for one
    /// more as large as the largest, fit the budget; returns how many were deleted.
    /// The file being written (`next - 1`) is never deleted.
    fn enforce_budget(&mut self) -> u32 {
        let Some(budget) = self.budget_bytes else {
            return 0;
        };
        let sizes: Vec<u64> = (self.oldest..self.next)
            .map(|n| std::fs::metadata(self.file(n)).map_or(0, |m| m.len()))
            .collect();
        let largest = sizes.iter().copied().max().unwrap_or(0);
        let mut total: u64 = sizes.iter().sum();
        let mut deleted = 0;
        for size in &sizes[..sizes.len().saturating_sub(1)] {
            if total + largest <= budget {
                break;
            }
            let path = self.file(self.oldest);
            match std::fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(), "could not delete an old .rrd file");
                    break;
                }
            }
            total -= size;
            self.oldest += 1;
        }
        deleted
    }
}

impl Logger {
    fn new(
        rec: RecordingStream,
        layout: Layout,
        plans_kept: usize,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            rec,
            layout,
            plans: PlanTracker::new(plans_kept),
            counters,
            report: VizReport::default(),
            last_tick: None,
            last_firmware_us: None,
            last_mode: None,
            last_fault: None,
            faults: 0,
            overruns: 0,
            missed_commands: 0,
            warned: false,
            segments: None,
            tick_every: 1,
            plans_every: 1,
        }
    }

    fn run(&mut self, receivers: &Receivers, stop: &Receiver<()>) -> VizReport {
        let result = self.layout.log_static(&self.rec);
        self.check(result);
        loop {
            select! {
                recv(stop) -> _ => break,
                recv(receivers.events) -> event => match event {
                    Ok(event) => self.event(event),
                    Err(_) => break,
                },
                recv(receivers.plans) -> plan => match plan {
                    Ok(plan) => self.plan(&plan),
                    Err(_) => break,
                },
            }
        }
        // Drain what was queued before the stop, plans first (ticks resolve them).
        while let Ok(plan) = receivers.plans.try_recv() {
            self.plan(&plan);
        }
        while let Ok(event) = receivers.events.try_recv() {
            self.event(event);
        }
        let result = self.plans.flush(&self.rec, &self.layout);
        self.check(result);
        self.report
    }

    fn plan(&mut self, plan: &PlanSnapshot) {
        if !plan.tick.is_multiple_of(self.plans_every) {
            return;
        }
        let result = self.plans.add(&self.rec, &self.layout, plan);
        self.logged(result);
    }

    fn logged(&mut self, result: Result<(), RecordingStreamError>) {
        self.report.logged += 1;
        self.check(result);
    }

    fn check(&mut self, result: Result<(), RecordingStreamError>) {
        if let Err(e) = result {
            self.report.log_errors += 1;
            if !self.warned {
                self.warned = true;
                tracing::warn!(error = %e, "rerun refused a log call (further ones counted only)");
            }
        }
    }

    /// Stamps the current tick and robot time (if known). The wall clock is rerun's own
    /// `log_time` timeline, stamped on every log call.
    fn set_time(&self, tick: Option<u64>, firmware_us: Option<u64>) {
        self.rec.reset_time();
        if let Some(tick) = tick {
            self.rec.set_time_sequence("tick", tick as i64);
        }
        if let Some(us) = firmware_us {
            self.rec.set_duration_secs("robot_time", us as f64 * 1e-6);
        }
    }

    /// Starts the next file when the current one is due to end: rerun ends the old one
    /// (footer, memory freed) and the static entities are logged again, so every file
    /// opens on its own.
    fn rotate_if_due(&mut self) {
        let Some(s) = self.segments.as_mut() else {
            return;
        };
        let now = s.clock.now_us();
        if now.saturating_sub(s.started_us) < s.every_us {
            return;
        }
        let path = s.path(s.next);
        s.next += 1;
        s.started_us = now;
        match self.rec.save(&path) {
            Ok(()) => {
                let result = self.layout.log_static(&self.rec);
                self.check(result);
                if let Some(s) = self.segments.as_mut() {
                    let deleted = s.enforce_budget();
                    if deleted > 0 && self.report.segments_deleted == 0 {
                        tracing::info!(
                            budget_mb = s.budget_bytes.unwrap_or(0) / 1_000_000,
                            "the recording reached its size budget: the oldest .rrd files are deleted from now on"
                        );
                    }
                    self.report.segments_deleted += u64::from(deleted);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "could not start the next .rrd file")
            }
        }
    }

    fn event(&mut self, event: Queued) {
        self.rotate_if_due();
        let result = match event {
            Queued::Tick(record) => self.tick(&record),
            Queued::Episode(summary) => self.episode(&summary),
            Queued::Link { stats, health } => self.link(&stats, &health),
            Queued::Training(point) => self.training(&point),
            Queued::Model { version, label } => {
                self.set_time(self.last_tick, self.last_firmware_us);
                log_scalar(&self.rec, "model/version", f64::from(version)).and_then(|()| {
                    let text = format!("model v{version} deployed ({})", label.as_str());
                    log_text(&self.rec, "log", TextLogLevel::INFO, text)
                })
            }
            Queued::Text { level, text } => {
                self.set_time(self.last_tick, self.last_firmware_us);
                log_text(&self.rec, "log", level_name(level), text.as_str())
            }
            Queued::Classifier(fit) => {
                // On the tick timeline (where the robot is), at the last tick seen.
                self.set_time(self.last_tick, self.last_firmware_us);
                let rec = &self.rec;
                log_scalar(rec, "classifier/loss", f64::from(fit.loss_after))
                    .and_then(|()| {
                        log_scalar(
                            rec,
                            "classifier/mean_c_positive",
                            f64::from(fit.mean_positive),
                        )
                    })
                    .and_then(|()| {
                        log_scalar(
                            rec,
                            "classifier/mean_c_negative",
                            f64::from(fit.mean_negative),
                        )
                    })
                    .and_then(|()| log_scalar(rec, "classifier/version", f64::from(fit.version)))
            }
            Queued::Evaluation(e) => {
                // EARL's two curves, at the tick the practice had reached when it arrived.
                self.set_time(self.last_tick, self.last_firmware_us);
                let rec = &self.rec;
                log_scalar(rec, "earl/deployed_success_rate", e.success_rate)
                    .and_then(|()| log_scalar(rec, "earl/deployed_mean_return", e.mean_return))
                    .and_then(|()| {
                        log_scalar(
                            rec,
                            "earl/continuing_successes",
                            f64::from(e.continuing_successes),
                        )
                    })
            }
        };
        self.logged(result);
    }

    fn tick(&mut self, r: &TickRecord) -> Result<(), RecordingStreamError> {
        let firmware_us = (r.state_count > 0).then_some(r.firmware_us);
        self.set_time(Some(r.tick), firmware_us);
        self.last_tick = Some(r.tick);
        self.last_firmware_us = firmware_us.or(self.last_firmware_us);
        let rec = &self.rec;
        // Decimated (`tick_every`): the time series; every tick: changes and counts.
        let full = r.tick.is_multiple_of(self.tick_every);
        if full {
            if r.state_count > 0 {
                log_scalars(rec, "state", &self.layout.state_names, r.state())?;
                self.layout.log_robot(rec, r.state())?;
            }
            log_scalars(rec, "action", &self.layout.action_names, r.action())?;
            log_scalar(rec, "timing/compute_us", r.compute_us as f64)?;
            log_scalar(
                rec,
                "timing/jitter_us",
                r.wake_us as f64 - r.deadline_us as f64,
            )?;
            log_scalar(rec, "timing/state_age_us", r.state_age_us as f64)?;
            if r.score.is_finite() {
                log_scalar(rec, "classifier/c_of_state", f64::from(r.score))?;
            }
            log_scalar(rec, "mode/phase", f64::from(r.phase.index()))?;
        }
        if matches!(
            r.fault,
            Some(HostFault::Overrun | HostFault::RepeatedOverrun)
        ) {
            self.overruns += 1;
        }
        if r.mode.is_driving() && r.command_seq.is_none() {
            self.missed_commands += 1;
        }
        if full {
            log_scalar(rec, "timing/overruns", self.overruns as f64)?;
            log_scalar(rec, "timing/missed_commands", self.missed_commands as f64)?;
        }
        if self.last_mode != Some(r.mode) {
            let level = if matches!(r.mode, Mode::Fault | Mode::EStop) {
                TextLogLevel::WARN
            } else {
                TextLogLevel::INFO
            };
            log_text(rec, "mode", level, format!("{:?}", r.mode))?;
            log_scalar(
                rec,
                "mode/driving",
                f64::from(u8::from(r.mode.is_driving())),
            )?;
            self.last_mode = Some(r.mode);
        }
        // Fault events counted as the loop counts them for summary.json (a change to a
        // fault, while driving or faulted; see `control::safety`): idle ticks before
        // the first state are "no state yet", not a fault.
        let counted = r.mode.is_driving() || r.mode == Mode::Fault;
        if let Some(fault) = r.fault
            && self.last_fault != Some(fault)
            && counted
        {
            self.faults += 1;
        }
        if r.fault != self.last_fault {
            if let Some(fault) = r.fault.filter(|_| counted) {
                let level = if fault.latches() {
                    TextLogLevel::ERROR
                } else {
                    TextLogLevel::WARN
                };
                log_text(rec, "faults", level, format!("{fault:?}"))?;
            }
            self.last_fault = r.fault;
        }
        if full {
            log_scalar(rec, "faults/count", self.faults as f64)?;
            if let Some(step) = r.episode {
                log_scalar(rec, "episode/reward", f64::from(step.reward))?;
            }
        }
        if r.tick.is_multiple_of(25) {
            log_scalar(
                rec,
                "viz/dropped",
                self.counters.dropped.load(Ordering::Relaxed) as f64,
            )?;
        }
        if r.state_count > 0 {
            self.plans
                .observe(rec, &self.layout, r.tick, r.firmware_us, r.state())?;
        }
        Ok(())
    }

    fn episode(&mut self, s: &EpisodeSummary) -> Result<(), RecordingStreamError> {
        self.set_time(Some(s.last_tick), None);
        self.rec.set_time_sequence("episode", i64::from(s.episode));
        log_scalar(&self.rec, "episode/return", s.episode_return)?;
        let (level, end) = match s.end {
            EpisodeEnd::Completed => (TextLogLevel::INFO, "completed".to_owned()),
            EpisodeEnd::Succeeded => (TextLogLevel::INFO, "succeeded".to_owned()),
            EpisodeEnd::Interrupted => (TextLogLevel::WARN, "interrupted".to_owned()),
            EpisodeEnd::Faulted(f) => (TextLogLevel::ERROR, format!("fault {f:?}")),
        };
        let text = format!(
            "episode {} ({}): return {:.2} over {} steps, {end}",
            s.episode,
            s.phase.name(),
            s.episode_return,
            s.steps
        );
        log_text(&self.rec, "log", level, text)
    }

    fn link(&mut self, s: &LinkStats, h: &Health) -> Result<(), RecordingStreamError> {
        self.set_time(self.last_tick, self.last_firmware_us);
        let counts = [
            ("crc_errors", s.crc_errors),
            ("decode_errors", s.decode_errors.total()),
            ("dropped_frames", s.dropped_frames),
            ("out_of_order_frames", s.out_of_order_frames),
            ("reconnects", s.reconnects),
            ("tx_full_drops", s.tx_full_drops),
            ("tx_timeouts", s.tx_timeouts),
            ("faults_received", s.faults_received),
        ];
        for (name, value) in counts {
            log_scalar(&self.rec, &format!("link/{name}"), value as f64)?;
        }
        let ages = [
            ("heartbeat_age_ms", h.heartbeat_age_us),
            ("state_age_ms", h.state_age_us),
            ("frame_age_ms", h.frame_age_us),
        ];
        for (name, age) in ages {
            if let Some(us) = age {
                log_scalar(&self.rec, &format!("link/{name}"), us as f64 * 1e-3)?;
            }
        }
        log_scalar(&self.rec, "link/usable", f64::from(u8::from(h.is_usable())))
    }

    /// Each fit's curve on the `epoch` timeline (`train/v<version>/…`); and its last
    /// epoch on the `tick` timeline, at the tick the fit ended (`train/fit/…`), so the
    /// training chart is not empty where the robot is.
    fn training(&mut self, p: &TrainingPoint) -> Result<(), RecordingStreamError> {
        self.set_time(None, None);
        self.rec.set_time_sequence("epoch", i64::from(p.epoch));
        let base = format!("train/v{}", p.model_version);
        self.log_fit(&base, p)?;
        if p.last_epoch {
            self.set_time(self.last_tick, self.last_firmware_us);
            self.log_fit("train/fit", p)?;
            log_scalar(
                &self.rec,
                "train/fit/model_version",
                f64::from(p.model_version),
            )?;
        }
        Ok(())
    }

    fn log_fit(&self, base: &str, p: &TrainingPoint) -> Result<(), RecordingStreamError> {
        log_scalar(
            &self.rec,
            &format!("{base}/train_nll"),
            f64::from(p.train_nll),
        )?;
        if let Some(v) = p.validation_nll {
            log_scalar(&self.rec, &format!("{base}/validation_nll"), f64::from(v))?;
        }
        Ok(())
    }
}

fn level_name(level: TextLevel) -> &'static str {
    match level {
        TextLevel::Debug => TextLogLevel::DEBUG,
        TextLevel::Info => TextLogLevel::INFO,
        TextLevel::Warn => TextLogLevel::WARN,
        TextLevel::Error => TextLogLevel::ERROR,
    }
}
