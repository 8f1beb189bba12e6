//! Simulated plants: cart-pole physics invariants (energy, momentum, capsule inertia),
//! rail stops, Pendulum-v1 formulas, start distributions, and transition = step.

use std::f64::consts::PI;

use handful::plant::cartpole::{self, Cartpole, CartpoleParams};
use handful::plant::pendulum::{self, Pendulum, PendulumParams};
use handful::plant::{Plant, PlantKind, PlantParams};
use handful_protocol::FAULT_LIMIT;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn undamped() -> CartpoleParams {
    CartpoleParams {
        slider_damping_n_s_per_m: 0.0,
        hinge_damping_n_m_s_per_rad: 0.0,
        ..CartpoleParams::PETS
    }
}

fn state4(plant: &dyn Plant) -> [f64; 4] {
    plant.state().try_into().expect("4 states")
}

#[test]
fn capsule_mass_and_inertia_match_the_benchmark_and_a_slice_quadrature() {
    let p = CartpoleParams::PETS;
    assert!(
        (p.cart_mass_kg - 10.472).abs() < 1e-3,
        "cart {}",
        p.cart_mass_kg
    );
    assert!(
        (p.pole_mass_kg - 5.0186).abs() < 1e-3,
        "pole {}",
        p.pole_mass_kg
    );
    // Independent check: integrate thin discs along the pole axis, each contributing
    // dm·(ρ²/4 + z²) about the transverse axis through the centre.
    let (r, h) = (0.049_f64, 0.3_f64);
    let n = 200_000;
    let (z0, z1) = (-h - r, h + r);
    let dz = (z1 - z0) / n as f64;
    let (mut mass, mut inertia) = (0.0, 0.0);
    for i in 0..n {
        let z = z0 + (i as f64 + 0.5) * dz;
        let cap = (z.abs() - h).max(0.0);
        let rho_sq = (r * r - cap * cap).max(0.0);
        let dm = 1000.0 * PI * rho_sq * dz;
        mass += dm;
        inertia += dm * (rho_sq / 4.0 + z * z);
    }
    assert!(
        (mass - p.pole_mass_kg).abs() < 1e-6 * mass,
        "{mass} vs {}",
        p.pole_mass_kg
    );
    let rel = (inertia - p.pole_inertia_com_kg_m2).abs() / inertia;
    assert!(rel < 1e-6, "{inertia} vs {}", p.pole_inertia_com_kg_m2);
}

/// Worst |ΔE| and |Δp_x| over 10 s of free motion from `start`.
fn free_drift(params: CartpoleParams, start: [f64; 4]) -> (f64, f64) {
    let mut plant = Cartpole::with_params(params);
    plant.set_state(&start);
    let momentum = |s: &[f64; 4]| {
        (params.cart_mass_kg + params.pole_mass_kg) * s[2]
            - params.pole_mass_kg * params.pole_com_m * s[1].cos() * s[3]
    };
    let (energy0, momentum0) = (params.energy_joules(&start), momentum(&start));
    let (mut worst_energy, mut worst_momentum): (f64, f64) = (0.0, 0.0);
    let steps = (10.0 / (params.timestep_s * f64::from(params.substeps))).round() as usize;
    for _ in 0..steps {
        plant.step(&[0.0]);
        let s = state4(&plant);
        worst_energy = worst_energy.max((params.energy_joules(&s) - energy0).abs());
        worst_momentum = worst_momentum.max((momentum(&s) - momentum0).abs());
        assert!(
            s[0].abs() < params.rail_limit_m,
            "test must stay off the stops"
        );
    }
    (worst_energy, worst_momentum)
}

#[test]
fn undamped_unforced_cartpole_conserves_energy_and_momentum() {
    // Energy scale: the swing-up energy 2·m·g·l_c ≈ 29.5 J.
    let params = undamped();
    let starts = [
        [0.0, 1.0, 0.0, 0.0],
        [0.1, 2.5, -0.3, 4.0],
        [0.0, PI - 0.01, 0.2, 0.0],
    ];
    for start in starts {
        let (energy, momentum) = free_drift(params, start);
        println!(
            "start {start:?}: 10 s drift: energy {energy:.2e} J, momentum {momentum:.2e} kg·m/s"
        );
        assert!(energy < 2e-3, "energy drift {energy} J");
        assert!(momentum < 1e-3, "momentum drift {momentum} kg·m/s");
        // The drift is RK4 truncation error: a 4× smaller step cuts it by far more than 4×.
        let fine = CartpoleParams {
            timestep_s: 0.005,
            substeps: 8,
            ..params
        };
        let (fine_energy, fine_momentum) = free_drift(fine, start);
        println!("  at dt = 5 ms: energy {fine_energy:.2e} J, momentum {fine_momentum:.2e} kg·m/s");
        assert!(
            fine_energy < energy / 50.0 + 1e-10,
            "{fine_energy} vs {energy}"
        );
        assert!(
            fine_momentum < momentum / 50.0 + 1e-10,
            "{fine_momentum} vs {momentum}"
        );
    }
}

#[test]
fn damping_dissipates_energy_monotonically() {
    let params = CartpoleParams::PETS;
    let mut plant = Cartpole::with_params(params);
    plant.set_state(&[0.0, 2.0, 0.5, 3.0]);
    let initial = params.energy_joules(&state4(&plant));
    let mut previous = initial;
    for _ in 0..250 {
        plant.step(&[0.0]);
        let energy = params.energy_joules(&state4(&plant));
        assert!(
            energy <= previous + 1e-9,
            "energy rose: {previous} → {energy}"
        );
        previous = energy;
    }
    let floor = -params.pole_mass_kg * params.gravity_m_per_s2 * params.pole_com_m;
    println!("damped: {initial:.3} J → {previous:.3} J (rest {floor:.3} J)");
    assert!(
        previous - floor < 0.1 * (initial - floor),
        "energy barely decayed"
    );
}

#[test]
fn constant_force_changes_momentum_at_the_force_rate() {
    let params = undamped();
    let mut plant = Cartpole::with_params(params);
    plant.set_state(&[0.0, 0.3, 0.0, 0.0]);
    for _ in 0..10 {
        plant.step(&[0.5]);
    }
    let s = state4(&plant);
    let momentum = (params.cart_mass_kg + params.pole_mass_kg) * s[2]
        - params.pole_mass_kg * params.pole_com_m * s[1].cos() * s[3];
    // Impulse = 50 N × 0.4 s.
    assert!((momentum - 20.0).abs() < 1e-4, "momentum {momentum}");
}

#[test]
fn hanging_rest_is_an_equilibrium_and_upright_is_unstable() {
    let mut next = [0.0; 4];
    cartpole::transition(&[0.0, 0.0, 0.0, 0.0], &[0.0], &mut next);
    assert_eq!(next, [0.0; 4]);
    let mut plant = Cartpole::new();
    plant.set_state(&[0.0, PI + 1e-3, 0.0, 0.0]);
    for _ in 0..50 {
        plant.step(&[0.0]);
    }
    assert!(
        (plant.state()[1] - PI).abs() > 0.1,
        "upright should fall: {:?}",
        plant.state()
    );
}

#[test]
fn transition_matches_plant_step_including_the_rail_stop() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut plant = Cartpole::new();
    plant.reset(&mut rng);
    for t in 0..150 {
        let before = state4(&plant);
        let u = if t < 100 { 3.0 } else { -1.0 };
        let mut next = [0.0; 4];
        handful::plant::transition(PlantKind::Cartpole, &before, &[u], &mut next);
        plant.step(&[u]);
        assert_eq!(next, state4(&plant), "step {t}");
    }
    let mut pendulum = Pendulum::new();
    pendulum.reset(&mut rng);
    for t in 0..50 {
        let before: [f64; 2] = pendulum.state().try_into().unwrap();
        let mut next = [0.0; 2];
        handful::plant::transition(PlantKind::Pendulum, &before, &[1.5], &mut next);
        pendulum.step(&[1.5]);
        assert_eq!(next.as_slice(), pendulum.state(), "step {t}");
    }
}

#[test]
fn rail_stop_clamps_and_raises_fault_limit_until_the_cart_leaves() {
    let mut plant = Cartpole::new();
    for _ in 0..100 {
        plant.step(&[3.0]);
        let s = state4(&plant);
        assert!(s[0] <= 2.5);
        if s[0] >= 2.5 {
            assert!(s[2] <= 0.0, "velocity into the stop must be zero: {s:?}");
        }
    }
    assert_eq!(plant.state()[0], 2.5);
    assert_eq!(plant.fault_flags(), FAULT_LIMIT);
    for _ in 0..5 {
        plant.step(&[-3.0]);
    }
    assert!(plant.state()[0] < 2.5);
    assert_eq!(plant.fault_flags(), 0);
    plant.set_state(&[-2.6, 0.0, -1.0, 0.0]); // set_state may place it past the stop
    plant.step(&[0.0]);
    assert_eq!(plant.state()[0], -2.5);
    assert_eq!(plant.fault_flags(), FAULT_LIMIT);
}

#[test]
fn actions_are_clamped_and_bad_input_is_safe() {
    let s = [0.1, 0.2, 0.3, 0.4];
    let run = |a: &[f64]| {
        let mut next = [0.0; 4];
        cartpole::transition(&s, a, &mut next);
        next
    };
    assert_eq!(run(&[10.0]), run(&[3.0]));
    assert_eq!(run(&[-7.0]), run(&[-3.0]));
    assert_eq!(run(&[f64::NAN]), run(&[0.0]));
    assert_eq!(run(&[]), run(&[0.0]));
    let mut next = [0.0; 4];
    cartpole::transition(&s[..2], &[0.0], &mut next);
    assert!(next.iter().all(|v| v.is_nan()));
    let mut plant = Cartpole::new();
    plant.set_state(&[1.0, 2.0]);
    plant.set_state(&[f64::NAN, 0.0, 0.0, 0.0]);
    assert_eq!(plant.state(), &[0.0; 4]);
    let mut p_next = [0.0; 2];
    pendulum::transition(&[0.5, 0.0], &[f64::INFINITY], &mut p_next);
    let mut p_zero = [0.0; 2];
    pendulum::transition(&[0.5, 0.0], &[0.0], &mut p_zero);
    assert_eq!(p_next, p_zero);
}

#[test]
fn angles_are_not_wrapped() {
    let mut plant = Cartpole::new();
    plant.set_state(&[0.0, 0.0, 0.0, 30.0]);
    for _ in 0..10 {
        plant.step(&[0.0]);
    }
    assert!(plant.state()[1] > 2.0 * PI, "{:?}", plant.state());
}

#[test]
fn start_distributions_match_the_benchmarks() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let n = 4000;
    let mut plant = Cartpole::new();
    let (mut sum, mut sum_sq) = ([0.0; 4], [0.0; 4]);
    for _ in 0..n {
        plant.reset(&mut rng);
        for (i, v) in plant.state().iter().enumerate() {
            sum[i] += v;
            sum_sq[i] += v * v;
        }
    }
    for i in 0..4 {
        let mean = sum[i] / n as f64;
        let std = (sum_sq[i] / n as f64 - mean * mean).sqrt();
        assert!(
            mean.abs() < 0.006 && (std - 0.1).abs() < 0.005,
            "coord {i}: {mean} {std}"
        );
    }
    let mut pendulum = Pendulum::new();
    let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
    for _ in 0..n {
        pendulum.reset(&mut rng);
        for i in 0..2 {
            lo[i] = lo[i].min(pendulum.state()[i]);
            hi[i] = hi[i].max(pendulum.state()[i]);
        }
        assert_eq!(pendulum.fault_flags(), 0);
    }
    assert!(
        lo[0] >= -PI && lo[0] < -3.0 && hi[0] <= PI && hi[0] > 3.0,
        "{lo:?} {hi:?}"
    );
    assert!(lo[1] >= -1.0 && lo[1] < -0.99 && hi[1] <= 1.0 && hi[1] > 0.99);
    // Same seed, same start.
    let (mut a, mut b) = (Cartpole::new(), Cartpole::new());
    a.reset(&mut ChaCha8Rng::seed_from_u64(3));
    b.reset(&mut ChaCha8Rng::seed_from_u64(3));
    assert_eq!(a.state(), b.state());
}

/// One Pendulum-v1 step written out as Gymnasium's `step` does.
fn gymnasium_step(theta: f64, theta_dot: f64, u: f64) -> [f64; 2] {
    let u = u.clamp(-2.0, 2.0);
    let new_dot = (theta_dot + (3.0 * 10.0 / 2.0 * theta.sin() + 3.0 * u) * 0.05).clamp(-8.0, 8.0);
    [theta + new_dot * 0.05, new_dot]
}

#[test]
fn pendulum_matches_gymnasium() {
    let check = |theta: f64, theta_dot: f64, u: f64| {
        let mut next = [0.0; 2];
        pendulum::transition(&[theta, theta_dot], &[u], &mut next);
        let want = gymnasium_step(theta, theta_dot, u);
        for i in 0..2 {
            assert!(
                (next[i] - want[i]).abs() < 1e-12,
                "{theta} {theta_dot} {u}: {next:?}"
            );
        }
    };
    check(0.0, 0.0, 0.0);
    check(PI, 0.0, 2.0);
    check(1.0, -0.5, -1.3);
    check(0.3, 7.9, 2.0); // speed clip
    check(-0.3, -7.9, -2.0);
    check(2.0, 1.0, 5.0); // torque clip
    check(25.0, 3.0, -0.4); // many turns
    assert_eq!(PendulumParams::GYMNASIUM.energy_joules(0.0, 0.0), 5.0);
}

#[test]
fn specs_agree_with_the_integrators() {
    let c = CartpoleParams::PETS;
    let period_s = c.timestep_s * f64::from(c.substeps);
    assert_eq!(
        (period_s * 1e6).round() as u32,
        cartpole::SPEC.control_period_us
    );
    let p = PendulumParams::GYMNASIUM;
    assert_eq!(
        (p.timestep_s * 1e6).round() as u32,
        pendulum::SPEC.control_period_us
    );
    for kind in [PlantKind::Cartpole, PlantKind::Pendulum] {
        let plant = kind.build();
        assert_eq!(plant.spec(), kind.spec());
        assert_eq!(plant.state().len(), kind.spec().states.len());
    }
    assert_eq!(pendulum::SPEC.states.len(), 2);
    assert_eq!(pendulum::SPEC.actions[0].max, 2.0);
    assert_eq!(cartpole::SPEC.actions[0].max, c.action_limit);
}

fn plant_of(text: &str) -> Result<PlantParams, String> {
    handful::calib::Calibration::from_toml(std::path::Path::new("plant.toml"), text)
        .map(|c| c.plant)
        .map_err(|e| e.to_string())
}

fn shipped(name: &str) -> String {
    std::fs::read_to_string(format!("calib/{name}")).unwrap()
}

#[test]
fn a_calibration_plant_table_gives_the_physics_and_absent_keys_are_the_benchmarks() {
    // No [plant] table: the benchmarks, bit for bit.
    assert_eq!(
        plant_of(&shipped("cartpole-sim.toml")).unwrap(),
        PlantParams::Cartpole(CartpoleParams::PETS)
    );
    assert_eq!(
        plant_of(&shipped("pendulum-sim.toml")).unwrap(),
        PlantParams::Pendulum(PendulumParams::GYMNASIUM)
    );
    // The PETS length and mass rebuild the PETS pole exactly.
    let pets = CartpoleParams::PETS;
    assert_eq!(
        pets.with_pole(cartpole::PETS_POLE_LENGTH_M, pets.pole_mass_kg),
        pets
    );
    // The shipped heavy pole: 50 % heavier, 20 % longer, everything else PETS.
    let PlantParams::Cartpole(heavy) = plant_of(&shipped("cartpole-heavy-sim.toml")).unwrap()
    else {
        panic!("a cart-pole");
    };
    assert!((heavy.pole_mass_kg / pets.pole_mass_kg - 1.5).abs() < 1e-4);
    assert!((heavy.pole_length_m() / pets.pole_length_m() - 1.2).abs() < 1e-12);
    assert!((heavy.pole_com_m - 0.36).abs() < 1e-12);
    // The capsule's inertia at the new length, scaled to the new mass.
    let capsule = cartpole::capsule_transverse_inertia_kg_m2(cartpole::POLE_RADIUS_M, 0.72)
        * heavy.pole_mass_kg
        / cartpole::capsule_mass_kg(cartpole::POLE_RADIUS_M, 0.72);
    assert!((heavy.pole_inertia_com_kg_m2 - capsule).abs() < 1e-12);
    assert_eq!(
        CartpoleParams {
            pole_mass_kg: pets.pole_mass_kg,
            pole_com_m: pets.pole_com_m,
            pole_inertia_com_kg_m2: pets.pole_inertia_com_kg_m2,
            ..heavy
        },
        pets
    );
    // Each key reaches the physics it names.
    let cart = format!(
        "{}\n[plant]\ncart_mass_kg = 2.0\ngravity_m_per_s2 = 9.0\nslider_damping_n_s_per_m = 0.0\n\
         hinge_damping_n_m_s_per_rad = 0.5\nforce_per_unit_newtons = 10.0\nrail_limit_m = 1.5\n",
        shipped("cartpole-sim.toml")
    );
    assert_eq!(
        plant_of(&cart).unwrap(),
        PlantParams::Cartpole(CartpoleParams {
            cart_mass_kg: 2.0,
            gravity_m_per_s2: 9.0,
            slider_damping_n_s_per_m: 0.0,
            hinge_damping_n_m_s_per_rad: 0.5,
            force_per_unit_newtons: 10.0,
            rail_limit_m: 1.5,
            ..pets
        })
    );
    let pendulum = format!(
        "{}\n[plant]\nmass_kg = 2.0\nlength_m = 0.5\ngravity_m_per_s2 = 9.81\nmax_speed_rad_per_s = 6.0\n",
        shipped("pendulum-sim.toml")
    );
    assert_eq!(
        plant_of(&pendulum).unwrap(),
        PlantParams::Pendulum(PendulumParams {
            mass_kg: 2.0,
            length_m: 0.5,
            gravity_m_per_s2: 9.81,
            max_speed_rad_per_s: 6.0,
            ..PendulumParams::GYMNASIUM
        })
    );
    // The physics follow: a heavier, longer pole falls more slowly from the same tilt.
    let tilted = [0.0, 0.5, 0.0, 0.0];
    let (mut a, mut b) = ([0.0; 4], [0.0; 4]);
    cartpole::transition(&tilted, &[0.0], &mut a);
    PlantParams::Cartpole(heavy).transition(&tilted, &[0.0], &mut b);
    assert!(b[3].abs() < a[3].abs() && b[3] < 0.0, "{a:?} {b:?}");
}

#[test]
fn a_malformed_plant_table_is_refused_naming_the_key() {
    let cartpole = shipped("cartpole-sim.toml");
    let pendulum = shipped("pendulum-sim.toml");
    let cases = [
        (&cartpole, "pole_mass_kg = -1.0", "plant.pole_mass_kg"),
        (&cartpole, "pole_length_m = 0.0", "plant.pole_length_m"),
        (&cartpole, "cart_mass_kg = nan", "plant.cart_mass_kg"),
        (&cartpole, "rail_limit_m = inf", "plant.rail_limit_m"),
        (&cartpole, "cart_mass_kg = 1e-60", "plant.cart_mass_kg"),
        (
            &cartpole,
            "hinge_damping_n_m_s_per_rad = -0.1",
            "plant.hinge_damping",
        ),
        // A key of the other plant is a mistake, not a no-op.
        (&cartpole, "length_m = 1.0", "plant.length_m"),
        (&pendulum, "pole_mass_kg = 1.0", "plant.pole_mass_kg"),
        (
            &pendulum,
            "gravity_m_per_s2 = -9.81",
            "plant.gravity_m_per_s2",
        ),
        // Unknown keys are refused with their name.
        (&cartpole, "pole_mass = 1.0", "pole_mass"),
    ];
    for (base, line, key) in cases {
        let text = format!("{base}\n[plant]\n{line}\n");
        let error = plant_of(&text)
            .err()
            .unwrap_or_else(|| panic!("{line}: accepted"));
        assert!(
            error.contains(key) && error.contains("plant.toml"),
            "{line}: {error}"
        );
    }
}

#[test]
fn units_longer_than_the_wire_carries_are_refused_at_load_not_at_the_handshake() {
    let text = shipped("cartpole-sim.toml");
    for (from, to) in [
        ("unit = \"100N\"", "unit = \"newtons!!\""),
        ("unit = \"m/s\"", "unit = \"m / s\""),
    ] {
        assert!(text.contains(from), "{from}");
        let error = plant_of(&text.replacen(from, to, 1))
            .err()
            .unwrap_or_else(|| panic!("{to}: accepted"));
        assert!(
            error.contains(".unit") && error.contains("8 ASCII bytes"),
            "{error}"
        );
    }
    // The empty unit (dimensionless) is a unit.
    plant_of(&text.replacen("unit = \"100N\"", "unit = \"\"", 1)).unwrap();
}
