//! A run: start (or attach to) the robot, drive episodes with a controller, and write
//! everything the run produced into its directory.
//!
//! Runs directory layout (`runs/<name>/`):
//!
//! | file | what |
//! | --- | --- |
//! | `config.json` | the resolved run configuration (and the calibration's hash) |
//! | `calibration.toml` | the calibration file, verbatim |
//! | `robot.json` | what the firmware announced at the handshake, and the `[plant]` physics |
//! | `sim-calibration.toml` | the calibration handed to the simulator this run started |
//! | `episodes.csv` | one row per episode: index, steps, return, how it ended, where it started (`seed N`, or the state's values joined by `/`) |
//! | `ticks.csv` | with `--ticks`: every tick, what it saw and sent ([`crate::tick_log`]) |
//! | `summary.json` | returns, loop timing, link counters and faults |
//! | `handful.log` | the log |
//!
//! This module runs on the main thread: it may allocate, block and log freely. It talks to
//! the control thread only through the loop's channels.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;

use crate::calib::Calibration;
use crate::clock::{self, Clock};
use crate::control::{self, Controller, EpisodeSummary, LoopConfig, LoopReport, Mode, Phase};
use crate::expert;
use crate::link::{Link, LinkStats};
use crate::model::{Ensemble, ModelExpectation};
use crate::mpc::{
    AnalyticDynamics, Dynamics, MpcController, PlanObserverFactory, Planner, PlannerConfig,
    TaskCost,
};
use crate::plant::{PlantKind, PlantParams};
use crate::sim;

/// Which controller drives the robot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ControllerKind {
    /// The scripted expert of the task (energy pumping + LQR).
    Expert,
    /// PETS MPC planning with the true (analytic) dynamics of the simulated plant: the
    /// planner's upper bound, independent of learning.
    MpcTrue,
    /// PETS MPC planning with a learned ensemble from an ONNX file (`--model`).
    Mpc,
    /// Learn: demonstrations, then MPC trials with DAgger-style background retraining.
    Learn,
}

/// Everything a run needs, resolved.
#[derive(Clone, Debug, Serialize)]
pub struct RunConfig {
    pub name: String,
    pub out_dir: PathBuf,
    pub calibration_path: PathBuf,
    pub calibration_sha256: String,
    /// `None`: start the simulated robot as a child process.
    pub port: Option<PathBuf>,
    pub lockstep: bool,
    pub controller: ControllerKind,
    pub episodes: u32,
    pub steps_per_episode: u32,
    pub seed: u64,
    /// Extra arguments for the simulator (noise, latency, faults), when it is started.
    pub sim_args: Vec<String>,
    /// The command that starts the simulator instead of `handful sim` (`--sim-cmd`, or
    /// the calibration's `[link] sim_cmd`).
    #[serde(default)]
    pub sim_cmd: Option<String>,
    /// The ONNX ensemble for [`ControllerKind::Mpc`].
    pub model: Option<PathBuf>,
    /// Planner settings (default: the task's real-time configuration).
    pub planner: PlannerConfig,
    /// Where the visualization goes.
    #[serde(skip)]
    pub viz: crate::viz::VizOptions,
    /// What happens when an episode ends on a fault.
    pub recovery: crate::recovery::RecoveryPolicy,
    /// Write every tick to `ticks.csv` ([`crate::tick_log`]).
    #[serde(default)]
    pub ticks: bool,
    /// Episode `i` starts at `start_states[i % len]` (SI, the calibration's state order)
    /// instead of a seeded reset (`--start-state`, `--replay-start`); empty: seeded.
    #[serde(default)]
    pub start_states: Vec<Vec<f32>>,
    /// The control thread's real-time set-up (`--rt`, [`crate::realtime`]).
    #[serde(default)]
    pub realtime: crate::realtime::RealtimeConfig,
    pub software_version: &'static str,
}

/// What a run produced, as written to `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub name: String,
    pub calibration_sha256: String,
    pub robot_id: String,
    pub controller: ControllerKind,
    pub lockstep: bool,
    /// The plant's physics (the calibration's `[plant]`): what the simulator ran and
    /// the expert and `mpc-true` assumed.
    pub plant: PlantParams,
    /// The learned model `--controller mpc` planned with (`--model`): its identity and
    /// metadata as the loader read them. Absent for other controllers.
    pub model: Option<crate::model::ModelInfo>,
    pub episodes: Vec<EpisodeSummary>,
    /// Where each episode started, in episode order.
    pub starts: Vec<EpisodeStartRecord>,
    pub mean_return: f64,
    pub loop_report: Option<LoopReport>,
    pub link: LinkStats,
    pub records_dropped: u64,
    /// Host, firmware and link faults in one place (printed at the end).
    pub faults: crate::faults::FaultAccount,
    /// Faulted episodes the run recovered from (re-armed and went on).
    pub recoveries: u32,
    /// Why the run stopped before its last episode, if it did (it then exits non-zero).
    pub stopped: Option<String>,
    pub started_unix: f64,
    pub finished_unix: f64,
}

/// Where an episode started: a seeded reset (`reset_seed`, absent for a robot that cannot
/// reset) or a given state (`state`, SI).
#[derive(Clone, Debug, Serialize)]
pub struct EpisodeStartRecord {
    pub episode: u32,
    pub reset_seed: Option<u64>,
    pub state: Option<control::StartState>,
}

impl EpisodeStartRecord {
    /// The `start` column of `episodes.csv`.
    fn label(&self) -> String {
        match (&self.state, self.reset_seed) {
            (Some(state), _) => state
                .values()
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("/"),
            (None, Some(seed)) => format!("seed {seed}"),
            (None, None) => "as found".to_string(),
        }
    }
}

/// The start states of `config` as the control thread takes them, checked against the
/// calibration's state channels (count, finite values) before the robot is touched.
fn start_states(
    config: &RunConfig,
    calib: &Calibration,
) -> anyhow::Result<Vec<control::StartState>> {
    config
        .start_states
        .iter()
        .enumerate()
        .map(|(i, values)| {
            if values.len() != calib.state_dim() {
                anyhow::bail!(
                    "start state {i} ({}) has {} values; calibration {} has {} state channels \
                     ({})",
                    values
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    values.len(),
                    calib.path.display(),
                    calib.state_dim(),
                    calib
                        .states
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            control::StartState::new(values)
                .ok_or_else(|| anyhow::anyhow!("start state {i} has too many values"))
        })
        .collect()
}

/// Runs `config` against `calib` to the end and returns its summary (also written to
/// the run directory). `exe` is this program, used to start the simulator process.
pub fn run(config: &RunConfig, calib: &Calibration, exe: &Path) -> anyhow::Result<RunSummary> {
    let started_unix = clock::wall_time_unix_secs();
    let start_states = start_states(config, calib)?;
    std::fs::create_dir_all(&config.out_dir)
        .with_context(|| format!("creating run directory {}", config.out_dir.display()))?;
    write_json(&config.out_dir.join("config.json"), config)?;
    std::fs::write(config.out_dir.join("calibration.toml"), &calib.text)
        .context("writing calibration.toml")?;

    // The model is read, checked and probed before the robot is touched: a bad file
    // stops the run before a simulator starts or a robot is reset.
    let (ensemble, model) = match (config.controller, config.model.as_deref()) {
        (ControllerKind::Mpc, Some(path)) => {
            let expect = ModelExpectation::from_calibration(calib);
            let info = crate::model::inspect(path, &expect)
                .with_context(|| format!("reading model {}", path.display()))?;
            let ensemble = Ensemble::load(path, &expect)
                .with_context(|| format!("loading model {}", path.display()))?;
            tracing::info!(model = %path.display(), sha256 = %ensemble.info().sha256, "model loaded");
            (Some(ensemble), Some(info))
        }
        _ => (None, None),
    };

    let robot = Robot::connect(
        calib,
        &RobotOptions {
            port: config.port.clone(),
            lockstep: config.lockstep,
            seed: config.seed,
            sim_args: config.sim_args.clone(),
            sim_cmd: config.sim_cmd.clone(),
            dir: config.out_dir.clone(),
            realtime: config.realtime.clone(),
        },
        exe,
    )?;
    let (link, clock) = (Arc::clone(&robot.link), robot.clock.clone());
    write_robot_json(&config.out_dir, &link, calib)?;

    let viz = crate::viz::Viz::start(&config.viz, calib).context("starting the visualization")?;
    let controller = build_controller(
        config.controller,
        calib,
        ensemble,
        &config.planner,
        &clock,
        viz.sender().plan_observers().as_ref(),
    )?;
    let mut loop_config = LoopConfig::from_calibration(calib, config.lockstep);
    loop_config.realtime = config.realtime.clone();
    loop_config.record_policy = control::RecordPolicy::Lossy;
    loop_config.telemetry = control::Telemetry::to(viz.sender());
    let handle = control::spawn(loop_config, Arc::clone(&link), controller, clock)
        .context("starting the control thread")?;

    let mut episodes = Vec::new();
    let mut driver = crate::episodes::EpisodeDriver::new(
        calib,
        Arc::clone(&link),
        config.lockstep,
        config.seed,
        config.recovery,
    )
    .with_viz(viz.sender())
    .with_start_states(start_states)?;
    let mut starts = Vec::new();
    let mut stopped = None;
    let mut csv = std::fs::File::create(config.out_dir.join("episodes.csv"))
        .context("creating episodes.csv")?;
    writeln!(csv, "episode,steps,return,end,start")?;
    let phase = Phase::of_task(calib.task, Some(config.steps_per_episode));
    let mut ticks = match config.ticks {
        true => Some(crate::tick_log::TickLog::create(
            &config.out_dir.join("ticks.csv"),
        )?),
        false => None,
    };
    for index in 0..config.episodes {
        let watch: &mut dyn crate::episodes::Watch = match &mut ticks {
            Some(log) => log,
            None => &mut crate::episodes::Drain,
        };
        let start = EpisodeStartRecord {
            episode: index,
            reset_seed: driver.reset_seed(index),
            state: driver.start_state(index),
        };
        let start = EpisodeStartRecord {
            reset_seed: start.reset_seed.filter(|_| start.state.is_none()),
            ..start
        };
        let summary = match driver.episode(&handle, Mode::Autonomous, phase, watch) {
            Ok(summary) => summary,
            Err(e) => match e.downcast::<crate::recovery::Stopped>() {
                Ok(why) => {
                    tracing::error!(%why, "stopping the run");
                    stopped = Some(why.to_string());
                    break;
                }
                Err(e) => return Err(e),
            },
        };
        tracing::info!(
            episode = summary.episode,
            steps = summary.steps,
            episode_return = format!("{:.1}", summary.episode_return),
            end = ?summary.end,
            "episode finished"
        );
        let start = EpisodeStartRecord {
            episode: summary.episode,
            ..start
        };
        writeln!(
            csv,
            "{},{},{:.4},{},{}",
            summary.episode,
            summary.steps,
            summary.episode_return,
            summary.end.label(),
            start.label()
        )?;
        csv.flush()?;
        episodes.push(summary);
        starts.push(start);
    }
    // The last episode ending on a fault ends the run on one.
    stopped = stopped.or_else(|| driver.ended_on_fault());
    if let Some(log) = &mut ticks {
        log.flush()?;
    }

    let records_dropped = handle.records_dropped();
    let loop_report = handle.stop();
    let faults =
        crate::faults::FaultAccount::new(loop_report.as_ref(), &link.stats(), records_dropped);
    let completed: Vec<f64> = episodes
        .iter()
        .filter(|e| e.end.finished())
        .map(|e| e.episode_return)
        .collect();
    let mean_return = if completed.is_empty() {
        f64::NAN
    } else {
        completed.iter().sum::<f64>() / completed.len() as f64
    };
    let summary = RunSummary {
        name: config.name.clone(),
        calibration_sha256: calib.hash.clone(),
        robot_id: link.robot().robot_id.clone(),
        controller: config.controller,
        lockstep: config.lockstep,
        plant: calib.plant,
        model,
        episodes,
        starts,
        mean_return,
        loop_report,
        link: link.stats(),
        records_dropped,
        faults,
        recoveries: driver.recoveries(),
        stopped,
        started_unix,
        finished_unix: clock::wall_time_unix_secs(),
    };
    write_json(&config.out_dir.join("summary.json"), &summary)?;
    let report = viz.finish();
    tracing::info!(
        logged = report.logged,
        dropped = report.dropped,
        "visualization finished"
    );
    Ok(summary)
}

/// The link's counters and health for the viewer.
pub fn send_link(link: &Link, viz: &crate::viz::VizSender) {
    viz.send(crate::viz::VizEvent::Link {
        stats: link.stats(),
        health: link.health(link.clock().now_us()),
    });
}

/// A controller of `kind` for the robot `calib` describes, ready for the control thread.
/// `model` is the loaded ONNX ensemble of [`ControllerKind::Mpc`]; `clock` gives the planner
/// its deadlines; an MPC controller shows each plan to an observer from `plans`.
pub fn build_controller(
    kind: ControllerKind,
    calib: &Calibration,
    model: Option<Ensemble>,
    planner: &PlannerConfig,
    clock: &Clock,
    plans: Option<&PlanObserverFactory>,
) -> anyhow::Result<Box<dyn Controller>> {
    let dynamics: Box<dyn Dynamics> = match kind {
        // A learning run starts with the expert; models replace it as they are trained.
        ControllerKind::Expert | ControllerKind::Learn => {
            return expert_controller(calib, clock.is_simulated());
        }
        ControllerKind::MpcTrue => {
            // The physics the calibration's `[plant]` states: a model that differs from
            // the robot's is a choice made there.
            let plant = calib.plant;
            Box::new(AnalyticDynamics::new(
                move |s: &[f64], a: &[f64], n: &mut [f64]| plant.transition(s, a, n),
                calib.state_dim(),
                calib.action_dim(),
            ))
        }
        ControllerKind::Mpc => Box::new(model.context("--controller mpc needs --model FILE.onnx")?),
    };
    let bounds: Vec<(f32, f32)> = calib.actions.iter().map(|a| (a.min, a.max)).collect();
    let mut planner = planner.clone();
    if !dynamics.is_probabilistic() {
        // Particles of a deterministic model all follow the same path: one is enough.
        planner.particles = 1;
    }
    let planner = Planner::new(
        planner,
        calib.state_dim(),
        calib.action_dim(),
        &bounds,
        dynamics.ensemble_size(),
    )
    .context("planner configuration")?;
    let mut controller = MpcController::new(
        planner,
        dynamics,
        Box::new(TaskCost(calib.task)),
        clock.clone(),
    )
    .map_err(|e| anyhow::anyhow!("the model does not fit the planner: {e}"))?;
    if let Some(plans) = plans {
        controller.set_plan_observer(plans.make());
    }
    Ok(Box::new(controller))
}

/// Planner settings from TOML: the task's real-time defaults with the file's keys
/// over them. Unknown keys are refused with their name.
pub fn planner_config_from_toml(
    text: &str,
    task: crate::task::Task,
    lockstep: bool,
) -> anyhow::Result<PlannerConfig> {
    overlay_toml(&default_planner(task, lockstep), text)
}

/// `defaults` with the keys of the TOML `text` over them (settings files name only what
/// they change). Unknown keys are refused with their name.
pub fn overlay_toml<T>(defaults: &T, text: &str) -> anyhow::Result<T>
where
    T: Serialize + serde::de::DeserializeOwned,
{
    let overrides: toml::Table = toml::from_str(text).context("not valid TOML")?;
    let mut merged = toml::Table::try_from(defaults).context("serialising the defaults")?;
    for (key, value) in overrides {
        merged.insert(key, value);
    }
    Ok(merged.try_into()?)
}

/// The task's scripted expert; in real time (not `lockstep`) it acts on the state
/// predicted one period ahead, since its command lands a period after the state it saw.
pub fn expert_controller(
    calib: &Calibration,
    lockstep: bool,
) -> anyhow::Result<Box<dyn Controller>> {
    let plant = calib.plant;
    let expert = expert::expert_for_plant(plant)
        .with_context(|| format!("the expert for the [plant] of {}", calib.path.display()))?;
    if lockstep {
        return Ok(expert);
    }
    Ok(Box::new(control::LatencyCompensated::new(
        expert,
        move |s: &[f64], a: &[f64], n: &mut [f64]| plant.transition(s, a, n),
    )))
}

/// The task's real-time planner settings; in real time the planner plans from the state
/// predicted at the moment its command takes effect (one period ahead).
pub fn default_planner(task: crate::task::Task, lockstep: bool) -> PlannerConfig {
    let mut planner = PlannerConfig::for_task(task);
    planner.latency_fraction = if lockstep { 0.0 } else { 1.0 };
    planner
}

/// Where the robot is and how to reach it.
#[derive(Clone, Debug)]
pub struct RobotOptions {
    /// A serial device; `None` starts the simulated robot of the calibration.
    pub port: Option<PathBuf>,
    /// Simulator only: one plant step per command, on a simulated clock.
    pub lockstep: bool,
    pub seed: u64,
    /// Extra simulator arguments (`--sim-arg`).
    pub sim_args: Vec<String>,
    /// Start the simulator with this shell command instead of `handful sim` (`--sim-cmd`;
    /// `None`: the calibration's `[link] sim_cmd`, if any). It gets `handful sim`'s
    /// arguments appended ([`sim_argv`]).
    pub sim_cmd: Option<String>,
    /// The simulator's link goes here (`robot.tty`).
    pub dir: PathBuf,
    /// How the control thread is scheduled on this machine (`--rt`): the onboard
    /// computer's, not the robot's, so not in the calibration (whose hash names the
    /// robot's data).
    pub realtime: crate::realtime::RealtimeConfig,
}

/// A connected robot: the link, the clock the control loop must use, and the simulator
/// process when there is one (stopped when this is dropped).
pub struct Robot {
    pub link: Arc<Link>,
    pub clock: Clock,
    _sim: Option<sim::SimProcess>,
}

impl Robot {
    /// Opens the port, or starts the simulator in its own process behind a pty and opens
    /// that; then handshakes and validates the robot against `calib`.
    pub fn connect(
        calib: &Calibration,
        options: &RobotOptions,
        exe: &Path,
    ) -> anyhow::Result<Robot> {
        let mut sim_process = None;
        let port = match &options.port {
            Some(port) => port.clone(),
            None => {
                let process = match options.sim_cmd.as_ref().or(calib.sim_cmd.as_ref()) {
                    Some(command) => {
                        let argv = sim_argv(calib, options)?;
                        let link = options.dir.join("robot.tty");
                        tracing::info!(command = %command, "starting the simulated robot");
                        sim::spawn_command(command, &argv, &link)
                            .context("starting the simulated robot")?
                    }
                    None => {
                        let args = sim_args_for(calib, options)?;
                        sim::spawn_process(exe, &args).context("starting the simulated robot")?
                    }
                };
                let path = process.link_path().to_owned();
                tracing::info!(pid = process.pid(), link = %path.display(), "simulated robot started");
                match crate::realtime::place_simulated_robot(process.pid(), &options.realtime) {
                    Ok(0) => {}
                    Ok(threads) => tracing::info!(
                        threads,
                        priority = crate::realtime::simulated_robot_priority(&options.realtime),
                        "the simulated robot runs off the loop's CPU, SCHED_FIFO"
                    ),
                    Err(e) => tracing::warn!(
                        "the simulated robot is not placed as a microcontroller would be: {e}"
                    ),
                }
                sim_process = Some(process);
                path
            }
        };
        let clock = if options.lockstep {
            Clock::simulated()
        } else {
            Clock::real()
        };
        let link = Link::open(calib, &port, clock.clone())
            .with_context(|| format!("opening the robot link on {}", port.display()))?;
        tracing::info!(robot = %link.robot().robot_id, "robot link up");
        Ok(Robot {
            link: Arc::new(link),
            clock,
            _sim: sim_process,
        })
    }
}

/// The simulator's arguments: the calibration's plant and its `[plant]` physics, a link
/// in `options.dir`, the seed and clock mode, the calibrated watchdog, then the user's
/// extra `--sim-arg`s.
pub fn sim_args_for(calib: &Calibration, options: &RobotOptions) -> anyhow::Result<sim::SimArgs> {
    #[derive(clap::Parser)]
    struct SimCli {
        #[command(flatten)]
        args: sim::SimArgs,
    }
    let plant = plant_for(calib)?;
    let mut argv = vec!["sim".to_owned(), plant.name().to_owned()];
    argv.extend(sim_argv(calib, options)?);
    let cli = <SimCli as clap::Parser>::try_parse_from(&argv)
        .map_err(|e| anyhow::anyhow!("bad simulator arguments {:?}: {e}", options.sim_args))?;
    Ok(cli.args)
}

/// What any simulator is told, after `handful sim <plant>` or a `--sim-cmd` command:
/// `--link DIR/robot.tty --seed S --watchdog-ms=W [--lockstep] --calib=DIR/sim-calibration.toml`
/// (the calibration's text, written there), then the user's `--sim-arg`s.
pub fn sim_argv(calib: &Calibration, options: &RobotOptions) -> anyhow::Result<Vec<String>> {
    let mut argv = vec![
        "--link".to_owned(),
        options.dir.join("robot.tty").display().to_string(),
        "--seed".to_owned(),
        options.seed.to_string(),
        // The simulated firmware's watchdog is the one the calibration expects.
        format!("--watchdog-ms={}", calib.watchdog_timeout_us / 1000),
    ];
    if options.lockstep {
        argv.push("--lockstep".to_owned());
    }
    // The simulated plant's physics are the calibration's `[plant]`: its text, as this
    // host validated it, is handed over in a file beside the link.
    let plant_calib = options.dir.join("sim-calibration.toml");
    std::fs::write(&plant_calib, &calib.text)
        .with_context(|| format!("writing {}", plant_calib.display()))?;
    argv.push(format!("--calib={}", plant_calib.display()));
    argv.extend(options.sim_args.iter().cloned());
    Ok(argv)
}

/// The simulated plant matching a calibration's task.
pub fn plant_for(calib: &Calibration) -> anyhow::Result<PlantKind> {
    Ok(calib.plant.kind())
}

/// Writes `dir/robot.json`: what the firmware announced at the handshake, and the
/// `[plant]` physics the calibration gave the simulator and the analytic models.
pub fn write_robot_json(dir: &Path, link: &Link, calib: &Calibration) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct RobotJson<'a> {
        #[serde(flatten)]
        announced: &'a crate::link::RobotInfo,
        plant: PlantParams,
    }
    write_json(
        &dir.join("robot.json"),
        &RobotJson {
            announced: link.robot(),
            plant: calib.plant,
        },
    )
}

pub use crate::json::write_json;
