//! The `handful` command: argument parsing, wiring and supervision only. Every algorithm
//! lives in the library, where tests drive it without this binary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use handful::calib::Calibration;
use handful::mpc::PlannerConfig;
use handful::record::{self, RecordConfig, TeleopKind};
use handful::run::{self, ControllerKind, RobotOptions, RunConfig};

#[derive(Parser)]
#[command(
    name = "handful",
    version,
    about = "Learn a robot's dynamics in a handful of trials and control it in real time."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drive the robot: episodes with a controller, everything written to a run directory.
    /// Without --port (and with `port = "sim"` in the calibration) the simulated robot is
    /// started in its own process behind a pseudo-terminal.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Practise without resets: the learning job's demonstrations and first model, then
    /// forward phases (the task) and backward phases (back to where the demonstrations
    /// start, planned for a learned classifier's cost: MEDAL) on the armed robot, with no
    /// one resetting it. Writes practice.csv and classifier.csv beside the learning run's
    /// files.
    #[command(after_help = PRACTICE_EXAMPLES)]
    Practice {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        practice: PracticeArgs,
    },
    /// Run a simulated robot behind a pseudo-terminal (firmware logic + physics).
    #[command(after_help = SIM_EXAMPLES)]
    Sim(handful::sim::SimArgs),
    /// Drive the robot by teleop (or the scripted expert) and record every tick into a
    /// LeRobot v3 dataset (created, or appended to).
    #[command(after_help = RECORD_KEYS)]
    Record(RecordArgs),
    /// Inspect, validate or merge datasets.
    #[command(subcommand, after_help = DATASET_EXAMPLES)]
    Dataset(DatasetCommand),
    /// Benchmarks that are not timed tests (`bench plan`: planner performance).
    #[command(after_help = BENCH_EXAMPLES)]
    Bench(handful::bench::BenchArgs),
    /// Replay a recorded dataset into the rerun viewer (spawned unless --connect, --save or
    /// --stdout says otherwise): states, actions, rewards and the robot, per episode.
    #[command(
        after_help = "Examples:\n  handful view datasets/demos\n  handful view datasets/demos --save demos.rrd"
    )]
    View {
        /// The LeRobot v3 dataset directory.
        path: PathBuf,
        #[command(flatten)]
        viz: handful::viz::VizArgs,
    },
    /// Is this machine ready to drive the robot? Real-time scheduling, memory locking, CPU
    /// governor and isolated cores, the serial port, ONNX Runtime, calibration and model,
    /// disk space: each ok, warn or fail with its fix; exit status 1 when one fails.
    #[command(
        after_help = "Examples:\n  handful doctor --calib calib/robot.toml --port /dev/ttyUSB0\n  handful doctor --json"
    )]
    Doctor(handful::doctor::DoctorArgs),
    /// Check a calibration file and print what it says.
    Calib {
        /// The calibration TOML file.
        path: PathBuf,
    },
}

const RUN_EXAMPLES: &str = "\
Examples:
  handful run --lockstep                  learn the simulated cart-pole, faster than real time
  handful run                             the same in real time, watched in the viewer
  handful run --calib calib/pendulum-sim.toml --lockstep --seed 3
  handful run --expert datasets/demos     learn from recorded demonstrations
  handful run --controller expert --episodes 5
  handful run --controller mpc --model runs/NAME/best.onnx
  handful run --calib calib/pendulum-sim.toml --sim-cmd '.venv/bin/python firmware-bridge/gym/serve.py --env Pendulum-v1'
                                          Gymnasium's Pendulum-v1 as the robot
  handful run --calib calib/inverted-pendulum-gym.toml      MuJoCo's InvertedPendulum-v5
  handful run --port /dev/ttyUSB0 --calib calib/robot.toml --rt      a real robot";

const PRACTICE_EXAMPLES: &str = "\
Examples:
  handful practice --lockstep --practice-steps 2000        MEDAL on the simulated cart-pole
  handful practice --lockstep --reset hand                 the hand-written reset instead
  handful practice --expert datasets/demos --port /dev/ttyUSB0 --calib calib/robot.toml --rt";

const SIM_EXAMPLES: &str = "\
Examples:
  handful sim cartpole --link /tmp/robot.tty
  handful sim cartpole --link /tmp/robot.tty --lockstep --drop-prob 0.05";

const RECORD_KEYS: &str = "\
Keyboard (--teleop keyboard):
  ← → or a d      drive (the force, full scale; with shift half); a drive key holds the dead-man
  Enter           start an episode
  k               stop the episode and keep it
  x               stop the episode and discard it
  space           e-stop
  q or Ctrl-C     quit (an episode in progress is discarded)
Gamepad (--teleop gamepad): left stick drives, R1 held is the dead-man, A/✕ start,
  B/○ keep, X/□ discard, guide e-stop, select quit.

Examples:
  handful record --dataset datasets/demos                  the keyboard, in real time
  handful record --teleop gamepad --dataset datasets/demos
  handful record --teleop expert --lockstep --episodes 5 --dataset datasets/expert";

const DATASET_EXAMPLES: &str = "\
Examples:
  handful dataset info datasets/demos
  handful dataset validate datasets/demos
  handful dataset merge --out datasets/all datasets/demos datasets/more";

const BENCH_EXAMPLES: &str = "\
Examples:
  handful bench plan          planner and model speed beside the SGEMM ceiling (JSON in runs/)
  handful bench rt            the loop's jitter with and without --rt
  handful bench footprint     memory, threads, start-up and binary size of the main job";

#[derive(clap::Args)]
struct RunArgs {
    /// Calibration file of the robot.
    #[arg(long, default_value = "calib/cartpole-sim.toml")]
    calib: PathBuf,
    /// Serial device of a real robot (overrides the calibration's port).
    #[arg(long)]
    port: Option<PathBuf>,
    /// Simulator only: advance the plant one step per command, faster than real time.
    #[arg(long)]
    lockstep: bool,
    /// What drives: `learn` (the main job) learns the dynamics and plans with them.
    #[arg(long, value_enum, default_value_t = ControllerKind::Learn)]
    controller: ControllerKind,
    /// Episodes ended by a fault (link lost, stale state, firmware fault...) to recover
    /// from: wait until the robot is healthy, re-arm, go on. 0 stops at the first; an
    /// e-stop always stops.
    #[arg(long, default_value_t = 3, value_name = "N")]
    max_recoveries: u32,
    /// Episodes of a fixed controller (expert, mpc-true, mpc).
    #[arg(long, default_value_t = 3)]
    episodes: u32,
    /// Learning: MPC trials after the first model.
    #[arg(long, default_value_t = 10)]
    trials: u32,
    /// Learning: demonstrations (a LeRobot v3 dataset, e.g. from `handful record`).
    #[arg(long)]
    expert: Option<PathBuf>,
    /// Learning without expert data (no --expert, nothing resumed): episodes of the
    /// scripted expert recorded first (0: pure PETS, one random trial first). Default 3,
    /// or 0 with --resume.
    #[arg(long)]
    expert_episodes: Option<u32>,
    /// Learning: seed the experience with everything a previous learning run learned from
    /// (its demonstrations, its trials, what it resumed); model versions continue.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Learning: trainer settings as TOML over the task's defaults.
    #[arg(long)]
    trainer: Option<PathBuf>,
    /// Learning: share of each training batch drawn from expert data, from 0 to 1.
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    expert_fraction: f64,
    /// Learning: run trials back to back, swapping models in when ready, instead of
    /// waiting for each retrain (a real-time practice always does: the robot is never
    /// held while a model trains; a lockstep one waits unless this is given).
    #[arg(long)]
    overlap: bool,
    /// Where the live visualization goes (default: `viz.rrd` in the run directory).
    #[command(flatten)]
    viz: handful::viz::VizArgs,
    #[command(flatten)]
    viz_limits: handful::viz::VizLimits,
    /// No visualization at all.
    #[arg(long, conflicts_with_all = ["spawn", "connect", "save", "stdout"])]
    no_viz: bool,
    /// Control steps per episode (default: the task's, 200).
    #[arg(long)]
    steps: Option<u32>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run directory (default runs/<name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run name (default: controller and time).
    #[arg(long)]
    name: Option<String>,
    /// Extra simulator arguments, e.g. --sim-arg=--sensor-noise=0.01 (repeatable).
    #[arg(long = "sim-arg", allow_hyphen_values = true)]
    sim_args: Vec<String>,
    /// Start the simulated robot with this shell command instead of `handful sim`, e.g.
    /// '.venv/bin/python firmware-bridge/gym/serve.py --env Pendulum-v1' (a Gymnasium
    /// environment); it is given `--link PATH --seed S --watchdog-ms=W [--lockstep]
    /// --calib=FILE` and the --sim-args, and must make PATH a symlink to its pty.
    /// Default: the calibration's `[link] sim_cmd`, if any.
    #[arg(long, value_name = "COMMAND")]
    sim_cmd: Option<String>,
    /// ONNX ensemble for `--controller mpc` (see models/README.md for the contract).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Planner settings as TOML (keys of `PlannerConfig`; missing keys keep the task's
    /// real-time defaults).
    #[arg(long)]
    planner: Option<PathBuf>,
    /// A fixed controller's run writes every tick to `ticks.csv` (state age, command
    /// sent, host fault), e.g. to measure what a fault did.
    #[arg(long)]
    ticks: bool,
    /// A fixed controller's episodes start at this state instead of a seeded reset: SI
    /// values in the calibration's state order, comma-separated (cart-pole x,θ,ẋ,θ̇;
    /// pendulum θ,θ̇). Repeatable: episodes cycle through the states (evaluation from a
    /// fixed set). Needs a robot announcing CAP_RESET_TO (the simulator).
    #[arg(long = "start-state", value_name = "X,...", allow_hyphen_values = true)]
    start_state: Vec<String>,
    /// A fixed controller's episodes start where episode EPISODE of a LeRobot dataset
    /// started (its first frame's observation.state): DIR:EPISODE. Needs CAP_RESET_TO.
    #[arg(long, value_name = "DIR:EPISODE", conflicts_with = "start_state")]
    replay_start: Option<String>,
    #[command(flatten)]
    realtime: handful::realtime::RealtimeArgs,
}

#[derive(clap::Args)]
struct PracticeArgs {
    /// What brings the robot back between forward phases: `medal` (a learned
    /// classifier's cost), `hand` (a hand-written distance to the rest state), `none`
    /// (forward phases back to back) or `oracle` (the simulator resets it: episodic, the
    /// upper bound).
    #[arg(long, value_enum, default_value_t = handful::medal::ResetMode::Medal)]
    reset: handful::medal::ResetMode,
    /// Control steps of practice in all, forward and backward (6000: 4 minutes of the
    /// cart-pole).
    #[arg(long, default_value_t = 6000)]
    practice_steps: u64,
    /// Steps of a forward phase (T_f; default: --steps, the task's episode).
    #[arg(long)]
    forward_steps: Option<u32>,
    /// Steps of a backward phase at most (T_b).
    #[arg(long, default_value_t = 300)]
    backward_steps: u32,
    /// Backward steps between two classifier fits (K).
    #[arg(long, default_value_t = 10)]
    classifier_every: u32,
    /// The states of each demonstration's first N steps are where a reset goes (1: its
    /// start state; the expert is already moving fast by its third step).
    #[arg(long, default_value_t = 1)]
    demo_start_steps: u32,
    /// Cycles in a row with no forward success and no reset reached before one
    /// intervention (the simulator resets the robot, counted; hardware asks the operator).
    #[arg(long, default_value_t = 5)]
    stuck_cycles: u32,
    /// Interventions after which the practice stops.
    #[arg(long, default_value_t = 10)]
    max_interventions: u32,
    /// Practice steps between two deployed evaluations (EARL: the forward controller in
    /// use, from the task's initial distribution on a separate simulator; 0: none).
    #[arg(long, default_value_t = 1000, value_name = "STEPS")]
    eval_every: u64,
    /// Episodes of each deployed evaluation.
    #[arg(long, default_value_t = 5, value_name = "N")]
    eval_episodes: u32,
}

/// `--start-state`'s values: finite numbers separated by commas.
fn parse_start_state(text: &str) -> anyhow::Result<Vec<f32>> {
    text.split(',')
        .map(|part| {
            let value: f32 = part.trim().parse().with_context(|| {
                format!("--start-state {text:?}: {part:?} is not a number (expected X,... in SI)")
            })?;
            if !value.is_finite() {
                anyhow::bail!("--start-state {text:?}: {part:?} is not finite");
            }
            Ok(value)
        })
        .collect()
}

/// `--replay-start DIR:EPISODE`: the first frame's observation.state of that episode.
fn replay_start(spec: &str) -> anyhow::Result<Vec<f32>> {
    let Some((dir, episode)) = spec.rsplit_once(':') else {
        anyhow::bail!("--replay-start {spec:?}: expected DIR:EPISODE (e.g. datasets/demos:0)");
    };
    let episode: i64 = episode
        .parse()
        .with_context(|| format!("--replay-start {spec:?}: {episode:?} is not an episode index"))?;
    let reader = handful::dataset::DatasetReader::open(std::path::Path::new(dir))
        .with_context(|| format!("--replay-start: opening dataset {dir}"))?;
    let first = reader
        .episode_frames(episode)
        .with_context(|| format!("--replay-start: dataset {dir} has no episode {episode}"))?
        .next()
        .with_context(|| format!("--replay-start: episode {episode} of {dir} has no frame"))?
        .with_context(|| format!("--replay-start: reading episode {episode} of {dir}"))?;
    Ok(first.frame.state)
}

#[derive(clap::Args)]
struct RecordArgs {
    /// Calibration file of the robot.
    #[arg(long, default_value = "calib/cartpole-sim.toml")]
    calib: PathBuf,
    /// Serial device of a real robot (overrides the calibration's port).
    #[arg(long)]
    port: Option<PathBuf>,
    /// Who drives.
    #[arg(long, value_enum, default_value_t = TeleopKind::Keyboard)]
    teleop: TeleopKind,
    /// The dataset directory.
    #[arg(long, default_value = "datasets/demos")]
    dataset: PathBuf,
    /// The task description stored with each episode.
    #[arg(long, default_value = "swing up and balance")]
    task: String,
    /// Expert only: episodes to record.
    #[arg(long, default_value_t = 5)]
    episodes: u32,
    /// Steps per episode (expert; default the task's).
    #[arg(long)]
    steps: Option<u32>,
    /// Expert only: episodes ended by a fault to recover from (wait until the robot is
    /// healthy, re-arm, go on); 0 stops at the first. An operator restarts by hand.
    #[arg(long, default_value_t = 3, value_name = "N")]
    max_recoveries: u32,
    /// Simulator only, expert only: faster than real time.
    #[arg(long)]
    lockstep: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Extra simulator arguments (repeatable).
    #[arg(long = "sim-arg", allow_hyphen_values = true)]
    sim_args: Vec<String>,
    /// Start the simulated robot with this shell command instead of `handful sim` (see
    /// `handful run --help`). Default: the calibration's `[link] sim_cmd`, if any.
    #[arg(long, value_name = "COMMAND")]
    sim_cmd: Option<String>,
    #[command(flatten)]
    realtime: handful::realtime::RealtimeArgs,
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Episodes, frames, features and provenance.
    Info { path: PathBuf },
    /// Check every file; explain what is wrong and where. Changes nothing.
    Validate { path: PathBuf },
    /// Commit what a crash left (staged episodes, marked recovered) and remove leftovers.
    Recover { path: PathBuf },
    /// Merge datasets into a new one (re-indexed; provenance of each kept).
    Merge {
        /// The new dataset.
        #[arg(long)]
        out: PathBuf,
        /// The datasets to merge, in order.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    // journald-friendly: no colour codes unless a person reads a terminal, and no
    // timestamp of our own under systemd (journald stamps every line; `JOURNAL_STREAM` is
    // set when stderr is connected to it).
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let stderr = if std::env::var_os("JOURNAL_STREAM").is_some() {
        stderr.without_time().boxed()
    } else {
        stderr.boxed()
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(stderr.with_filter(filter))
        // The run's own log file, once its directory exists (`run_log::open`): every
        // line at info and above, whatever RUST_LOG keeps off the terminal.
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(run_log::writer)
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .init();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(why) = idle_flag(&matches) {
        // A flag the chosen job would ignore is a mistake to point out, not to run with.
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, why)
            .exit();
    }
    match real_main(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("handful: error: {err:#}");
            // Stopped cleanly by SIGINT or SIGTERM (summary written, robot disarmed):
            // 128 + the signal, the shell's convention, so a service manager can tell a
            // requested stop (deploy/handful.service: SuccessExitStatus) from a failure.
            match handful::signals::requested_number() {
                Some(signal) => ExitCode::from(128 + signal),
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// A flag given on the command line that the chosen job does nothing with, and why.
fn idle_flag(matches: &clap::ArgMatches) -> Option<String> {
    let (sub, practice) = match matches.subcommand() {
        Some(("run", sub)) => (sub, false),
        Some(("practice", sub)) => (sub, true),
        _ => return None,
    };
    let given = |id: &str| sub.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    let controller = sub
        .get_one::<ControllerKind>("controller")
        .copied()
        .unwrap_or(ControllerKind::Learn);
    let learning = [
        "trials",
        "expert",
        "expert_episodes",
        "resume",
        "trainer",
        "expert_fraction",
        "overlap",
    ];
    let fixed = ["episodes", "ticks", "start_state", "replay_start"];
    let flag = |id: &str| format!("--{}", id.replace('_', "-"));
    if controller != ControllerKind::Learn {
        if let Some(id) = learning.iter().find(|id| given(id)) {
            return Some(format!(
                "{} does nothing with --controller {}: it is the learning job's (--controller learn)",
                flag(id),
                controller_name(controller)
            ));
        }
    } else if let Some(id) = fixed.iter().find(|id| given(id)) {
        return Some(format!(
            "{} does nothing for the learning job: it is a fixed controller's (--controller expert, mpc-true or mpc)",
            flag(id)
        ));
    }
    if practice && given("trials") {
        return Some(
            "--trials does nothing for a practice: it runs for --practice-steps".to_owned(),
        );
    }
    if controller != ControllerKind::Mpc && given("model") {
        return Some(format!(
            "--model does nothing with --controller {}: it is the ONNX ensemble of --controller mpc",
            controller_name(controller)
        ));
    }
    None
}

/// `--sim-cmd` starts a simulated robot: refused when the robot is a serial device
/// (`--port`, or the calibration's `[link] port`).
fn refuse_sim_cmd_with_port(
    sim_cmd: Option<&str>,
    port: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    if let (Some(_), Some(port)) = (sim_cmd, port) {
        anyhow::bail!(
            "--sim-cmd starts a simulated robot, but the robot is the serial device {} \
             (--port or the calibration's [link] port); drop one of them",
            port.display()
        );
    }
    Ok(())
}

/// The controller as typed on the command line (`mpc-true`).
fn controller_name(controller: ControllerKind) -> String {
    use clap::ValueEnum as _;
    controller
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

/// `runs/<name>/log.txt`: every log line of the run (what stderr shows, with timestamps).
mod run_log {
    use std::io::Write;
    use std::sync::Mutex;

    struct Log {
        path: Option<std::path::PathBuf>,
        file: Option<std::fs::File>,
    }

    static LOG: Mutex<Log> = Mutex::new(Log {
        path: None,
        file: None,
    });

    /// Log lines go to `path` (appended) as well, from the first line after its directory
    /// exists: the job creates the run directory only once its settings are valid, so a
    /// refused run leaves none.
    pub fn open(path: &std::path::Path) {
        LOG.lock().unwrap_or_else(|e| e.into_inner()).path = Some(path.to_owned());
    }

    /// The writer `tracing` asks for per line: the file, or nothing before `open`.
    pub fn writer() -> Writer {
        Writer
    }

    pub struct Writer;

    impl Write for Writer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut log = LOG.lock().unwrap_or_else(|e| e.into_inner());
            if log.file.is_none()
                && let Some(path) = log.path.take()
            {
                if path.parent().is_some_and(std::path::Path::is_dir) {
                    // A log that cannot be opened is left out (stderr has every line).
                    log.file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .ok();
                } else {
                    log.path = Some(path);
                }
            }
            if let Some(file) = log.file.as_mut() {
                file.write_all(buf)?;
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    if matches!(
        cli.command,
        Command::Run(_) | Command::Practice { .. } | Command::Record(_)
    ) {
        // SIGINT and SIGTERM stop a run or a recording cleanly (`handful::signals`).
        // The simulator takes them itself.
        handful::signals::install().context("taking SIGINT and SIGTERM")?;
    }
    let done = |result: anyhow::Result<()>| result.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Run(args) => done(run_command(args, None)),
        Command::Practice { run, practice } => done(run_command(run, Some(practice))),
        Command::Sim(args) => done(handful::sim::run_cli(args)),
        Command::Record(args) => done(record_command(args)),
        Command::Dataset(command) => done(dataset_command(command)),
        Command::Bench(args) => done(handful::bench::run_cli(args)),
        Command::Doctor(args) => {
            let report = handful::doctor::diagnose(&args);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", handful::doctor::render(&report));
            }
            Ok(ExitCode::from(report.exit_code(args.strict)))
        }
        Command::View { path, viz } => {
            let report = handful::viz::view(&path, &viz)
                .with_context(|| format!("viewing {}", path.display()))?;
            tracing::info!(
                episodes = report.episodes,
                frames = report.frames,
                "replayed"
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Calib { path } => {
            let calib = Calibration::load(&path)?;
            println!("{}", serde_json::to_string_pretty(&calib)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn record_command(args: RecordArgs) -> anyhow::Result<()> {
    let calib = Calibration::load(&args.calib)?;
    let realtime = realtime_config(&args.realtime)?;
    let port = args.port.or_else(|| calib.port.as_ref().map(PathBuf::from));
    refuse_sim_cmd_with_port(args.sim_cmd.as_deref(), port.as_deref())?;
    let config = RecordConfig {
        robot: RobotOptions {
            port,
            lockstep: args.lockstep,
            seed: args.seed,
            sim_args: args.sim_args,
            sim_cmd: args.sim_cmd.or_else(|| calib.sim_cmd.clone()),
            dir: std::env::temp_dir().join(format!("handful-record-{}", std::process::id())),
            realtime,
        },
        teleop: args.teleop,
        dataset: args.dataset,
        task: args.task,
        episodes: args.episodes,
        steps: args.steps,
        recovery: handful::recovery::RecoveryPolicy {
            max_recoveries: args.max_recoveries,
            ..Default::default()
        },
    };
    let exe = std::env::current_exe().context("locating this program to start the simulator")?;
    let summary = record::record(&config, &calib, &exe)?;
    println!(
        "recorded into {}: {} episodes kept ({} frames), {} discarded, {} tick records dropped",
        config.dataset.display(),
        summary.episodes_kept,
        summary.frames,
        summary.episodes_discarded,
        summary.records_dropped
    );
    println!("{}", summary.faults);
    if let Some(why) = &summary.stopped {
        anyhow::bail!("the run stopped: {why}");
    }
    Ok(())
}

fn dataset_command(command: DatasetCommand) -> anyhow::Result<()> {
    use handful::dataset;
    match command {
        DatasetCommand::Info { path } => {
            let reader = dataset::DatasetReader::open(&path)?;
            let info = reader.info();
            println!("{}", serde_json::to_string_pretty(info)?);
            // Frames per phase, per episode and in all (a continual run's split).
            let mut phases: std::collections::BTreeMap<i64, std::collections::BTreeMap<i64, u64>> =
                Default::default();
            for frame in reader.frames() {
                let frame = frame?;
                *phases
                    .entry(frame.episode_index)
                    .or_default()
                    .entry(frame.frame.phase)
                    .or_default() += 1;
            }
            let split = |counts: &std::collections::BTreeMap<i64, u64>| {
                counts
                    .iter()
                    .map(|(&phase, n)| {
                        let name = u8::try_from(phase)
                            .ok()
                            .and_then(handful::control::PhaseKind::from_index)
                            .map_or_else(|| format!("phase {phase}"), |k| k.name().to_owned());
                        format!("{name} {n}")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut total = std::collections::BTreeMap::new();
            for episode in reader.episodes() {
                let counts = phases.remove(&episode.episode_index).unwrap_or_default();
                for (&phase, &n) in &counts {
                    *total.entry(phase).or_insert(0) += n;
                }
                println!(
                    "episode {:>4}: {:>5} frames ({}), rows {}..{}{}",
                    episode.episode_index,
                    episode.length,
                    split(&counts),
                    episode.dataset_from_index,
                    episode.dataset_to_index,
                    if episode.recovered {
                        " (recovered after a crash)"
                    } else {
                        ""
                    }
                );
            }
            println!("frames per phase: {}", split(&total));
            let pending = reader.pending_recovery();
            if !pending.is_clean() {
                println!(
                    "not committed: {} staged episodes, {} leftovers (`handful dataset recover {}`)",
                    pending.recovered.len(),
                    pending.removed.len() + pending.trimmed.len() + pending.dropped.len(),
                    path.display()
                );
            }
            Ok(())
        }
        DatasetCommand::Recover { path } => {
            let report = dataset::recover(&path)?;
            if report.is_clean() {
                println!("{}: nothing to recover", path.display());
            }
            for e in &report.recovered {
                println!(
                    "committed {} as episode {} ({} frames from {} parts, marked recovered)",
                    e.staging.display(),
                    e.episode_index,
                    e.frames,
                    e.parts_kept
                );
                for (part, why) in &e.parts_dropped {
                    println!("  dropped {}: {why}", part.display());
                }
            }
            for (dir, why) in &report.dropped {
                println!("dropped {}: {why}", dir.display());
            }
            for p in &report.removed {
                println!("removed {}", p.display());
            }
            for p in &report.trimmed {
                println!("cut uncommitted rows off {}", p.display());
            }
            Ok(())
        }
        DatasetCommand::Validate { path } => {
            let report = dataset::validate(&path)?;
            if report.is_valid() {
                println!("{}: valid", path.display());
                Ok(())
            } else {
                for problem in &report.problems {
                    println!("{problem}");
                }
                anyhow::bail!("{}: {} problems", path.display(), report.problems.len())
            }
        }
        DatasetCommand::Merge { out, inputs } => {
            let inputs: Vec<&std::path::Path> = inputs.iter().map(PathBuf::as_path).collect();
            let info = dataset::merge(&inputs, &out)?;
            println!(
                "merged {} datasets into {}: {} episodes, {} frames",
                inputs.len(),
                out.display(),
                info.total_episodes,
                info.total_frames
            );
            Ok(())
        }
    }
}

struct LearnArgs {
    trials: u32,
    expert: Option<PathBuf>,
    expert_episodes: Option<u32>,
    resume: Option<PathBuf>,
    trainer: Option<PathBuf>,
    expert_fraction: f64,
    overlap: bool,
    practice: Option<PracticeArgs>,
}

fn learn_command(
    config: RunConfig,
    calib: &Calibration,
    exe: &std::path::Path,
    args: LearnArgs,
) -> anyhow::Result<()> {
    use handful::sysid::{self, RetrainerConfig};
    let mut trainer = sysid::trainer_config_for(calib.task);
    if let Some(path) = &args.trainer {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading trainer settings {}", path.display()))?;
        trainer = run::overlay_toml(&trainer, &text)
            .with_context(|| format!("trainer settings {}", path.display()))?;
        // Values the trainer refuses are refused here, naming the file, before anything runs.
        handful::train::Trainer::new(trainer.clone(), calib.state_dim(), calib.action_dim(), 0)
            .with_context(|| format!("trainer settings {}", path.display()))?;
    }
    let learn = handful::learn::LearnConfig {
        name: config.name.clone(),
        out_dir: config.out_dir.clone(),
        robot: RobotOptions {
            port: config.port.clone(),
            lockstep: config.lockstep,
            seed: config.seed,
            sim_args: config.sim_args.clone(),
            sim_cmd: config.sim_cmd.clone(),
            dir: config.out_dir.clone(),
            realtime: config.realtime.clone(),
        },
        trials: args.trials,
        steps: config.steps_per_episode,
        expert_dataset: args.expert,
        // A resumed run continues from its experience: no new demonstrations unless asked.
        expert_episodes: args
            .expert_episodes
            .unwrap_or(if args.resume.is_some() { 0 } else { 3 }),
        resume: args.resume,
        retrainer: RetrainerConfig {
            trainer,
            experience: sysid::ExperienceConfig::default(),
            expert_fraction: args.expert_fraction,
            planner: config.planner.clone(),
            seed: config.seed,
            models_dir: config.out_dir.join("models"),
            warm_start: false,
            first_version: 0,
            learning: handful::telemetry::LearningTelemetry::none(),
            plans: None,
        },
        viz: config.viz.clone(),
        // A real-time practice goes on while each model trains (hours of practice are
        // not spent holding the robot); lockstep waits, so a run is reproducible.
        wait_for_model: !args.overlap && (args.practice.is_none() || config.lockstep),
        recovery: config.recovery,
        practice: args.practice.map(|p| handful::medal::PracticeConfig {
            reset: p.reset,
            steps: p.practice_steps,
            forward_steps: p.forward_steps.unwrap_or(config.steps_per_episode),
            backward_steps: p.backward_steps,
            classifier_every: p.classifier_every,
            demo_start_steps: p.demo_start_steps,
            stuck_cycles: p.stuck_cycles,
            max_interventions: p.max_interventions,
            eval_every: p.eval_every,
            eval_episodes: p.eval_episodes,
            ..Default::default()
        }),
    };
    let summary = handful::learn::learn(&learn, calib, exe)?;
    println!("run {} ({})", summary.name, config.out_dir.display());
    // A practice has printed its own account (phases, evaluations); trials are episodic.
    if summary.practice.is_none() {
        match (summary.best_model, summary.best_return) {
            (Some(v), Some(r)) => {
                println!("  best policy: model v{v}, return {r:.2} (best.onnx)");
            }
            _ => println!("  no MPC trial ran"),
        }
        match summary.first_trial_at_170 {
            Some(t) => println!("  first trial at 170 or above: {t}"),
            None => println!("  no trial reached 170"),
        }
    }
    println!("{}", summary.faults);
    if let Some(why) = &summary.stopped {
        anyhow::bail!("the run stopped: {why}");
    }
    Ok(())
}

/// A run name from `kind` and the UTC time, `learn-20261204-013000`, with `-2`, `-3`, ...
/// while `taken` says a name is taken.
fn fresh_name(kind: &str, mut taken: impl FnMut(&str) -> bool) -> String {
    let secs = handful::clock::wall_time_unix_secs() as i64;
    let stamp = chrono::DateTime::from_timestamp(secs, 0).map_or_else(
        || secs.to_string(),
        |t| t.format("%Y%m%d-%H%M%S").to_string(),
    );
    let base = format!("{kind}-{stamp}");
    let mut name = base.clone();
    let mut n = 1;
    while taken(&name) {
        n += 1;
        name = format!("{base}-{n}");
    }
    name
}

fn planner_config(
    path: Option<&std::path::Path>,
    task: handful::task::Task,
    lockstep: bool,
) -> anyhow::Result<PlannerConfig> {
    let Some(path) = path else {
        return Ok(run::default_planner(task, lockstep));
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading planner settings {}", path.display()))?;
    run::planner_config_from_toml(&text, task, lockstep)
        .with_context(|| format!("planner settings {}", path.display()))
}

fn run_command(args: RunArgs, practice: Option<PracticeArgs>) -> anyhow::Result<()> {
    if practice.is_some() && args.controller != ControllerKind::Learn {
        anyhow::bail!("practice is the learning job's: --controller learn (the default)");
    }
    let calib = Calibration::load(&args.calib)?;
    tracing::info!(calibration = %calib.path.display(), sha256 = calib.short_hash(), "calibration loaded");
    let realtime = realtime_config(&args.realtime)?;
    let (name, out_dir) = match (args.name, args.out) {
        (Some(name), Some(out)) => (name, out),
        (Some(name), None) => (name.clone(), PathBuf::from("runs").join(name)),
        (None, out) => {
            let kind = if practice.is_some() {
                "practice".to_owned()
            } else {
                controller_name(args.controller)
            };
            match out {
                Some(out) => (fresh_name(&kind, |_| false), out),
                None => {
                    let runs = PathBuf::from("runs");
                    std::fs::create_dir_all(&runs).context("creating runs/")?;
                    // Claimed by creating it: two runs started in the same second get
                    // `-2`, `-3`, ... (`create_dir` fails if another took the name).
                    let name = fresh_name(&kind, |n| {
                        std::fs::create_dir(runs.join(n))
                            .is_err_and(|e| e.kind() == std::io::ErrorKind::AlreadyExists)
                    });
                    (name.clone(), runs.join(name))
                }
            }
        }
    };
    let mut viz_options = args.viz_limits.apply(args.viz.to_options(if args.no_viz {
        handful::viz::VizSink::Off
    } else {
        handful::viz::VizSink::Save(out_dir.join("viz.rrd"))
    }));
    viz_options.recording_name = Some(name.clone());
    let learn = LearnArgs {
        trials: args.trials,
        expert: args.expert,
        expert_episodes: args.expert_episodes,
        resume: args.resume,
        trainer: args.trainer,
        expert_fraction: args.expert_fraction,
        overlap: args.overlap,
        practice,
    };
    let port = args.port.or_else(|| calib.port.as_ref().map(PathBuf::from));
    refuse_sim_cmd_with_port(args.sim_cmd.as_deref(), port.as_deref())?;
    let config = RunConfig {
        name,
        out_dir,
        calibration_path: calib.path.clone(),
        calibration_sha256: calib.hash.clone(),
        port,
        lockstep: args.lockstep,
        controller: args.controller,
        episodes: args.episodes,
        steps_per_episode: args.steps.unwrap_or(calib.task.episode_steps() as u32),
        seed: args.seed,
        sim_args: args.sim_args,
        // Resolved here so config.json names the command that ran.
        sim_cmd: args.sim_cmd.or_else(|| calib.sim_cmd.clone()),
        model: args.model,
        planner: planner_config(args.planner.as_deref(), calib.task, args.lockstep)?,
        viz: viz_options,
        recovery: handful::recovery::RecoveryPolicy {
            max_recoveries: args.max_recoveries,
            ..Default::default()
        },
        software_version: env!("CARGO_PKG_VERSION"),
        ticks: args.ticks,
        start_states: match &args.replay_start {
            Some(spec) => vec![replay_start(spec)?],
            None => args
                .start_state
                .iter()
                .map(|text| parse_start_state(text))
                .collect::<anyhow::Result<_>>()?,
        },
        realtime,
    };
    run_log::open(&config.out_dir.join("log.txt"));
    let out_dir = config.out_dir.clone();
    let result = execute_run(config, &calib, learn);
    if let Err(err) = &result {
        let only_the_log = std::fs::read_dir(&out_dir).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .all(|e| e.file_name() == "log.txt")
        });
        if only_the_log {
            // Refused before anything ran (a name claimed, perhaps a log line): no run
            // directory is left to look like a run.
            let _ = std::fs::remove_dir_all(&out_dir);
        } else if out_dir.is_dir() {
            // A run that failed says so in its directory, beside whatever it wrote.
            let _ = std::fs::write(out_dir.join("error.txt"), format!("{err:#}\n"));
        }
    }
    result
}

/// Runs the resolved `config`: the learning job, or a fixed controller's episodes.
fn execute_run(config: RunConfig, calib: &Calibration, learn: LearnArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating this program to start the simulator")?;
    if config.controller == ControllerKind::Learn {
        if !config.start_states.is_empty() {
            anyhow::bail!(
                "--start-state and --replay-start are for a fixed controller (--controller \
                 expert|mpc|mpc-true)"
            );
        }
        if config.ticks {
            anyhow::bail!(
                "--ticks is for a fixed controller (--controller expert|mpc|mpc-true); a \
                 learning run records every tick in its datasets"
            );
        }
        return learn_command(config, calib, &exe, learn);
    }
    let summary = run::run(&config, calib, &exe)?;
    println!("run {} ({})", summary.name, config.out_dir.display());
    for episode in &summary.episodes {
        println!(
            "  episode {:>3}: return {:>8.2} over {} steps ({})",
            episode.episode,
            episode.episode_return,
            episode.steps,
            episode.end.label()
        );
    }
    if summary.mean_return.is_finite() {
        println!("  mean return {:.2}", summary.mean_return);
    } else {
        println!("  no episode completed");
    }
    if summary.recoveries > 0 {
        println!("  recovered from {} faulted episodes", summary.recoveries);
    }
    if let Some(report) = &summary.loop_report {
        println!(
            "  loop: {} ticks, compute p50 {} µs p99 {} µs, jitter p99 {} µs, overruns {}",
            report.timing.ticks,
            report.timing.compute.p50_us,
            report.timing.compute.p99_us,
            report.timing.jitter.p99_us,
            report.timing.overruns
        );
    }
    println!("{}", summary.faults);
    if let Some(why) = &summary.stopped {
        anyhow::bail!("the run stopped: {why}");
    }
    Ok(())
}

/// `--rt` and its flags, checked before the robot is touched: with `--require-rt`, a
/// machine that would refuse SCHED_FIFO or memory locking is refused here.
fn realtime_config(
    args: &handful::realtime::RealtimeArgs,
) -> anyhow::Result<handful::realtime::RealtimeConfig> {
    let config = args.to_config()?;
    handful::realtime::preflight(&config)?;
    Ok(config)
}
