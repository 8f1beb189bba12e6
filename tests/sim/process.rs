//! Options (argv round trip, validation), the link's ownership rule, and the
//! child-process wrapper (driven with a stand-in script, since the binary does not wire
//! `handful sim` yet).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use clap::Parser;
use handful::plant::PlantKind;
use handful::sim::{SimArgs, SimError, SimOptions, Spikes, Window, spawn, spawn_process};

use super::host::Integrator;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    sim: SimArgs,
}

fn parse(argv: &[&str]) -> Result<SimArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("sim").chain(argv.iter().copied())).map(|c| c.sim)
}

#[test]
fn sim_args_render_back_to_themselves() {
    let cases: &[&[&str]] = &[
        &["cartpole"],
        &["cartpole", "--sensor-noise=-1", "--link=-odd"],
        &[
            "pendulum",
            "--lockstep",
            "--seed",
            "9",
            "--link",
            "/tmp/x y",
        ],
        &[
            "cartpole",
            "--sensor-noise",
            "0.1",
            "--sensor-latency-ms",
            "30",
            "--drop-prob",
            "0.05",
        ],
        &[
            "cartpole",
            "--corrupt-prob",
            "1e-3",
            "--stall-at-ms",
            "100",
            "--stall-for-ms",
            "50",
        ],
        &[
            "pendulum",
            "--disconnect-at-ms",
            "200",
            "--reconnect-after-ms",
            "300",
            "--watchdog-ms",
            "80",
        ],
        &[
            "pendulum",
            "--disconnect-at-ms",
            "200",
            "--heartbeat-ms",
            "20",
            "--host-timeout-ms",
            "90",
        ],
        &[
            "cartpole",
            "--corrupt-byte-prob",
            "0.01",
            "--latency-spike-at-ms",
            "1000",
            "--latency-spike-ms",
            "150",
            "--latency-spike-every-ms",
            "2000",
            "--trace",
            "/tmp/a trace.csv",
        ],
        &[
            "cartpole",
            "--heartbeat-stop-at-ms",
            "3000",
            "--mute-at-ms",
            "4000",
            "--mute-for-ms",
            "500",
        ],
        &[
            "pendulum",
            "--mute-at-ms",
            "10",
            "--latency-spike-at-ms",
            "5",
        ],
    ];
    for argv in cases {
        let args = parse(argv).unwrap();
        let rendered = args.to_argv();
        let again = Cli::try_parse_from(std::iter::once("sim".into()).chain(rendered))
            .unwrap()
            .sim;
        assert_eq!(again, args, "{argv:?}");
    }
    let options = parse(&["pendulum"]).unwrap().to_options().unwrap();
    assert_eq!(options, SimOptions::new("/tmp/handful-sim-pendulum"));
    let options = parse(&[
        "cartpole",
        "--stall-at-ms",
        "5",
        "--stall-for-ms",
        "7",
        "--disconnect-at-ms",
        "9",
    ])
    .unwrap()
    .to_options()
    .unwrap();
    assert_eq!(
        options.stall,
        Some(Window {
            at_us: 5_000,
            for_us: Some(7_000)
        })
    );
    assert_eq!(
        options.disconnect,
        Some(Window {
            at_us: 9_000,
            for_us: None
        })
    );
    let options = parse(&[
        "cartpole",
        "--latency-spike-at-ms=1000",
        "--latency-spike-ms=150",
        "--latency-spike-every-ms=2000",
        "--mute-at-ms=300",
        "--heartbeat-stop-at-ms=200",
    ])
    .unwrap()
    .to_options()
    .unwrap();
    assert_eq!(
        options.latency_spikes,
        Some(Spikes {
            at_us: 1_000_000,
            hold_us: 150_000,
            every_us: Some(2_000_000)
        })
    );
    let spikes = options.latency_spikes.unwrap();
    for (t_ms, inside) in [(999, false), (1_000, true), (1_149, true), (1_150, false)] {
        assert_eq!(spikes.contains(t_ms * 1_000), inside, "{t_ms} ms");
        assert_eq!(
            spikes.contains((t_ms + 2_000) * 1_000),
            inside,
            "{t_ms} ms + 2 s"
        );
    }
    assert_eq!(
        options.mute,
        Some(Window {
            at_us: 300_000,
            for_us: None
        })
    );
    assert_eq!(options.heartbeat_stop_us, Some(200_000));
}

#[test]
fn bad_options_are_named() {
    let cases: &[(&[&str], &str)] = &[
        (&["cartpole", "--drop-prob", "1.5"], "drop_prob"),
        (&["cartpole", "--corrupt-prob=-0.1"], "corrupt_prob"),
        (&["cartpole", "--sensor-noise", "NaN"], "sensor_noise"),
        (&["cartpole", "--watchdog-ms", "0"], "watchdog_ms"),
        (
            &["cartpole", "--host-timeout-ms", "4294968"],
            "host_timeout_ms",
        ),
        (
            &["cartpole", "--corrupt-byte-prob", "2"],
            "corrupt_byte_prob",
        ),
        (
            &[
                "cartpole",
                "--latency-spike-at-ms=5",
                "--latency-spike-ms=0",
            ],
            "latency_spike_ms",
        ),
        (
            &[
                "cartpole",
                "--latency-spike-at-ms=5",
                "--latency-spike-ms=100",
                "--latency-spike-every-ms=100",
            ],
            "latency_spike_every_ms",
        ),
        (
            &["cartpole", "--latency-spike-at-ms=5", "--lockstep"],
            "latency_spike_at_ms",
        ),
    ];
    for (argv, name) in cases {
        match parse(argv).unwrap().to_options() {
            Err(SimError::InvalidOption { name: got, .. }) => assert_eq!(got, *name),
            other => panic!("{argv:?}: {other:?}"),
        }
    }
    assert!(
        parse(&["cartpole", "--stall-for-ms", "5"]).is_err(),
        "stall-for needs stall-at"
    );
    assert!(parse(&["rocket"]).is_err());
}

#[test]
fn the_link_never_replaces_a_file_that_is_not_a_sim_link() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("taken");
    std::fs::write(&path, b"precious").unwrap();
    let err = spawn(SimOptions::new(&path), Integrator::boxed([0.0, 0.0])).unwrap_err();
    assert!(matches!(err, SimError::LinkPathTaken { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    // A stale simulator link (into /dev/pts) is replaced.
    let stale = dir.path().join("stale");
    std::os::unix::fs::symlink("/dev/pts/4242", &stale).unwrap();
    let sim = spawn(SimOptions::new(&stale), Integrator::boxed([0.0, 0.0])).unwrap();
    assert_ne!(
        std::fs::read_link(&stale).unwrap(),
        Path::new("/dev/pts/4242")
    );
    sim.stop().unwrap();
    assert!(std::fs::symlink_metadata(&stale).is_err());
}

/// A stand-in for `handful`: `sim <plant> ... --link=PATH ...` links PATH into /dev/pts
/// and sleeps (or exits at once when `fail`).
fn fake_exe(dir: &Path, fail: bool) -> std::path::PathBuf {
    let exe = dir.join(if fail { "fail" } else { "fake-handful" });
    let body = if fail {
        "#!/bin/sh\nexit 3\n".to_owned()
    } else {
        "#!/bin/sh\n[ \"$1\" = sim ] || exit 2\nwhile [ $# -gt 0 ]; do\n  \
         case \"$1\" in --link=*) ln -s /dev/pts/4343 \"${1#--link=}\";; esac\n  shift\ndone\n\
         trap 'exit 0' TERM\nsleep 30 & wait\n"
            .to_owned()
    };
    std::fs::write(&exe, body).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    exe
}

/// `spawn_process`, retrying while another test's fork still holds the script open
/// for writing (ETXTBSY).
fn spawn_retrying(exe: &Path, args: &SimArgs) -> Result<handful::sim::SimProcess, SimError> {
    for _ in 0..50 {
        match spawn_process(exe, args) {
            Err(SimError::Spawn { source, .. }) if source.raw_os_error() == Some(26) => {
                handful::clock::Clock::real().sleep_us(10_000);
            }
            other => return other,
        }
    }
    spawn_process(exe, args)
}

#[test]
fn spawn_process_waits_for_the_link_and_kills_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let exe = fake_exe(dir.path(), false);
    let link = dir.path().join("child-link");
    let mut args = parse(&["pendulum", "--lockstep"]).unwrap();
    args.link = Some(link.clone());
    assert_eq!(args.plant, PlantKind::Pendulum);

    let mut process = spawn_retrying(&exe, &args).unwrap();
    assert_eq!(process.link_path(), link);
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("/dev/pts/4343")
    );
    let status = process.kill().unwrap();
    assert_eq!(status.signal(), Some(9), "SIGKILL");
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "unplugged: the link is gone"
    );

    // Dropping terminates with SIGTERM (the script exits 0 on it).
    let process = spawn_retrying(&exe, &args).unwrap();
    let pid = nix::unistd::Pid::from_raw(process.pid() as i32);
    drop(process);
    assert!(
        nix::sys::signal::kill(pid, None).is_err(),
        "the child is gone"
    );

    let err = spawn_retrying(&fake_exe(dir.path(), true), &args).unwrap_err();
    match err {
        SimError::ProcessExited { status, .. } => assert_eq!(status.code(), Some(3)),
        other => panic!("{other}"),
    }
}
