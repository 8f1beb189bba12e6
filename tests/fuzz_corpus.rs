//! The fuzz targets on stable, as part of the ordinary test run: every committed seed
//! (`fuzz/corpus/<target>/`) and every regression input (`fuzz/regressions/<target>/`,
//! one file per finding) goes through the same bodies the cargo-fuzz targets wrap
//! (`handful::fuzzing`, `handful_protocol::fuzzing`), then a seeded, bounded mutation
//! loop (bit flips, interesting bytes, inserts, deletes, truncation, duplication, splices
//! between corpus inputs) runs a few thousand inputs per target. This is the short smoke
//! run of the fuzzers; the long runs are `fuzz/run.sh` (nightly, libFuzzer).
//!
//! Any panic fails the test, naming the target and the input, which is also written
//! under `target/fuzz-corpus-failures/` to replay (`cargo +nightly fuzz run <target>
//! <file>` in `fuzz/`) or to commit as a regression.
//!
//! `HANDFUL_BLESS=1 cargo test --release --test integration fuzz_corpus` regenerates
//! the generated seeds (the dataset template's files, the planner's and trainer's
//! default settings as TOML).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type Body = fn(&[u8]);

/// Target names as in `fuzz/Cargo.toml`, their bodies, and how many mutated inputs the
/// smoke loop runs (by cost per input: the dataset one writes and reads files).
const TARGETS: [(&str, Body, usize); 7] = [
    (
        "frame_decoder",
        handful_protocol::fuzzing::frame_decoder,
        20_000,
    ),
    (
        "message_parser",
        handful_protocol::fuzzing::message_parser,
        20_000,
    ),
    ("calibration", handful::fuzzing::calibration, 5_000),
    ("planner_toml", handful::fuzzing::planner_toml, 3_000),
    ("trainer_toml", handful::fuzzing::trainer_toml, 2_000),
    ("model_checks", handful::fuzzing::model_checks, 5_000),
    ("dataset", handful::fuzzing::dataset, 300),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn target(name: &str) -> (Body, usize) {
    match TARGETS.iter().find(|(n, _, _)| *n == name) {
        Some(&(_, body, mutations)) => (body, mutations),
        None => panic!("no fuzz target {name}"),
    }
}

/// The files of `dir`, sorted by name (none if it does not exist).
fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

/// Runs `body` on `input`; on a panic, saves the input and fails naming it.
fn run_one(name: &str, body: Body, input: &[u8], what: &str) {
    if catch_unwind(AssertUnwindSafe(|| body(input))).is_ok() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-corpus-failures");
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(format!(
        "{name}-{}",
        handful::calib::hex_sha256(input)
            .get(..16)
            .unwrap_or("input")
    ));
    let _ = std::fs::write(&file, input);
    panic!(
        "fuzz target {name} panicked on {what} ({} bytes, saved as {})",
        input.len(),
        file.display()
    );
}

/// Replays the committed corpus and the regressions of `name`.
fn replay(name: &str) {
    let (body, _) = target(name);
    let corpus = inputs(&fuzz_dir().join("corpus").join(name));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{name}/ has no seeds (HANDFUL_BLESS=1 regenerates the generated ones)"
    );
    for (path, bytes) in corpus
        .iter()
        .chain(&inputs(&fuzz_dir().join("regressions").join(name)))
    {
        run_one(name, body, bytes, &path.display().to_string());
    }
}

/// The seeded mutation loop over the corpus of `name`.
fn mutate(name: &str) {
    let (body, count) = target(name);
    let corpus: Vec<Vec<u8>> = inputs(&fuzz_dir().join("corpus").join(name))
        .into_iter()
        .chain(inputs(&fuzz_dir().join("regressions").join(name)))
        .map(|(_, bytes)| bytes)
        .collect();
    assert!(!corpus.is_empty(), "fuzz/corpus/{name}/ has no seeds");
    let seed = handful::calib::hex_sha256(name.as_bytes());
    let seed = u64::from_str_radix(&seed[..16], 16).unwrap_or(0);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for n in 0..count {
        let mut input = corpus[rng.random_range(0..corpus.len())].clone();
        for _ in 0..rng.random_range(1..=4) {
            let other = &corpus[rng.random_range(0..corpus.len())];
            mutate_once(&mut rng, &mut input, other);
        }
        run_one(name, body, &input, &format!("mutation {n} (seed {seed})"));
    }
}

/// One random edit of `input` (`other`: another corpus input, for splices).
fn mutate_once(rng: &mut ChaCha8Rng, input: &mut Vec<u8>, other: &[u8]) {
    const INTERESTING: [u8; 10] = [0, 1, 0x7f, 0x80, 0xff, b'0', b'9', b'-', b'"', b'\n'];
    let len = input.len();
    let at = |rng: &mut ChaCha8Rng, len: usize| rng.random_range(0..len.max(1));
    match rng.random_range(0..8) {
        0 if len > 0 => {
            let i = at(rng, len);
            input[i] ^= 1 << rng.random_range(0..8);
        }
        1 if len > 0 => {
            let i = at(rng, len);
            input[i] = INTERESTING[rng.random_range(0..INTERESTING.len())];
        }
        2 => {
            let i = rng.random_range(0..=len);
            let bytes: Vec<u8> = (0..rng.random_range(1..=8)).map(|_| rng.random()).collect();
            input.splice(i..i, bytes);
        }
        3 if len > 0 => {
            let i = at(rng, len);
            let end = (i + rng.random_range(1..=16)).min(len);
            input.drain(i..end);
        }
        4 => input.truncate(rng.random_range(0..=len)),
        5 if len > 0 => {
            let i = at(rng, len);
            let end = (i + rng.random_range(1..=32)).min(len);
            let copy = input[i..end].to_vec();
            let j = rng.random_range(0..=len);
            input.splice(j..j, copy);
        }
        6 if !other.is_empty() => {
            let i = rng.random_range(0..=len);
            let j = at(rng, other.len());
            let end = (j + rng.random_range(1..=64)).min(other.len());
            input.truncate(i);
            input.extend_from_slice(&other[j..end]);
        }
        _ if len > 0 => {
            // A multi-byte integer field overwritten with an extreme value.
            let i = at(rng, len);
            let value: [u8; 8] = match rng.random_range(0..4) {
                0 => u64::MAX.to_le_bytes(),
                1 => (i64::MAX as u64).to_le_bytes(),
                2 => 0x8000_0000u64.to_le_bytes(),
                _ => rng.random::<u64>().to_le_bytes(),
            };
            let end = (i + rng.random_range(1..=8)).min(len);
            input[i..end].copy_from_slice(&value[..end - i]);
        }
        _ => input.push(rng.random()),
    }
}

macro_rules! target_tests {
    ($($name:ident),* $(,)?) => {
        mod replay {
            $(
                #[test]
                fn $name() {
                    super::replay(stringify!($name));
                }
            )*
        }
        mod mutations {
            $(
                #[test]
                fn $name() {
                    super::mutate(stringify!($name));
                }
            )*
        }
    };
}

target_tests!(
    frame_decoder,
    message_parser,
    calibration,
    planner_toml,
    trainer_toml,
    model_checks,
    dataset,
);

/// Regenerates the generated seeds when `HANDFUL_BLESS` is set; otherwise checks that
/// the committed ones are what the code generates now (the dataset template follows the
/// writer: a changed writer changes its files).
#[test]
fn generated_seeds_are_current() {
    let mut generated: Vec<(String, String, Vec<u8>)> = handful::fuzzing::dataset_seeds()
        .into_iter()
        .map(|(file, bytes)| ("dataset".to_string(), file, bytes))
        .collect();
    for (task, file) in [
        (handful::task::Task::CartpoleSwingup, "cartpole"),
        (handful::task::Task::PendulumSwingup, "pendulum"),
    ] {
        let planner = handful::mpc::PlannerConfig::for_task(task);
        let trainer = handful::sysid::trainer_config_for(task);
        for (target, text) in [
            ("planner_toml", toml::to_string(&planner)),
            ("trainer_toml", toml::to_string(&trainer)),
        ] {
            let text = text.unwrap_or_else(|e| panic!("{target} {file}: {e}"));
            let name = format!("defaults-{file}.toml");
            generated.push((target.into(), name, text.into_bytes()));
        }
    }
    let bless = std::env::var_os("HANDFUL_BLESS").is_some();
    let mut stale = Vec::new();
    for (target, file, bytes) in generated {
        let path = fuzz_dir().join("corpus").join(&target).join(&file);
        if bless {
            std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
                .and_then(|()| std::fs::write(&path, &bytes))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        } else if std::fs::read(&path).ok().as_ref() != Some(&bytes) {
            stale.push(path.display().to_string());
        }
    }
    // Parquet files carry the writer's version string: only the other seeds must match
    // byte for byte; the dataset ones must merely exist.
    stale.retain(|p| !p.contains("/dataset/") || !Path::new(p).exists());
    assert!(
        stale.is_empty(),
        "generated fuzz seeds missing or stale (regenerate: HANDFUL_BLESS=1 cargo test \
         --release --test integration fuzz_corpus): {stale:?}"
    );
}

/// The regression input that makes the parquet decoder itself panic: the template's data
/// file with one footer bit flipped, so that a column chunk's page offset reads negative
/// (parquet 57 asserts on it in `ColumnChunkMetaData::byte_range`). Found by flipping the
/// lowest bit of each footer byte in turn; `HANDFUL_BLESS=1` searches again.
const PARQUET_PANIC: &str = "regressions/dataset/parquet-negative-column-offset";

/// A panic of the third-party parquet decoder on hostile bytes is contained at the
/// dataset's boundary and comes back as an error naming the file.
#[test]
fn a_parquet_decoder_panic_is_an_error_naming_the_file() {
    let template = handful::fuzzing::dataset_template();
    let data_file = Path::new("data/chunk-000/file-000.parquet");
    let Some(which) = template.iter().position(|(p, _)| p == data_file) else {
        panic!("the dataset template has no {}", data_file.display());
    };
    let regression = fuzz_dir().join(PARQUET_PANIC);
    let bytes = if std::env::var_os("HANDFUL_BLESS").is_some() {
        let original = &template[which].1;
        let footer_start = original.len().saturating_sub(4000);
        let found = (footer_start..original.len() - 8).find_map(|i| {
            let mut bytes = original.clone();
            bytes[i] ^= 1;
            decoder_panic(&bytes).map(|_| bytes)
        });
        let Some(bytes) = found else {
            panic!("no single bit flip of the footer makes the parquet decoder panic");
        };
        let mut input = vec![which as u8];
        input.extend_from_slice(&bytes);
        std::fs::create_dir_all(regression.parent().unwrap_or(Path::new(".")))
            .and_then(|()| std::fs::write(&regression, &input))
            .unwrap_or_else(|e| panic!("{}: {e}", regression.display()));
        bytes
    } else {
        let input =
            std::fs::read(&regression).unwrap_or_else(|e| panic!("{}: {e}", regression.display()));
        assert_eq!(
            usize::from(input[0]),
            which,
            "the regression replaces the data file"
        );
        input[1..].to_vec()
    };
    let Some(message) = decoder_panic(&bytes) else {
        panic!("the regression input no longer makes the parquet decoder panic");
    };
    assert!(
        message.starts_with("the parquet decoder panicked on ")
            && message.contains("data/chunk-000/file-000.parquet"),
        "{message}"
    );
}

/// The template dataset with its data file replaced by `bytes`: the message of the first
/// `DecoderPanicked` error reading, validating or recovering it gives, if any.
fn decoder_panic(bytes: &[u8]) -> Option<String> {
    use handful::dataset::{DatasetError, DatasetReader, recover, validate};
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    for (relative, content) in handful::fuzzing::dataset_template() {
        let path = root.path().join(relative);
        let content = if relative.starts_with("data") {
            bytes
        } else {
            content
        };
        std::fs::create_dir_all(path.parent().unwrap_or(root.path()))
            .and_then(|()| std::fs::write(&path, content))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let panicked = |e: &DatasetError| match e {
        DatasetError::DecoderPanicked { .. } => Some(e.to_string()),
        _ => None,
    };
    match DatasetReader::open(root.path()) {
        Err(e) => {
            if let Some(m) = panicked(&e) {
                return Some(m);
            }
        }
        Ok(reader) => {
            for frame in reader.frames() {
                if let Err(e) = frame {
                    if let Some(m) = panicked(&e) {
                        return Some(m);
                    }
                    break;
                }
            }
        }
    }
    if let Ok(report) = validate(root.path()) {
        let text = format!("{report:?}");
        if let Some(at) = text.find("the parquet decoder panicked on ") {
            return Some(text[at..].to_string());
        }
    }
    recover(root.path()).err().and_then(|e| panicked(&e))
}

/// A planner settings file asking for more than memory holds is refused naming the
/// size, before the planner allocates (fuzzing: `particles = 530000` with a population
/// of 801 aborted on a 7 GB allocation).
#[test]
fn oversized_planner_settings_are_refused_by_name() {
    let path = fuzz_dir().join("regressions/planner_toml/oom-particles-530000.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let task = handful::task::Task::CartpoleSwingup;
    let config = handful::run::planner_config_from_toml(&text, task, false)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let refused = handful::mpc::Planner::new(config, 4, 1, &[(-10.0, 10.0)], 5).err();
    assert!(
        matches!(
            refused,
            Some(handful::mpc::ConfigError::TooLarge {
                key: "particles",
                value: 530_000,
                ..
            })
        ),
        "{refused:?}"
    );
    let message = refused.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("exceeds"), "{message}");
}
