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
//!
//! Only Rust's global allocator is counted: ONNX Runtime's C++ allocations (its CPU
//! arena, sized on the first run of each batch shape) do not pass through it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ndarray::Array3;

use handful::calib::Calibration;
use handful::clock::Clock;
use handful::control::{
    self, ControlError, Controller, EpisodeEnd, EpisodeStart, HostFault, LoopConfig, Mode,
    Observation, Phase, Request,
};
use handful::expert;
use handful::link::Link;
use handful::model::{Ensemble, ModelExpectation};
use handful::mpc::Dynamics;
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

/// The counters are process-wide: tests of this binary run one at a time, or one test's
/// counted threads would move another's count.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Marks the control thread on first use, then delegates. With `allocate`, it also
/// allocates every tick: the positive control that shows the counter sees the thread.
struct Marking {
    inner: Box<dyn Controller>,
    allocate: bool,
    /// Successful `act`s, counted for the test to see which controller drove.
    acts: Arc<AtomicU64>,
}

impl Marking {
    fn new(inner: Box<dyn Controller>, allocate: bool) -> Self {
        Self {
            inner,
            allocate,
            acts: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Controller for Marking {
    fn act(&mut self, obs: &Observation<'_>, action: &mut [f32]) -> Result<(), ControlError> {
        COUNTING.with(|c| c.set(true));
        if self.allocate {
            std::hint::black_box(vec![0u8; 16]);
        }
        self.inner.act(obs, action)?;
        self.acts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn reset(&mut self) {
        self.inner.reset();
    }

    fn name(&self) -> &'static str {
        "marking"
    }

    fn replace_objective(
        &mut self,
        objective: control::Objective,
    ) -> Result<control::Objective, control::Objective> {
        self.inner.replace_objective(objective)
    }

    fn objective_score(&self, state: &[f32], tick: u64) -> Option<f32> {
        self.inner.objective_score(state, tick)
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
    /// The learned-model path as a real-time run drives it: PETS MPC over a committed
    /// ONNX ensemble fixture through ONNX Runtime, the task's shipped planner with
    /// latency compensation on (`latency_fraction = 1`, so each tick predicts one row
    /// and then the rollout's batch), the plan view on, and mid-run (in the second
    /// counted episode) a hot swap to a second controller warmed up off the loop, the
    /// first coming back on `retired`.
    OnnxWithHotSwap,
}

/// The committed ensemble fixture shaped like `plant`'s calibration.
fn fixture_for(plant: PlantKind) -> std::path::PathBuf {
    let name = match plant {
        PlantKind::Cartpole => "cartpole.onnx",
        PlantKind::Pendulum => "pendulum.onnx",
        PlantKind::Pusher => {
            unreachable!("no committed pusher ensemble: its MPC is counted with the true dynamics")
        }
    };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/fixtures")
        .join(name)
}

/// An MPC controller over `plant`'s ONNX fixture with the real-time planner settings,
/// warmed up here as the retrainer warms its controllers (two `act`s, then `reset`).
fn onnx_controller(
    plant: PlantKind,
    calib: &Calibration,
    clock: &Clock,
    plans: Option<&handful::mpc::PlanObserverFactory>,
) -> Box<dyn Controller> {
    let planner = handful::run::default_planner(calib.task, false);
    assert_eq!(planner.latency_fraction, 1.0);
    let mut controller = handful::run::build_controller(
        handful::run::ControllerKind::Mpc,
        calib,
        Some(
            Ensemble::load(
                &fixture_for(plant),
                &ModelExpectation::from_calibration(calib),
            )
            .unwrap(),
        ),
        &planner,
        clock,
        plans,
    )
    .unwrap();
    let state = vec![0.1f32; calib.state_dim()];
    let mut action = vec![0.0f32; calib.action_dim()];
    for tick in 0..2 {
        let obs = Observation {
            state: &state,
            now_us: clock.now_us(),
            state_age_us: 0,
            tick,
        };
        controller.act(&obs, &mut action).unwrap();
    }
    controller.reset();
    controller
}

/// Allocations counted on the control thread over 3 episodes after a warm-up episode.
fn count_allocations(
    plant: PlantKind,
    calib_file: &str,
    lockstep: bool,
    steps: u32,
    driver: Driver,
) -> u64 {
    let _serial = serial();
    let calib_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("calib")
        .join(calib_file);
    let calib = Calibration::load(&calib_path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut options = SimOptions::new(dir.path().join("robot"));
    options.lockstep = lockstep;
    // The simulated firmware's watchdog is the calibration's (as `handful run` starts it).
    options.watchdog_timeout_us = u32::try_from(calib.watchdog_timeout_us).unwrap();
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
        Driver::Expert { allocate } => Marking::new(expert::expert_for(calib.task), allocate),
        Driver::MpcWithPlanView => Marking::new(
            handful::run::build_controller(
                handful::run::ControllerKind::MpcTrue,
                &calib,
                None,
                &handful::mpc::PlannerConfig::for_task(calib.task),
                &clock,
                plans.as_ref(),
            )
            .unwrap(),
            false,
        ),
        Driver::OnnxWithHotSwap => Marking::new(
            onnx_controller(plant, &calib, &clock, plans.as_ref()),
            false,
        ),
    });
    let first_acts = Arc::clone(&controller.acts);
    let swap_in = matches!(driver, Driver::OnnxWithHotSwap).then(|| {
        Marking::new(
            onnx_controller(plant, &calib, &clock, plans.as_ref()),
            false,
        )
    });
    let second_acts = swap_in.as_ref().map(|c| Arc::clone(&c.acts));
    let mut swap_in = swap_in.map(|c| Box::new(c) as Box<dyn Controller>);
    let handle = control::spawn(config, Arc::clone(&link), controller, clock).unwrap();

    let mut episode = |seed, swap_after: Option<usize>| {
        handle
            .requests
            .send(Request::StartEpisode(EpisodeStart::arm(
                Mode::Autonomous,
                Phase::of_task(calib.task, Some(steps)),
                Some(seed),
            )))
            .map_err(|_| "loop stopped")
            .unwrap();
        let mut driven = 0;
        loop {
            while let Ok(record) = handle.records.try_recv() {
                assert_ne!(record.fault, Some(HostFault::Controller), "{record:?}");
                driven += usize::from(record.episode.is_some());
                if swap_after.is_some_and(|n| driven >= n)
                    && let Some(next) = swap_in.take()
                {
                    handle
                        .requests
                        .send(Request::SetController(next))
                        .map_err(|_| "loop stopped")
                        .unwrap();
                }
            }
            if let Ok(summary) = handle.episodes.recv_timeout(Duration::from_millis(10)) {
                // The pusher's episodes end when the puck is in (its task's success).
                assert!(
                    matches!(summary.end, EpisodeEnd::Completed | EpisodeEnd::Succeeded),
                    "{summary:?}"
                );
                return summary;
            }
        }
    };
    episode(0, None); // warm-up
    let before = COUNTED.load(Ordering::Relaxed);
    let freed_before = FREED.load(Ordering::Relaxed);
    for seed in 1..4 {
        let swap_after = (seed == 2).then_some(steps as usize / 2);
        episode(seed, swap_after);
    }
    let after = COUNTED.load(Ordering::Relaxed);
    if let Some(second_acts) = second_acts {
        let retired = handle
            .retired
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| "no retired controller")
            .unwrap();
        assert_eq!(retired.name(), "marking");
        drop(retired);
        let (first, second) = (
            first_acts.load(Ordering::Relaxed),
            second_acts.load(Ordering::Relaxed),
        );
        eprintln!("acts: {first} by the first controller, {second} by the swapped-in one");
        assert!(
            first >= u64::from(steps) && second >= u64::from(steps),
            "both controllers must have driven: {first} and {second} acts"
        );
    }
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
fn warmed_up_pusher_expert_ticks_allocate_nothing_in_lockstep() {
    let n = count_allocations(
        PlantKind::Pusher,
        "pusher-sim.toml",
        true,
        100,
        Driver::Expert { allocate: false },
    );
    assert_eq!(
        n, 0,
        "the control thread allocated {n} times over 3 warmed-up episodes"
    );
}

#[test]
fn warmed_up_pusher_mpc_ticks_with_the_plan_view_allocate_nothing() {
    let n = count_allocations(
        PlantKind::Pusher,
        "pusher-sim.toml",
        true,
        30,
        Driver::MpcWithPlanView,
    );
    assert_eq!(n, 0, "planning allocated {n} times on the control thread");
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

#[test]
fn warmed_up_onnx_mpc_ticks_in_real_time_with_latency_compensation_plan_view_and_a_hot_swap_allocate_nothing()
 {
    let n = count_allocations(
        PlantKind::Cartpole,
        "cartpole-sim.toml",
        false,
        40,
        Driver::OnnxWithHotSwap,
    );
    assert_eq!(
        n, 0,
        "the learned-model path allocated {n} times on the control thread"
    );
}

/// A continual run on the learned-model path in real time: phases that switch the task
/// and the MPC controller's cost at a tick (forward, backward, forward, …) on one armed
/// robot, the objectives made and dropped off the control thread. After a warm-up pass,
/// the switches and the ticks between them allocate nothing.
#[test]
fn phase_switches_with_a_new_cost_on_the_onnx_mpc_path_allocate_nothing() {
    use handful::control::{AtEnd, PhaseKind};
    use handful::mpc::{Cost, RewardCost, TaskCost};

    let _serial = serial();
    let calib =
        Calibration::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("calib/cartpole-sim.toml"))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sim = sim::spawn(
        SimOptions::new(dir.path().join("robot")),
        PlantKind::Cartpole.build(),
    )
    .unwrap();
    let clock = Clock::real();
    let link = Arc::new(Link::open(&calib, sim.link_path(), clock.clone()).unwrap());
    let config = LoopConfig::from_calibration(&calib, false);
    let controller = Box::new(Marking::new(
        onnx_controller(PlantKind::Cartpole, &calib, &clock, None),
        false,
    ));
    let handle = control::spawn(config, Arc::clone(&link), controller, clock).unwrap();
    let steps = 25;
    let forward = Phase::of_task(calib.task, Some(steps)).then_hold();
    let backward = Phase {
        kind: PhaseKind::Backward,
        reward: handful::task::cartpole_rest_reward,
        success: None,
        score_at_least: None,
        steps: Some(steps),
        at_end: AtEnd::Hold,
    };
    let phase = |start: EpisodeStart, kind: PhaseKind| {
        handle
            .requests
            .send(Request::StartEpisode(start))
            .map_err(|_| "loop stopped")
            .unwrap();
        let summary = loop {
            while handle.records.try_recv().is_ok() {}
            while handle.retired_objectives.try_recv().is_ok() {}
            if let Ok(summary) = handle.episodes.recv_timeout(Duration::from_millis(5)) {
                break summary;
            }
        };
        assert_eq!(
            (summary.end, summary.phase, summary.steps),
            (EpisodeEnd::Completed, kind, steps),
            "{summary:?}"
        );
    };
    let switch = |phase: Phase, cost: Box<dyn Cost>| {
        EpisodeStart::continue_with(Mode::Autonomous, phase)
            .with_objective(handful::mpc::objective(cost, &[]))
    };
    phase(
        EpisodeStart::arm(Mode::Autonomous, forward, Some(3)),
        PhaseKind::Forward,
    );
    let mut counted = None;
    for pass in 0..3 {
        if pass == 1 {
            counted = Some(COUNTED.load(Ordering::Relaxed));
        }
        phase(
            switch(backward, Box::new(RewardCost(backward.reward))),
            PhaseKind::Backward,
        );
        phase(
            switch(forward, Box::new(TaskCost(calib.task))),
            PhaseKind::Forward,
        );
    }
    let n = COUNTED.load(Ordering::Relaxed) - counted.unwrap();
    drop(handle);
    assert_eq!(
        n, 0,
        "phase switches allocated {n} times on the control thread"
    );
}

/// The MEDAL backward controller on the learned-model path in real time: the MPC
/// controller planning for the classifier's cost `log(1 − C(s'))` (batched over particles
/// and horizon), its `C(s)` recorded every tick, and new classifier versions published
/// between and during phases (copied in on the control thread). After a warm-up pass,
/// none of it allocates.
#[test]
fn the_medal_backward_controller_with_classifier_updates_allocates_nothing() {
    use handful::control::{AtEnd, PhaseKind};
    use handful::medal::{Classifier, ClassifierConfig, ClassifierCost, ClassifierSlot};
    use handful::mpc::{Cost, TaskCost};

    let _serial = serial();
    let calib =
        Calibration::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("calib/cartpole-sim.toml"))
            .unwrap();
    // A classifier with something learned: the rest state against states far from it.
    let starts: Vec<Vec<f32>> = (0..20)
        .map(|i| vec![0.01 * i as f32, -0.01 * i as f32, 0.0, 0.0])
        .collect();
    let visited: Vec<Vec<f32>> = (0..50)
        .map(|i| vec![0.5, 3.0 - 0.01 * i as f32, 1.0, 2.0])
        .collect();
    let mut classifier = Classifier::new(ClassifierConfig::default(), 4, &[1], &starts, 5).unwrap();
    classifier.fit(&starts, &visited).unwrap();
    let slot = ClassifierSlot::new(classifier.weights());
    let planner = handful::run::default_planner(calib.task, false);
    let members = 5;
    let rows: Vec<usize> = handful::mpc::Planner::new(planner, 4, 1, &[(-3.0, 3.0)], members)
        .unwrap()
        .batch_rows()
        .into_iter()
        .map(|n| n * members)
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let sim = sim::spawn(
        SimOptions::new(dir.path().join("robot")),
        PlantKind::Cartpole.build(),
    )
    .unwrap();
    let clock = Clock::real();
    let link = Arc::new(Link::open(&calib, sim.link_path(), clock.clone()).unwrap());
    let config = LoopConfig::from_calibration(&calib, false);
    let controller = Box::new(Marking::new(
        onnx_controller(PlantKind::Cartpole, &calib, &clock, None),
        false,
    ));
    let handle = control::spawn(config, Arc::clone(&link), controller, clock).unwrap();
    let steps = 25;
    let forward = Phase::of_task(calib.task, Some(steps)).then_hold();
    let backward = Phase {
        kind: PhaseKind::Backward,
        reward: handful::task::cartpole_rest_reward,
        success: None,
        score_at_least: None,
        steps: Some(steps),
        at_end: AtEnd::Hold,
    };
    let scores = std::cell::Cell::new(0u32);
    let phase = |start: EpisodeStart, kind: PhaseKind, publish: bool| {
        handle
            .requests
            .send(Request::StartEpisode(start))
            .map_err(|_| "loop stopped")
            .unwrap();
        let mut published = !publish;
        let summary = loop {
            while let Ok(record) = handle.records.try_recv() {
                if record.phase == PhaseKind::Backward && record.score.is_finite() {
                    scores.set(scores.get() + 1);
                    if !published {
                        // A new version mid-phase (the same weights: only the copy counts).
                        slot.publish(classifier.weights());
                        published = true;
                    }
                }
            }
            while handle.retired_objectives.try_recv().is_ok() {}
            if let Ok(summary) = handle.episodes.recv_timeout(Duration::from_millis(5)) {
                break summary;
            }
        };
        assert_eq!(
            (summary.end, summary.phase, summary.steps),
            (EpisodeEnd::Completed, kind, steps),
            "{summary:?}"
        );
    };
    let switch = |phase: Phase, cost: Box<dyn Cost>| {
        EpisodeStart::continue_with(Mode::Autonomous, phase)
            .with_objective(handful::mpc::objective(cost, &rows))
    };
    phase(
        EpisodeStart::arm(Mode::Autonomous, forward, Some(3)),
        PhaseKind::Forward,
        false,
    );
    let mut counted = None;
    for pass in 0..3 {
        if pass == 1 {
            counted = Some(COUNTED.load(Ordering::Relaxed));
        }
        let cost = Box::new(ClassifierCost::new(Arc::clone(&slot)));
        phase(switch(backward, cost), PhaseKind::Backward, true);
        phase(
            switch(forward, Box::new(TaskCost(calib.task))),
            PhaseKind::Forward,
            false,
        );
    }
    let n = COUNTED.load(Ordering::Relaxed) - counted.unwrap();
    drop(handle);
    assert!(
        scores.get() >= 3 * steps,
        "C(s) was recorded on {} backward ticks",
        scores.get()
    );
    assert_eq!(
        n, 0,
        "the backward controller allocated {n} times on the control thread"
    );
}

/// The model alone: once the planner's row counts are prepared, alternating them (a
/// latency-compensated tick: N = 1, then the rollout's N) allocates nothing on the Rust
/// side; an unprepared pair of row counts does (each call rebuilds the ort tensors,
/// `RunOptions` and `OutputSelector`), which shows the counter sees this path.
#[test]
fn prepared_row_counts_predict_without_allocating_and_unprepared_ones_allocate() {
    let _serial = serial();
    handful::model::ensure_runtime().unwrap_or_else(|e| panic!("{e}"));
    let calib =
        Calibration::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("calib/cartpole-sim.toml"))
            .unwrap();
    let mut model = Ensemble::load(
        &fixture_for(PlantKind::Cartpole),
        &ModelExpectation::from_calibration(&calib),
    )
    .unwrap();
    let (e, s, a) = (model.ensemble_size(), model.state_dim(), model.action_dim());
    let batches: Vec<_> = [1usize, 80, 3, 40]
        .iter()
        .map(|&n| {
            (
                Array3::<f32>::from_elem((e, n, s), 0.1),
                Array3::<f32>::from_elem((e, n, a), 0.5),
                Array3::<f32>::zeros((e, n, s)),
                Array3::<f32>::zeros((e, n, s)),
            )
        })
        .collect();
    let mut batches = batches;
    model.prepare(1).unwrap();
    model.prepare(80).unwrap();
    let mut run = |model: &mut Ensemble, which: &[usize]| {
        COUNTING.with(|c| c.set(true));
        let before = COUNTED.load(Ordering::Relaxed);
        for _ in 0..5 {
            for &i in which {
                let (states, actions, mean, logvar) = &mut batches[i];
                model
                    .predict(
                        states.view(),
                        actions.view(),
                        mean.view_mut(),
                        logvar.view_mut(),
                    )
                    .unwrap();
            }
        }
        let counted = COUNTED.load(Ordering::Relaxed) - before;
        COUNTING.with(|c| c.set(false));
        counted
    };
    run(&mut model, &[0, 1]); // ONNX Runtime's first runs of each shape
    let prepared = run(&mut model, &[0, 1]);
    let unprepared = run(&mut model, &[2, 3]);
    eprintln!("prepared: {prepared} allocations; unprepared: {unprepared}");
    assert_eq!(
        prepared, 0,
        "prepared row counts allocated {prepared} times"
    );
    assert!(
        unprepared >= 10,
        "unprepared row counts counted only {unprepared} allocations"
    );
}

#[test]
fn warmed_up_onnx_mpc_ticks_on_the_pendulum_in_real_time_allocate_nothing() {
    let n = count_allocations(
        PlantKind::Pendulum,
        "pendulum-sim.toml",
        false,
        20,
        Driver::OnnxWithHotSwap,
    );
    assert_eq!(
        n, 0,
        "the learned-model path allocated {n} times on the control thread"
    );
}
