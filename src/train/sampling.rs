//! Which rows each member trains on: the [`BatchSource`] seam, PETS' per-member
//! [`Bootstrap`], and a two-pool [`Mixture`] (DAgger: half expert, half learner rows).
//!
//! Sources only choose row indices; they never see the data. Every draw comes from the
//! trainer's seeded RNG, so a fit is reproducible from its seed.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Chooses the training rows of each minibatch, per member.
pub trait BatchSource {
    /// Called once per fit, before any `sample`, with the rows available for training
    /// (the holdout removed; ascending indices into the fit's `Transitions`).
    fn prepare(&mut self, train_rows: &[usize], ensemble_size: usize, rng: &mut ChaCha8Rng);
    /// Fills `out_rows` (its length is the batch size) with the rows member `member`
    /// trains on next. Every index must come from the prepared `train_rows`.
    fn sample(&mut self, member: usize, rng: &mut ChaCha8Rng, out_rows: &mut [usize]);
}

/// PETS' bootstrap: each member gets its own resample (with replacement) of the training
/// rows, walked in a fresh shuffled order each pass.
#[derive(Clone, Debug, Default)]
pub struct Bootstrap {
    resamples: Vec<Vec<usize>>,
    cursors: Vec<usize>,
}

impl BatchSource for Bootstrap {
    fn prepare(&mut self, train_rows: &[usize], ensemble_size: usize, rng: &mut ChaCha8Rng) {
        self.resamples = (0..ensemble_size)
            .map(|_| {
                (0..train_rows.len())
                    .map(|_| train_rows[rng.random_range(0..train_rows.len())])
                    .collect()
            })
            .collect();
        self.cursors = vec![0; ensemble_size];
    }

    fn sample(&mut self, member: usize, rng: &mut ChaCha8Rng, out_rows: &mut [usize]) {
        let (Some(rows), Some(cursor)) =
            (self.resamples.get_mut(member), self.cursors.get_mut(member))
        else {
            return;
        };
        if rows.is_empty() {
            return;
        }
        for out in out_rows {
            if *cursor == 0 {
                rows.shuffle(rng);
            }
            *out = rows[*cursor];
            *cursor = (*cursor + 1) % rows.len();
        }
    }
}

/// Two pools split at a row index (rows `< split_row` are the first pool, e.g. expert
/// data; the rest the second, e.g. learner data), each bootstrapped per member.
///
/// At `prepare` every member gets its own resample (with replacement, of the pool's size)
/// of *each* pool, so the members disagree where the data is thin — the spread TS-∞
/// propagates — as PETS' [`Bootstrap`] does for one pool. Each batch then takes
/// `round(first_fraction · batch)` rows from the member's first-pool resample and the
/// rest from its second-pool resample, each walked in a fresh shuffled order per pass:
/// the split holds in every batch of every member. An empty pool gives its share to the
/// other.
#[derive(Clone, Debug)]
pub struct Mixture {
    pub split_row: usize,
    pub first_fraction: f64,
    /// `[member]` → that member's bootstrap of each pool.
    first: Vec<Walk>,
    second: Vec<Walk>,
}

/// One bootstrap resample walked in shuffled passes.
#[derive(Clone, Debug, Default)]
struct Walk {
    rows: Vec<usize>,
    cursor: usize,
}

impl Walk {
    fn resample(pool: &[usize], rng: &mut ChaCha8Rng) -> Self {
        let rows = if pool.is_empty() {
            Vec::new()
        } else {
            (0..pool.len())
                .map(|_| pool[rng.random_range(0..pool.len())])
                .collect()
        };
        Self { rows, cursor: 0 }
    }

    fn next(&mut self, rng: &mut ChaCha8Rng) -> Option<usize> {
        if self.rows.is_empty() {
            return None;
        }
        if self.cursor == 0 {
            self.rows.shuffle(rng);
        }
        let row = self.rows[self.cursor];
        self.cursor = (self.cursor + 1) % self.rows.len();
        Some(row)
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl Mixture {
    /// `first_fraction` must lie in `[0, 1]` (callers validate user input; a value out
    /// of range here is clamped).
    pub fn new(split_row: usize, first_fraction: f64) -> Self {
        Self {
            split_row,
            first_fraction: if first_fraction.is_nan() {
                0.5
            } else {
                first_fraction.clamp(0.0, 1.0)
            },
            first: Vec::new(),
            second: Vec::new(),
        }
    }

    /// Member `member`'s bootstrap of the first and second pool (for tests and reports).
    pub fn resamples(&self, member: usize) -> Option<(&[usize], &[usize])> {
        Some((
            self.first.get(member)?.rows.as_slice(),
            self.second.get(member)?.rows.as_slice(),
        ))
    }
}

impl BatchSource for Mixture {
    fn prepare(&mut self, train_rows: &[usize], ensemble_size: usize, rng: &mut ChaCha8Rng) {
        let (first, second): (Vec<usize>, Vec<usize>) =
            train_rows.iter().partition(|&&r| r < self.split_row);
        self.first = (0..ensemble_size)
            .map(|_| Walk::resample(&first, rng))
            .collect();
        self.second = (0..ensemble_size)
            .map(|_| Walk::resample(&second, rng))
            .collect();
    }

    fn sample(&mut self, member: usize, rng: &mut ChaCha8Rng, out_rows: &mut [usize]) {
        let (Some(first), Some(second)) = (self.first.get_mut(member), self.second.get_mut(member))
        else {
            return;
        };
        let wanted = (self.first_fraction * out_rows.len() as f64).round() as usize;
        let from_first = match (first.is_empty(), second.is_empty()) {
            (true, true) => return,
            (true, false) => 0,
            (false, true) => out_rows.len(),
            (false, false) => wanted.min(out_rows.len()),
        };
        for (i, out) in out_rows.iter_mut().enumerate() {
            let pool = if i < from_first {
                &mut *first
            } else {
                &mut *second
            };
            if let Some(row) = pool.next(rng) {
                *out = row;
            }
        }
    }
}
