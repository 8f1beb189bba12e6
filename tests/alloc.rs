//! Proof that the control thread allocates nothing after start-up.
//!
//! Allocations (`alloc`, `realloc`) are what is counted and must be zero. Frees are
//! counted apart and reported, not asserted: waking a thread blocked on a channel can
//! leave the waker to free the other thread's wake-up record (crossbeam's), which
//! returns memory but never asks for any.
//!
//! A counting global allocator counts only on threads that opted in (a `const`
//! thread-local flag, safe to read inside the allocator). The controller raises the flag
//! on its first call, which runs on the control thread; from then on every allocation
//! made there — by the loop, the safety layer, the link calls, the controller — counts.
//! After a warm-up episode the count must not move over whole episodes, including their
//! resets, arming and ends. Its own test binary: no other test shares the allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use handful::calib::Calibration;
use handful::clock::Clock;
use handful::control::{
    self, ControlError, Controller, EpisodeEnd, LoopConfig, Mode, Observation, Request,
};
use handful::expert;
use handful::link::Link;
use handful::plant::PlantKind;
use handful::sim::{self, SimOptions};

struct Counting;

static COUNTED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

static FREED: AtomicU64 = AtomicU64::new(0);

fn note_free() {
    if COUNTING.with(Cell::get) {
        FREED.fetch_add(1, Ordering::Relaxed);
    }
}

fn note() {
    if COUNTING.with(Cell::get) {
        COUNTED.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Marks the control thread on first use, then delegates. With `allocate`, it also
/// allocates every tick: the positive control that shows the counter sees the thread.
struct Marking {
    inner: Box<dyn Controller>,
    allocate: bool,
}

impl Controller for Marking {
    fn act(&mut self, obs: &Observation<'_>, action: &mut [f32]) -> Result<(), ControlError> {
        COUNTING.with(|c| c.set(true));
        if self.allocate {
            std::hint::black_box(vec![0u8; 16]);
        }
        self.inner.act(obs, action)
    }

    fn reset(&mut self) {
        self.inner.reset();
    }

    fn name(&self) -> &'static str {
        "marking"
    }
}

/// Which controller the loop runs.
#[derive(Clone, Copy)]
enum Driver {
    Expert {
        allocate: bool,
    },
    /// PETS MPC with the true dynamics, every plan sent to the viewer's queue: the
    /// planner's and the plan view's whole per-tick path.
    MpcWithPlanView,
}

/// Allocations counted on the control thread over 3 episodes after a warm-up episode.
fn count_allocations(
    plant: PlantKind,
    calib_file: &str,
    lockstep: bool,
    steps: u32,
    driver: Driver,
) -> u64 {
    let calib_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("calib")
        .join(calib_file);
    let calib = Calibration::load(&calib_path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut options = SimOptions::new(dir.path().join("robot"));
    options.lockstep = lockstep;
    let sim = sim::spawn(options, plant.build()).unwrap();
    let clock = if lockstep {
        Clock::simulated()
    } else {
        Clock::real()
    };
    let link = Arc::new(Link::open(&calib, sim.link_path(), clock.clone()).unwrap());
    let mut config = LoopConfig::from_calibration(&calib, lockstep);
    // The viewer's queue is fed every tick too; a queue nobody drains fills up and then
    // drops: both paths run here.
    let (viz, _queue) = handful::viz::VizSender::unattached(64, 4);
    config.telemetry = control::Telemetry::to(viz);
    let (plan_viz, _plan_queue) = handful::viz::VizSender::unattached(64, 4);
    let plans = plan_viz.plan_observers();
    let controller = Box::new(match driver {
        Driver::Expert { allocate } => Marking {
            inner: expert::expert_for(calib.task),
            allocate,
        },
        Driver::MpcWithPlanView => Marking {
            inner: handful::run::build_controller(
                handful::run::ControllerKind::MpcTrue,
                &calib,
                None,
                &handful::mpc::PlannerConfig::for_task(calib.task),
                &clock,
                plans.as_ref(),
            )
            .unwrap(),
            allocate: false,
        },
    });
    let handle = control::spawn(config, Arc::clone(&link), controller, clock).unwrap();

    let episode = |seed| {
        handle
            .requests
            .send(Request::StartEpisode {
                mode: Mode::Autonomous,
                steps: Some(steps),
                reset_seed: Some(seed),
            })
            .map_err(|_| "loop stopped")
            .unwrap();
        loop {
            while handle.records.try_recv().is_ok() {}
            if let Ok(summary) = handle.episodes.recv_timeout(Duration::from_millis(10)) {
                assert_eq!(summary.end, EpisodeEnd::Completed, "{summary:?}");
                return summary;
            }
        }
    };
    episode(0); // warm-up
    let before = COUNTED.load(Ordering::Relaxed);
    let freed_before = FREED.load(Ordering::Relaxed);
    for seed in 1..4 {
        episode(seed);
    }
    let after = COUNTED.load(Ordering::Relaxed);
    eprintln!(
        "control thread: {} allocations, {} frees over 3 episodes",
        after - before,
        FREED.load(Ordering::Relaxed).saturating_sub(freed_before)
    );
    drop(handle);
    after - before
}

#[test]
fn warmed_up_ticks_allocate_nothing_in_lockstep() {
    let n = count_allocations(
        PlantKind::Cartpole,
        "cartpole-sim.toml",
        true,
        200,
        Driver::Expert { allocate: false },
    );
    assert_eq!(
        n, 0,
        "the control thread allocated {n} times over 3 warmed-up episodes"
    );
}

#[test]
fn warmed_up_ticks_allocate_nothing_in_real_time() {
    let n = count_allocations(
        PlantKind::Pendulum,
        "pendulum-sim.toml",
        false,
        20,
        Driver::Expert { allocate: false },
    );
    assert_eq!(
        n, 0,
        "the control thread allocated {n} times over 3 warmed-up episodes"
    );
}

#[test]
fn the_counter_sees_allocations_on_the_control_thread() {
    let n = count_allocations(
        PlantKind::Cartpole,
        "cartpole-sim.toml",
        true,
        20,
        Driver::Expert { allocate: true },
    );
    assert!(
        n >= 60,
        "an allocating controller was counted only {n} times"
    );
}

#[test]
fn warmed_up_mpc_ticks_with_the_plan_view_allocate_nothing() {
    let n = count_allocations(
        PlantKind::Cartpole,
        "cartpole-sim.toml",
        true,
        40,
        Driver::MpcWithPlanView,
    );
    assert_eq!(n, 0, "planning allocated {n} times on the control thread");
}
