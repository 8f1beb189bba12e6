//! Proves the planner's hot path allocation-free: a counting global allocator for the
//! library's unit-test binary, counting per thread (so tests running in parallel do not
//! disturb each other), and warmed-up `plan`/`act` calls that must count zero.
//!
//! Test-only; the counter is a `const`-initialised thread-local without a destructor,
//! so reading it never allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ndarray::{ArrayView3, ArrayViewMut3};

use super::*;
use crate::clock::Clock;
use crate::control::{Controller, Observation};
use crate::task::Task;

struct CountingAlloc;

std::thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call forwards to `System` unchanged; counting touches only a Cell.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

/// Toy probabilistic ensemble: member `e` drifts by `0.01·(e + 1) + 0.1·u`, σ = 0.05.
struct ToyEnsemble;

impl Dynamics for ToyEnsemble {
    fn state_dim(&self) -> usize {
        2
    }
    fn action_dim(&self) -> usize {
        1
    }
    fn ensemble_size(&self) -> usize {
        5
    }
    fn is_probabilistic(&self) -> bool {
        true
    }
    fn predict(
        &mut self,
        _states: ArrayView3<'_, f32>,
        actions: ArrayView3<'_, f32>,
        mut mean: ArrayViewMut3<'_, f32>,
        mut logvar: ArrayViewMut3<'_, f32>,
    ) -> Result<(), DynamicsError> {
        for ((e, n, k), m) in mean.indexed_iter_mut() {
            *m = 0.01 * (e as f32 + 1.0) + 0.1 * actions[[e, n, 0]] * k as f32;
        }
        logvar.fill((0.05f32 * 0.05).ln());
        Ok(())
    }
}

fn integrator(state: &[f64], action: &[f64], next: &mut [f64]) {
    next[0] = state[0] + 0.1 * state[1];
    next[1] = state[1] + 0.1 * action[0];
}

fn config(optimizer: Optimizer, propagation: Propagation) -> PlannerConfig {
    PlannerConfig {
        horizon: 8,
        population: 40,
        elites: 5,
        iterations: 4,
        particles: 5,
        optimizer,
        propagation,
        epsilon_variance: 0.0,
        ..PlannerConfig::pets_paper(Task::PendulumSwingup)
    }
}

#[test]
fn warmed_up_plan_never_allocates() {
    let bounds = [(-2.0f32, 2.0f32)];
    let cost = TaskCost(Task::PendulumSwingup);
    let clock = Clock::simulated();
    for optimizer in [Optimizer::Cem, Optimizer::ICem, Optimizer::RandomShooting] {
        for propagation in [
            Propagation::TsInf,
            Propagation::Ts1,
            Propagation::Expectation,
        ] {
            let mut planner =
                Planner::new(config(optimizer, propagation), 2, 1, &bounds, 5).unwrap();
            let mut model = ToyEnsemble;
            let state = [3.0f32, 0.0];
            planner.plan(&state, &mut model, &cost, None).unwrap();
            let mut predicted = [0.0f32; 2];
            let counted = allocations_during(|| {
                for _ in 0..3 {
                    planner.plan(&state, &mut model, &cost, None).unwrap();
                    planner
                        .plan(&state, &mut model, &cost, Some((&clock, 1_000_000)))
                        .unwrap();
                    planner
                        .predicted_state_at_latency(&state, &[0.5], 0.3, &mut model, &mut predicted)
                        .unwrap();
                }
            });
            assert_eq!(counted, 0, "{optimizer:?} {propagation:?} allocated");
        }
    }
}

#[test]
fn warmed_up_controller_act_never_allocates() {
    let planner_config = PlannerConfig {
        budget_us: Some(10_000),
        latency_fraction: 0.5,
        particles: 1,
        ..config(Optimizer::Cem, Propagation::TsInf)
    };
    let planner = Planner::new(planner_config, 2, 1, &[(-1.0, 1.0)], 1).unwrap();
    let dynamics = Box::new(AnalyticDynamics::new(integrator, 2, 1));
    let cost = Box::new(TaskCost(Task::PendulumSwingup));
    let mut controller = MpcController::new(planner, dynamics, cost, Clock::simulated()).unwrap();
    let state = [1.0f32, 0.0];
    let mut action = [0.0f32];
    let obs = |tick: u64| Observation {
        state: &state,
        now_us: tick * 50_000,
        state_age_us: 0,
        tick,
    };
    controller.act(&obs(0), &mut action).unwrap();
    controller.act(&obs(1), &mut action).unwrap();
    let counted = allocations_during(|| {
        for tick in 2..6 {
            controller.act(&obs(tick), &mut action).unwrap();
        }
    });
    assert_eq!(counted, 0);
    assert!(controller.last_stats().is_some_and(|s| s.iterations > 0));
}

#[test]
fn the_counter_sees_allocations() {
    let counted = allocations_during(|| {
        std::hint::black_box(vec![1u8; 16]);
    });
    assert!(counted >= 1);
}
