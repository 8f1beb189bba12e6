//! `handful doctor` through the binary, on this machine: the JSON report's shape, the exit
//! status scripts rely on, and what fails with which fix (a missing model, a model for
//! another robot, a missing port, a broken calibration).

use std::process::Output;

use serde_json::Value;

use crate::cli::handful;

/// Every check the doctor makes, once each.
const CHECKS: [&str; 15] = [
    "kernel",
    "sched_fifo",
    "rt_throttling",
    "autogroup",
    "memlock",
    "cpus",
    "isolated_cores",
    "cpu_governor",
    "calibration",
    "serial_port",
    "dialout",
    "onnxruntime",
    "model",
    "disk_datasets",
    "disk_runs",
];

fn doctor(args: &[&str]) -> (Option<i32>, Value) {
    let output: Output = handful()
        .args(["doctor", "--json"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code(), report)
}

fn finding<'a>(report: &'a Value, check: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("no {check} in {report:#}"))
}

#[test]
fn the_report_names_every_check_with_a_fix_for_each_problem_and_fails_only_on_a_failure() {
    let (code, report) = doctor(&[]);
    let findings = report["findings"].as_array().unwrap();
    let names: Vec<&str> = findings
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert_eq!(names, CHECKS, "{report:#}");
    let mut counts = [0u64; 3];
    for f in findings {
        let status = f["status"].as_str().unwrap();
        let index = ["ok", "warn", "fail"]
            .iter()
            .position(|&s| s == status)
            .unwrap_or_else(|| panic!("status {status:?}"));
        counts[index] += 1;
        assert!(!f["message"].as_str().unwrap().is_empty(), "{f}");
        match status {
            "ok" => assert!(f["fix"].is_null(), "{f}"),
            _ => assert!(!f["fix"].as_str().unwrap().is_empty(), "{f}"),
        }
    }
    assert_eq!(
        [&report["ok"], &report["warn"], &report["fail"]].map(|v| v.as_u64().unwrap()),
        counts
    );
    assert_eq!(code, Some(i32::from(counts[2] > 0)), "{report:#}");
    // What this repository and its set-up provide is found in order.
    for check in ["calibration", "onnxruntime", "model", "serial_port"] {
        assert_eq!(finding(&report, check)["status"], "ok", "{report:#}");
    }
    // Strict: warnings fail too.
    let (strict, _) = doctor(&["--strict"]);
    assert_eq!(strict, Some(i32::from(counts[1] + counts[2] > 0)));
}

#[test]
fn a_missing_model_fails_and_says_how_to_get_one() {
    let (code, report) = doctor(&["--model", "/nonexistent/best.onnx"]);
    assert_eq!(code, Some(1));
    let model = finding(&report, "model");
    assert_eq!(model["status"], "fail");
    assert!(
        model["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/best.onnx"),
        "{model}"
    );
    assert!(
        model["fix"].as_str().unwrap().contains("handful run"),
        "{model}"
    );
}

#[test]
fn a_model_is_checked_against_the_calibration_it_would_drive() {
    let (code, report) = doctor(&["--model", "models/fixtures/cartpole.onnx"]);
    let model = finding(&report, "model");
    assert_eq!(model["status"], "ok", "{model}");
    assert!(
        model["message"].as_str().unwrap().contains("members"),
        "{model}"
    );
    assert_eq!(code, Some(i32::from(report["fail"].as_u64().unwrap() > 0)));
    let (code, report) = doctor(&[
        "--calib",
        "calib/pendulum-sim.toml",
        "--model",
        "models/fixtures/cartpole.onnx",
    ]);
    assert_eq!(code, Some(1));
    let model = finding(&report, "model");
    assert_eq!(model["status"], "fail", "{model}");
    assert!(
        model["fix"].as_str().unwrap().contains("calibration"),
        "{model}"
    );
}

#[test]
fn a_missing_port_and_a_broken_calibration_fail_with_their_fixes() {
    let (code, report) = doctor(&["--port", "/dev/handful-no-such-tty"]);
    assert_eq!(code, Some(1));
    let port = finding(&report, "serial_port");
    assert_eq!(port["status"], "fail", "{port}");
    assert!(
        port["fix"].as_str().unwrap().contains("/dev/serial/by-id"),
        "{port}"
    );

    let dir = tempfile::tempdir().unwrap();
    let calib = dir.path().join("robot.toml");
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("calib/cartpole-sim.toml"),
    )
    .unwrap()
    .replace("control_rate_hz = 25.0", "control_rate_hz = -3.0");
    std::fs::write(&calib, text).unwrap();
    let (code, report) = doctor(&["--calib", calib.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    let found = finding(&report, "calibration");
    assert_eq!(found["status"], "fail", "{found}");
    assert!(
        found["message"]
            .as_str()
            .unwrap()
            .contains("timing.control_rate_hz"),
        "{found}"
    );
}

#[test]
fn the_text_report_puts_each_fix_under_its_problem() {
    let output = handful()
        .args(["doctor", "--model", "/nonexistent/best.onnx"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("FAIL  model"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(lines[at + 1].trim_start().starts_with("fix: "), "{text}");
    assert!(lines.last().unwrap().ends_with("failures"), "{text}");
}
