//! handful: learn a robot's dynamics in a handful of trials and control it in real time.
//!
//! See ARCHITECTURE.md for the threads, the data flowing between them and the
//! invariants. The binary (`src/main.rs`) only parses arguments and wires these modules.

pub mod bench;
pub mod calib;
pub mod clock;
pub mod control;
pub mod dataset;
pub mod doctor;
pub mod episodes;
pub mod expert;
pub mod faults;
#[doc(hidden)]
pub mod fuzzing;
pub mod json;
pub mod learn;
pub mod link;
pub mod medal;
pub mod model;
pub mod mpc;
pub mod plant;
pub mod realtime;
pub mod record;
pub mod recovery;
pub mod run;
pub mod signals;
pub mod sim;
pub mod sysid;
pub mod task;
pub mod telemetry;
pub mod teleop;
pub mod thread;
pub mod tick_log;
pub mod train;
pub mod viz;
