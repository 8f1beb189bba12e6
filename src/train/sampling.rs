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
/// data; the rest the second, e.g. learner data). Each batch draws
/// `round(first_fraction · batch)` rows uniformly with replacement from the first pool
/// and the rest from the second; an empty pool gives its share to the other.
#[derive(Clone, Debug)]
pub struct Mixture {
    pub split_row: usize,
    pub first_fraction: f64,
    first: Vec<usize>,
    second: Vec<usize>,
}

impl Mixture {
    pub fn new(split_row: usize, first_fraction: f64) -> Self {
        Self {
            split_row,
            first_fraction: first_fraction.clamp(0.0, 1.0),
            first: Vec::new(),
            second: Vec::new(),
        }
    }
}

impl BatchSource for Mixture {
    fn prepare(&mut self, train_rows: &[usize], _ensemble_size: usize, _rng: &mut ChaCha8Rng) {
        let (first, second): (Vec<usize>, Vec<usize>) =
            train_rows.iter().partition(|&&r| r < self.split_row);
        self.first = first;
        self.second = second;
    }

    fn sample(&mut self, _member: usize, rng: &mut ChaCha8Rng, out_rows: &mut [usize]) {
        let wanted = (self.first_fraction * out_rows.len() as f64).round() as usize;
        let from_first = match (self.first.is_empty(), self.second.is_empty()) {
            (true, true) => return,
            (true, false) => 0,
            (false, true) => out_rows.len(),
            (false, false) => wanted.min(out_rows.len()),
        };
        for (i, out) in out_rows.iter_mut().enumerate() {
            let pool = if i < from_first {
                &self.first
            } else {
                &self.second
            };
            *out = pool[rng.random_range(0..pool.len())];
        }
    }
}
