//! `handful bench`: measurements that must not be timed tests. `bench plan` measures the
//! machine's SGEMM ceiling, the ONNX ensembles' throughput, plan latency of the PETS
//! paper's and the shipped real-time planner against each task's control period, the
//! planner's own overhead, and what the real-time settings give up in return with the
//! true dynamics (cart-pole and pendulum); it prints a table and writes JSON.
//!
//! `bench rt` runs the real loop against the simulator with and without the real-time
//! set-up while `stress-ng` loads the other cores; `bench footprint` samples the main
//! job's memory, threads and start-up. Both print and write JSON likewise.
//!
//! Orchestration of measurements only: every algorithm it times lives in `mpc` or
//! `model`. Never used on the control path; it allocates and reads the real clock freely.

pub mod ensemble;
pub mod footprint;
pub mod overhead;
pub mod returns;
pub mod rt;
pub mod sgemm;
pub mod stats;

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

/// Arguments of `handful bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Planner performance: SGEMM ceiling, ensemble throughput, plan latency (PETS paper
    /// vs real-time), planner overhead, returns with the true dynamics.
    Plan(PlanArgs),
    /// Only the planner's own overhead (toy model, PETS-size search).
    Overhead {
        #[arg(long, default_value_t = 10)]
        plans: usize,
    },
    /// Tick jitter and deadline misses of the real loop against the simulator, with and
    /// without the real-time set-up (`--rt`), idle and while stress-ng loads the other
    /// cores.
    Rt(rt::RtArgs),
    /// The main job's footprint: resident memory, CPU share of each thread, start-up time
    /// to the first tick, binary size.
    Footprint(footprint::FootprintArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct PlanArgs {
    /// Where the JSON report goes.
    #[arg(long, default_value = "runs/bench-plan.json")]
    pub out: PathBuf,
    /// Plans timed for the real-time configuration (after warm-up).
    #[arg(long, default_value_t = 60)]
    pub plans: usize,
    /// Plans timed for the PETS paper configuration (seconds each).
    #[arg(long, default_value_t = 3)]
    pub paper_plans: usize,
    /// Seeded starts for the true-dynamics returns.
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// Rows per member for the throughput table.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "100,400,1000,2000,4000,8000"
    )]
    pub batch_sizes: Vec<usize>,
    /// Skip the ONNX parts (no .venv needed).
    #[arg(long)]
    pub skip_onnx: bool,
}

/// Everything `bench plan` measured.
#[derive(Debug, Serialize)]
pub struct PlanReport {
    pub sgemm: sgemm::SgemmCeiling,
    pub throughput: Vec<ensemble::ThroughputRow>,
    pub latency: Vec<ensemble::PlanLatency>,
    pub overhead: Vec<overhead::OverheadReport>,
    pub returns: Vec<returns::ReturnReport>,
    /// The shipped real-time planner and model shape of each task.
    pub realtime: Vec<ShippedSettings>,
    pub paper_shape: crate::mpc::EnsembleShape,
}

/// What a task ships for real time.
#[derive(Debug, Serialize)]
pub struct ShippedSettings {
    pub task: crate::task::Task,
    pub period_us: u64,
    pub config: crate::mpc::PlannerConfig,
    pub shape: crate::mpc::EnsembleShape,
}

/// Entry point of `handful bench`.
pub fn run_cli(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Plan(args) => {
            let report = run_plan(&args)?;
            print_report(&report);
            write_report(&args.out, &report)
        }
        BenchCommand::Rt(args) => {
            let report = rt::run_rt(&args)?;
            rt::print_rt(&report);
            write_report(&args.out, &report)
        }
        BenchCommand::Footprint(args) => {
            let report = footprint::run_footprint(&args)?;
            footprint::print_footprint(&report);
            write_report(&args.out, &report)
        }
        BenchCommand::Overhead { plans } => {
            for row in overhead_rows(plans)? {
                print_overhead(&row);
            }
            Ok(())
        }
    }
}

/// Writes a report as pretty JSON to `out` (its directory created) and says where.
fn write_report(out: &std::path::Path, report: &impl Serialize) -> anyhow::Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(out, json).with_context(|| format!("writing {}", out.display()))?;
    println!("report written to {}", out.display());
    Ok(())
}

fn overhead_rows(plans: usize) -> anyhow::Result<Vec<overhead::OverheadReport>> {
    let paper = overhead::measure(
        "PETS P400x20 H25 5it",
        overhead::pets_overhead_config(),
        plans,
    )?;
    let realtime = overhead::measure(
        "real-time (no budget)",
        crate::mpc::PlannerConfig {
            budget_us: None,
            ..crate::mpc::PlannerConfig::realtime_cartpole()
        },
        plans.max(30),
    )?;
    Ok(vec![paper, realtime])
}

/// Runs every measurement of `bench plan`.
pub fn run_plan(args: &PlanArgs) -> anyhow::Result<PlanReport> {
    eprintln!("bench: SGEMM ceiling");
    let sgemm = sgemm::measure_ceiling();
    let (throughput, latency) = if args.skip_onnx {
        (Vec::new(), Vec::new())
    } else {
        let models = ensemble::BenchModels::generate()?;
        eprintln!("bench: ensemble throughput");
        let throughput = ensemble::throughput(&models, &args.batch_sizes, &sgemm)?;
        eprintln!("bench: plan latency");
        let latency = ensemble::plan_latency(&models, args.plans, args.paper_plans)?;
        (throughput, latency)
    };
    eprintln!("bench: planner overhead");
    let overhead = overhead_rows(10)?;
    eprintln!("bench: returns with the true dynamics");
    let returns = returns::compare(args.seeds)?;
    Ok(PlanReport {
        sgemm,
        throughput,
        latency,
        overhead,
        returns,
        realtime: [
            crate::plant::PlantKind::Cartpole,
            crate::plant::PlantKind::Pendulum,
        ]
        .into_iter()
        .map(|kind| ShippedSettings {
            task: kind.spec().task,
            period_us: u64::from(kind.spec().control_period_us),
            config: crate::mpc::PlannerConfig::for_task(kind.spec().task),
            shape: crate::mpc::EnsembleShape::for_task(kind.spec().task),
        })
        .collect(),
        paper_shape: crate::mpc::EnsembleShape::PETS,
    })
}

fn print_overhead(row: &overhead::OverheadReport) {
    println!(
        "  {:<24} rows/plan {:>9}  wall p50 {:>7} µs p99 {:>7} µs  cpu p50 {:>7} µs  {:>5.1} ns/row",
        row.label,
        row.rows_per_plan,
        row.latency.p50_us,
        row.latency.p99_us,
        row.cpu.p50_us,
        row.ns_per_row
    );
}

fn print_report(report: &PlanReport) {
    let s = &report.sgemm;
    println!("SGEMM ceiling (matrixmultiply, best of square 512..1024):");
    println!(
        "  1 thread {:>7.1} GFLOP/s   2 threads {:>7.1} GFLOP/s",
        s.gflops_1_thread, s.gflops_2_threads
    );
    if !report.throughput.is_empty() {
        println!("Ensemble throughput (ONNX Runtime, random weights):");
        println!(
            "  {:<22} {:>7} {:>3} {:>12} {:>9} {:>8}",
            "model", "N/memb", "thr", "rows/s", "GFLOP/s", "%ceil"
        );
        for row in &report.throughput {
            println!(
                "  {:<22} {:>7} {:>3} {:>12.0} {:>9.2} {:>7.1}%",
                row.model,
                row.rows_per_member,
                row.intra_threads,
                row.rows_per_second,
                row.gflops,
                row.percent_of_ceiling
            );
        }
    }
    if !report.latency.is_empty() {
        println!("Plan latency per tick (µs; latency prediction + plan):");
        for row in &report.latency {
            println!(
                "  {:<58} n {:>3}  p50 {:>9}  p99 {:>9}  max {:>9}  period {:>6}  GFLOP/plan {:>8.3}  iters {:.2}",
                row.label,
                row.latency.count,
                row.latency.p50_us,
                row.latency.p99_us,
                row.latency.max_us,
                row.period_us,
                row.gflop_per_plan,
                row.mean_iterations
            );
        }
    }
    println!("Planner overhead (toy model, no network):");
    for row in &report.overhead {
        print_overhead(row);
    }
    println!("Returns with the true dynamics (200 steps):");
    for row in &report.returns {
        println!(
            "  {:<16} {:<28} mean {:>8.2}  min {:>8.2}  over {} seeds  ({:.0} µs/plan mean)",
            row.task.name(),
            row.label,
            row.mean_return,
            row.min_return,
            row.seeds,
            row.mean_plan_us
        );
    }
    for shipped in &report.realtime {
        println!(
            "Shipped for {}: model {}, period {} µs, {}",
            shipped.task.name(),
            shipped.shape,
            shipped.period_us,
            crate::mpc::config::budget_text(shipped.config.budget_us)
        );
    }
    println!("PETS model: {}", report.paper_shape);
}
