//! ONNX ensembles under load: throughput of one `predict` call by batch size and thread
//! count (cart-pole shapes), and plan latency of the PETS paper's and the shipped
//! real-time planner over them, for the cart-pole and the pendulum. Models are written with random weights by `models/make_ensemble.py` (needs the
//! `.venv` of `models/setup.sh`) into a temporary directory removed afterwards.
//!
//! Bench-only: allocates, spawns Python, reads the real clock.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use ndarray::Array3;
use serde::Serialize;

use super::sgemm::SgemmCeiling;
use super::stats::{LatencySummary, time_us};
use crate::clock::Clock;
use crate::model::{Ensemble, ModelExpectation, ModelOptions};
use crate::mpc::{Dynamics, EnsembleShape, Planner, PlannerConfig, Propagation, TaskCost};
use crate::plant::cartpole::{SPEC, STATE_DIM};
use crate::plant::{PlantKind, PlantSpec};
use crate::task::Task;

const ACTION_DIM: usize = 1;

/// The generated model files, deleted on drop.
pub struct BenchModels {
    dir: PathBuf,
    /// Cart-pole, PETS paper's network.
    pub paper: (EnsembleShape, PathBuf),
    /// Cart-pole, the shipped shape.
    pub realtime: (EnsembleShape, PathBuf),
    /// Pendulum, the shipped shape.
    pub pendulum: (EnsembleShape, PathBuf),
}

impl Drop for BenchModels {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The repository holding `.venv` and `models/`: the working directory if it has them,
/// else the one this crate was built from.
fn repo_root() -> anyhow::Result<PathBuf> {
    let candidates = [
        std::env::current_dir().unwrap_or_default(),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    ];
    candidates
        .into_iter()
        .find(|dir| {
            dir.join(".venv/bin/python").is_file() && dir.join("models/make_ensemble.py").is_file()
        })
        .context(
            "the bench needs the Python environment of models/setup.sh (.venv/bin/python and \
             models/make_ensemble.py, in the working directory or the source tree): run \
             `bash models/setup.sh` from the repository root, or pass --skip-onnx",
        )
}

impl BenchModels {
    /// Writes the PETS-size and the shipped-size cart-pole ensembles and the
    /// shipped-size pendulum ensemble (random weights).
    pub fn generate() -> anyhow::Result<Self> {
        let root = repo_root()?;
        let dir = std::env::temp_dir().join(format!("handful-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let models = Self {
            paper: (EnsembleShape::PETS, dir.join("pets.onnx")),
            realtime: (
                EnsembleShape::for_task(Task::CartpoleSwingup),
                dir.join("realtime.onnx"),
            ),
            pendulum: (
                EnsembleShape::for_task(Task::PendulumSwingup),
                dir.join("pendulum.onnx"),
            ),
            dir,
        };
        for (shape, path) in [&models.paper, &models.realtime] {
            make_ensemble(&root, &SPEC, *shape, path)?;
        }
        let (shape, path) = &models.pendulum;
        make_ensemble(&root, PlantKind::Pendulum.spec(), *shape, path)?;
        Ok(models)
    }
}

fn make_ensemble(
    root: &Path,
    spec: &PlantSpec,
    shape: EnsembleShape,
    out: &Path,
) -> anyhow::Result<()> {
    let hidden = vec![shape.hidden_units.to_string(); shape.hidden_layers].join(",");
    let state_names: Vec<&str> = spec.states.iter().map(|s| s.name).collect();
    let action_names: Vec<&str> = spec.actions.iter().map(|a| a.name).collect();
    let output = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("models/make_ensemble.py"))
        .arg("--out")
        .arg(out)
        .args(["--ensemble-size", &shape.ensemble_size.to_string()])
        .args(["--state-names", &state_names.join(",")])
        .args(["--action-names", &action_names.join(",")])
        .args(["--hidden", &hidden, "--activation", "swish", "--seed", "0"])
        .args(["--control-period-us", &spec.control_period_us.to_string()])
        .output()
        .context("running models/make_ensemble.py")?;
    if !output.status.success() {
        bail!(
            "models/make_ensemble.py failed for a {shape} ensemble: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn load(spec: &PlantSpec, path: &Path, intra_threads: usize) -> anyhow::Result<Ensemble> {
    let expect = ModelExpectation {
        state_names: spec.states.iter().map(|s| s.name.to_owned()).collect(),
        action_names: spec.actions.iter().map(|a| a.name.to_owned()).collect(),
        control_period_us: u64::from(spec.control_period_us),
    };
    let options = ModelOptions {
        intra_threads,
        spinning: false,
    };
    Ensemble::load_with(path, &expect, options)
        .with_context(|| format!("loading {}", path.display()))
}

/// One throughput measurement.
#[derive(Clone, Debug, Serialize)]
pub struct ThroughputRow {
    pub model: String,
    pub shape: EnsembleShape,
    pub rows_per_member: usize,
    pub intra_threads: usize,
    pub calls: usize,
    /// Median time of one `predict` over `E × N` rows, µs.
    pub call_p50_us: u64,
    /// Rows (each through all `E` members) per second, from the median call.
    pub rows_per_second: f64,
    /// `rows/s × 2·E·Σ in·out`, GFLOP/s.
    pub gflops: f64,
    /// Of the SGEMM ceiling for the same thread count.
    pub percent_of_ceiling: f64,
}

/// Times `predict` for every batch size and 1 and 2 intra-op threads on both models.
pub fn throughput(
    models: &BenchModels,
    batch_sizes: &[usize],
    ceiling: &SgemmCeiling,
) -> anyhow::Result<Vec<ThroughputRow>> {
    let clock = Clock::real();
    let mut rows = Vec::new();
    for (label, (shape, path)) in [
        ("PETS 5x3x500", &models.paper),
        ("real-time", &models.realtime),
    ] {
        let flops_per_row = shape.flops_per_row(STATE_DIM, ACTION_DIM) as f64;
        let label = format!(
            "{label} {}x{}x{}",
            shape.ensemble_size, shape.hidden_layers, shape.hidden_units
        );
        for threads in [1, 2] {
            let mut model = load(&SPEC, path, threads)?;
            for &n in batch_sizes {
                let e = shape.ensemble_size;
                let states = Array3::from_shape_fn((e, n, STATE_DIM), |(i, j, k)| {
                    ((i + 3 * j + 7 * k) % 11) as f32 * 0.1 - 0.5
                });
                let actions = Array3::from_shape_fn((e, n, ACTION_DIM), |(_, j, _)| {
                    (j % 7) as f32 * 0.3 - 1.0
                });
                let mut mean = Array3::zeros((e, n, STATE_DIM));
                let mut logvar = Array3::zeros((e, n, STATE_DIM));
                let mut call = || {
                    model.predict(
                        states.view(),
                        actions.view(),
                        mean.view_mut(),
                        logvar.view_mut(),
                    )
                };
                call().context("warm-up predict")?;
                // About 0.3 s of calls per point, at least 3 and at most 200.
                let (first_us, _) = time_us(&clock, &mut call);
                let calls = (300_000 / first_us.max(1)).clamp(3, 200) as usize;
                let mut samples = Vec::with_capacity(calls);
                for _ in 0..calls {
                    let (us, result) = time_us(&clock, &mut call);
                    result.context("predict")?;
                    samples.push(us.max(1));
                }
                let p50_us = LatencySummary::from_samples(&samples).p50_us.max(1);
                let rows_per_second = n as f64 * 1e6 / p50_us as f64;
                let gflops = rows_per_second * flops_per_row / 1e9;
                rows.push(ThroughputRow {
                    model: label.clone(),
                    shape: *shape,
                    rows_per_member: n,
                    intra_threads: threads,
                    calls,
                    call_p50_us: p50_us,
                    rows_per_second,
                    gflops,
                    percent_of_ceiling: 100.0 * gflops / ceiling.for_threads(threads).max(1e-9),
                });
            }
        }
    }
    Ok(rows)
}

/// Plan latency of one planner over one model.
#[derive(Clone, Debug, Serialize)]
pub struct PlanLatency {
    pub task: Task,
    pub label: String,
    pub shape: EnsembleShape,
    pub config: PlannerConfig,
    pub intra_threads: usize,
    /// The task's control period, µs: the ceiling a real-time plan must fit.
    pub period_us: u64,
    /// One tick's planning work: the latency-compensation prediction (one row, when
    /// `latency_fraction > 0`) and the plan.
    pub latency: LatencySummary,
    pub mean_iterations: f64,
    pub mean_candidates: f64,
    /// Network flops of a mean plan, GFLOP.
    pub gflop_per_plan: f64,
}

/// Times `plans` ticks' planning after `warmup` ones, with the config's budget as a
/// deadline: the latency-compensation prediction when `latency_fraction > 0` (as a
/// real-time tick runs it), then the plan. The model is prepared for the planner's row
/// counts first, as the MPC controller does.
fn time_plans(
    kind: PlantKind,
    label: &str,
    (shape, path): &(EnsembleShape, PathBuf),
    config: PlannerConfig,
    intra_threads: usize,
    warmup: usize,
    plans: usize,
) -> anyhow::Result<PlanLatency> {
    let spec = kind.spec();
    let (state_dim, action_dim) = (spec.states.len(), spec.actions.len());
    let clock = Clock::real();
    // Progress on stderr (the figures go to stdout): the paper's planner takes minutes.
    eprintln!(
        "bench plan: timing {label}: {shape} model, {warmup} warm-up and {plans} timed plans"
    );
    let mut model = load(spec, path, intra_threads)?;
    let bounds: Vec<(f32, f32)> = spec
        .actions
        .iter()
        .map(|a| (a.min as f32, a.max as f32))
        .collect();
    let mut planner = Planner::new(
        config.clone(),
        state_dim,
        action_dim,
        &bounds,
        shape.ensemble_size,
    )?;
    for rows in planner.batch_rows() {
        model.prepare(rows)?;
    }
    let cost = TaskCost(spec.task);
    let command = vec![0.5 * bounds[0].1; action_dim];
    let mut predicted = vec![0.0f32; state_dim];
    let (mut samples, mut iterations, mut candidates) = (Vec::new(), 0u64, 0u64);
    for i in 0..warmup + plans {
        let phase = i as f32 * 0.1;
        let state: Vec<f32> = (0..state_dim)
            .map(|k| 0.1 * (phase + k as f32).sin() + 0.05 * (k % 2) as f32 * i as f32)
            .collect();
        let start_us = clock.now_us();
        let deadline = config.budget_us.map(|b| (&clock, start_us + b));
        let from = if config.latency_fraction > 0.0 {
            planner.predicted_state_at_latency(
                &state,
                &command,
                config.latency_fraction,
                &mut model,
                &mut predicted,
            )?;
            &predicted
        } else {
            &state
        };
        let stats = planner.plan(from, &mut model, &cost, deadline)?;
        let us = clock.now_us().saturating_sub(start_us);
        if i >= warmup {
            samples.push(us);
            iterations += u64::from(stats.iterations);
            candidates += stats.samples_evaluated;
        }
    }
    let n = plans.max(1) as f64;
    let per_candidate = match config.propagation {
        Propagation::Expectation => 1.0,
        Propagation::TsInf | Propagation::Ts1 => {
            config.particles as f64 / shape.ensemble_size as f64
        }
    };
    let flops = shape.flops_per_row(state_dim, action_dim) as f64;
    Ok(PlanLatency {
        task: spec.task,
        label: label.to_owned(),
        shape: *shape,
        intra_threads,
        period_us: u64::from(spec.control_period_us),
        latency: LatencySummary::from_samples(&samples),
        mean_iterations: iterations as f64 / n,
        mean_candidates: candidates as f64 / n,
        gflop_per_plan: candidates as f64 / n * per_candidate * config.horizon as f64 * flops / 1e9,
        config,
    })
}

/// Per task: the shipped real-time planner (as a real-time run configures it: latency
/// compensation on) over the shipped-shape model, with and without its budget, on 1 and
/// 2 intra-op threads; the PETS paper's planner on the cart-pole's PETS model and on the
/// pendulum's shipped model (few plans: up to seconds each).
pub fn plan_latency(
    models: &BenchModels,
    plans: usize,
    paper_plans: usize,
) -> anyhow::Result<Vec<PlanLatency>> {
    let mut out = Vec::new();
    for (kind, model) in [
        (PlantKind::Cartpole, &models.realtime),
        (PlantKind::Pendulum, &models.pendulum),
    ] {
        let task = kind.spec().task;
        let realtime = crate::run::default_planner(task, false);
        let unbounded = PlannerConfig {
            budget_us: None,
            ..realtime.clone()
        };
        for threads in [1, 2] {
            out.push(time_plans(
                kind,
                &format!(
                    "{} real-time, {}, {threads} thr",
                    kind.name(),
                    crate::mpc::config::budget_text(realtime.budget_us)
                ),
                model,
                realtime.clone(),
                threads,
                5,
                plans.max(30),
            )?);
            out.push(time_plans(
                kind,
                &format!("{} real-time, no budget, {threads} thr", kind.name()),
                model,
                unbounded.clone(),
                threads,
                5,
                plans.max(30),
            )?);
        }
    }
    if paper_plans > 0 {
        out.push(time_plans(
            PlantKind::Cartpole,
            "cartpole PETS paper (P400 K40 5it H25 20p), PETS net, 2 thr",
            &models.paper,
            PlannerConfig::pets_paper(Task::CartpoleSwingup),
            2,
            1,
            paper_plans,
        )?);
        out.push(time_plans(
            PlantKind::Pendulum,
            "pendulum PETS paper (P200 K20 5it H30 20p), shipped net, 1 thr",
            &models.pendulum,
            PlannerConfig::pets_paper(Task::PendulumSwingup),
            1,
            1,
            paper_plans,
        )?);
    }
    Ok(out)
}
