//! A robot rig for the control tests: the simulated robot behind a real pty, the link,
//! and the control loop, wired as `handful run` wires them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use handful::calib::Calibration;
use handful::clock::Clock;
use handful::control::{
    self, Controller, EpisodeStart, EpisodeSummary, LoopConfig, LoopHandle, Mode, Phase, Request,
};
use handful::link::Link;
use handful::plant::PlantKind;
use handful::sim::{self, SimHandle, SimOptions};

pub(crate) fn calibration(name: &str) -> Calibration {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("calib")
        .join(name);
    Calibration::load(&path).expect("committed calibration loads")
}

/// The committed calibration with `edit` applied to its text (e.g. a longer staleness).
pub(crate) fn calibration_edited(name: &str, edit: impl Fn(&str) -> String) -> Calibration {
    let calib = calibration(name);
    Calibration::from_toml(&calib.path, &edit(&calib.text)).expect("edited calibration is valid")
}

pub(crate) struct Rig {
    pub link: Arc<Link>,
    pub handle: LoopHandle,
    pub sim: Option<SimHandle>,
    /// The calibration's task: the phase every episode of the rig drives.
    pub task: handful::task::Task,
    /// Holds the link's directory for the rig's lifetime.
    _dir: tempfile::TempDir,
}

impl Rig {
    /// Simulated `plant` on a thread, link, and loop with `controller`.
    pub fn start(
        calib: &Calibration,
        plant: PlantKind,
        lockstep: bool,
        tune: impl FnOnce(&mut SimOptions),
        controller: Box<dyn Controller>,
    ) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let mut options = SimOptions::new(dir.path().join("robot"));
        options.lockstep = lockstep;
        tune(&mut options);
        let sim = sim::spawn(options, plant.build()).expect("simulator starts");
        let mut rig = Rig::attach(calib, sim.link_path(), lockstep, controller, dir);
        rig.sim = Some(sim);
        rig
    }

    /// The simulated cart-pole in lockstep, driven by its scripted expert: the rig most
    /// tests start from.
    pub fn cartpole_expert(calib: &Calibration) -> Rig {
        Rig::start(
            calib,
            PlantKind::Cartpole,
            true,
            |_| {},
            handful::expert::expert_for(handful::task::Task::CartpoleSwingup),
        )
    }

    /// Link and loop on an existing robot at `path`.
    pub fn attach(
        calib: &Calibration,
        path: &Path,
        lockstep: bool,
        controller: Box<dyn Controller>,
        dir: tempfile::TempDir,
    ) -> Rig {
        let clock = if lockstep {
            Clock::simulated()
        } else {
            Clock::real()
        };
        let link = Arc::new(Link::open(calib, path, clock.clone()).expect("link opens"));
        let mut config = LoopConfig::from_calibration(calib, lockstep);
        config.lockstep_timeout = Duration::from_millis(300);
        let handle = control::spawn(config, Arc::clone(&link), controller, clock).unwrap();
        Rig {
            link,
            handle,
            sim: None,
            task: calib.task,
            _dir: dir,
        }
    }

    /// Runs one episode and waits for its summary (draining telemetry meanwhile).
    pub fn episode(&self, steps: u32, seed: u64) -> EpisodeSummary {
        self.handle
            .requests
            .send(Request::StartEpisode(EpisodeStart::arm(
                Mode::Autonomous,
                Phase::of_task(self.task, Some(steps)),
                self.link.robot().has_reset().then_some(seed),
            )))
            .map_err(|_| "loop stopped")
            .unwrap();
        self.wait_episode(Duration::from_secs(60))
    }

    pub fn wait_episode(&self, timeout: Duration) -> EpisodeSummary {
        let waiter = Clock::real();
        let give_up = waiter.now_us() + timeout.as_micros() as u64;
        loop {
            while self.handle.records.try_recv().is_ok() {}
            if let Ok(summary) = self.handle.episodes.recv_timeout(Duration::from_millis(20)) {
                return summary;
            }
            assert!(
                waiter.now_us() < give_up,
                "no episode summary within {timeout:?}"
            );
        }
    }
}
