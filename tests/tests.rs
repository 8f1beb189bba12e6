// The serial link against a fake robot on a pty.
mod link;
// Simulated plants: physics invariants, transitions, start distributions, rail stops.
mod plant;
// Scripted experts: closed-loop returns on the simulated plants, action limits.
mod expert;
// Planar pushing: physics, calibration, the expert, lockstep runs and learning through the binary.
mod pusher;
// ONNX ensembles through ONNX Runtime (needs `bash models/setup.sh`).
mod model;
// The control loop through the whole path (loop → link → pty → simulated robot).
mod control;
// Planner: CEM/iCEM/random shooting, propagation, costs, MPC controller.
mod mpc;
mod sim; // the simulated robot behind a pty, driven through serialport
// Gymnasium and MuJoCo environments as robots: the Python bridge through `--sim-cmd`.
mod gym;
// The fuzz targets on stable: committed corpus, regressions, seeded mutations.
mod fuzz_corpus;
// The handful binary end to end: run directory, outside models, errors.
mod cli;
// Episodes that start at a given state (--start-state, --replay-start) through the binary.
mod start_state;
// LeRobot v3 datasets: round trip, kill -9 recovery, corruption, merge, validation, pyarrow.
mod dataset;
// Recording demonstrations over the pty into datasets; kill -9 while recording.
mod record;
// Teleoperation: dead-man, rate limit, keyboard, buttons, the firmware-forwarded path.
mod teleop;
// Planner benchmark configuration: the real-time settings still swing up (not timed).
mod bench;
// The ensemble trainer: gradients, learning the pendulum, ONNX export (needs setup.sh).
mod train;
// DAgger system identification: experience, background retraining and hot swap, learning end to end.
mod sysid;
// Learning data: transitions paired by command seq, bootstraps, block validation, the gate.
mod learning;
// Every learning option of `handful run` (resume, expert dataset, overlap, trainer, expert
// fraction) through the binary.
mod learn;
// Reset-free practice (MEDAL) through the binary: phases switch, the classifier learns,
// the cart-pole is brought back to rest.
mod practice;
// SIGTERM and SIGINT stop runs and recordings cleanly, through the binary.
mod signals;
// `handful doctor` on this machine: the JSON report, exit status, failures with their fixes.
mod doctor;
// The control thread's real-time set-up (--rt) where permitted and where not.
mod realtime;
// Rerun visualisation: a session and a dataset replay saved to .rrd, read back by the rerun CLI.
#[cfg(feature = "viz")]
mod viz;
