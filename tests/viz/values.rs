//! The queues' drop-and-count policy, viz off, the sink flags, and the producers' values.

use super::*;

#[test]
fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let (tx, queue) = VizSender::unattached(3, 1);
    let clone = tx.clone();
    let accepted: Vec<bool> = (0..5)
        .map(|t| clone.send(VizEvent::Tick(tick(t, Mode::Idle, None))))
        .collect();
    assert_eq!(accepted, [true, true, true, false, false]);
    assert!(!tx.send_tick(&tick(5, Mode::Idle, None)));
    // Plans have their own queue: a full event queue does not stop them, and vice versa.
    assert!(tx.send_plan(&plan(0)));
    assert!(!tx.send(VizEvent::Plan(plan(1))));
    assert_eq!(queue.queued(), (3, 1));
    assert_eq!((tx.sent(), tx.dropped()), (4, 4));
    drop(queue);
    assert!(!tx.send(VizEvent::text(TextLevel::Warn, "nobody listens")));
    assert_eq!(clone.dropped(), 5);
}

#[test]
fn viz_off_starts_no_thread_and_discards() {
    let viz = Viz::start(&VizOptions::default(), &calibration()).expect("off always starts");
    assert!(!viz.is_running());
    let tx = viz.sender();
    assert!(!tx.is_enabled());
    assert!(!tx.send(VizEvent::Tick(tick(0, Mode::Idle, None))));
    assert_eq!(viz.finish().dropped, 0);
    assert!(!VizSender::disabled().send_plan(&plan(0)));
}

#[test]
fn viz_flags_choose_one_sink() {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        viz: VizArgs,
    }
    let parse = |args: &[&str]| {
        <Cli as clap::Parser>::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .map(|cli| cli.viz.to_options(VizSink::Off).sink)
    };
    let check = |args: &[&str], sink: VizSink| assert_eq!(parse(args).expect("parses"), sink);
    check(&[], VizSink::Off);
    check(&["--spawn"], VizSink::Spawn);
    check(
        &["--connect"],
        VizSink::Connect(handful::viz::DEFAULT_CONNECT_URL.into()),
    );
    check(
        &["--connect", "rerun+http://10.0.0.2:9876/proxy"],
        VizSink::Connect("rerun+http://10.0.0.2:9876/proxy".into()),
    );
    check(&["--save", "a.rrd"], VizSink::Save("a.rrd".into()));
    check(&["--stdout"], VizSink::Stdout);
    assert!(parse(&["--spawn", "--save", "a.rrd"]).is_err());
}

#[test]
fn plan_snapshots_refuse_bad_shapes() {
    assert_eq!(
        PlanSnapshot::new(0, 0, 4, 1),
        Err(PlanShapeError::Horizon(0))
    );
    assert_eq!(
        PlanSnapshot::new(0, 33, 4, 1),
        Err(PlanShapeError::Horizon(33))
    );
    assert_eq!(
        PlanSnapshot::new(0, 5, 9, 1),
        Err(PlanShapeError::StateDim(9))
    );
    let mut p = PlanSnapshot::new(7, 3, 2, 1).expect("shape");
    assert_eq!(
        p.set_state(4, &[0.0; 2], &[0.0; 2]),
        Err(PlanShapeError::Step { step: 4, last: 3 })
    );
    assert_eq!(
        p.set_action(0, &[0.0; 2]),
        Err(PlanShapeError::Width {
            found: 2,
            expected: 1
        })
    );
    for _ in 0..5 {
        p.push_elite(&[1.0; 8]).expect("elite");
    }
    assert_eq!(p.push_elite(&[1.0; 8]), Err(PlanShapeError::TooManyElites));
    assert_eq!(p.elite_state(4, 3), &[1.0, 1.0]);
    assert!(std::mem::size_of::<PlanSnapshot>() < 8 * 1024);
}

#[test]
fn inline_text_cuts_on_a_char_boundary() {
    let long = "é".repeat(100); // 200 bytes
    let cut = InlineText::new(&long);
    assert_eq!(cut.as_str().len(), 96);
    assert!(long.starts_with(cut.as_str()));
    assert_eq!(InlineText::new("ok").as_str(), "ok");
}

#[test]
fn a_plan_is_scored_against_what_followed() {
    // Horizon 2 over 2 states; std 0.1 everywhere, predicted mean 0 everywhere.
    let mut p = PlanSnapshot::new(10, 2, 2, 1).expect("shape");
    for k in 0..=2 {
        p.set_state(k, &[0.0, 0.0], &[0.1, 0.1]).expect("state");
    }
    let step1 = [0.15, -0.3]; // inside, outside
    let step2 = [0.5, 0.0]; // outside, inside
    let outcome = p.outcome(&[Some(&[0.0, 0.0]), Some(&step1), Some(&step2)]);
    assert_eq!(outcome.one_step_error.map(|e| [e[0], e[1]]), Some(step1));
    assert_eq!(outcome.horizon_error.map(|e| [e[0], e[1]]), Some(step2));
    assert_eq!((outcome.compared, outcome.inside_two_sigma), (4, 2));
    assert_eq!(outcome.coverage(), Some(0.5));
    // Unobserved steps are skipped, not counted; a short state is not compared.
    let partial = p.outcome(&[None, None, Some(&[0.0])]);
    assert_eq!((partial.compared, partial.coverage()), (0, None));
    assert_eq!(partial.one_step_error, None);
    let partial = p.outcome(&[None, None, Some(&[0.0, 0.05])]);
    assert_eq!((partial.compared, partial.coverage()), (2, Some(1.0)));
}
