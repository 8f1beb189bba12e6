//! The machine's own SGEMM ceiling, measured in the same run as the ensembles: the
//! `matrixmultiply` crate's `sgemm` on square 512, 768 and 1024 matrices, on one thread
//! and on two std threads each computing half of the rows of `C = A·B`.
//!
//! Bench-only: allocates the matrices, spawns scoped threads.

use serde::Serialize;

use super::stats::time_us;
use crate::clock::Clock;

/// Best SGEMM rate seen, GFLOP/s (`2·n³` flops per product).
#[derive(Clone, Debug, Serialize)]
pub struct SgemmCeiling {
    pub gflops_1_thread: f64,
    pub gflops_2_threads: f64,
    /// `(n, 1-thread GFLOP/s, 2-thread GFLOP/s)` per size.
    pub by_size: Vec<(usize, f64, f64)>,
}

impl SgemmCeiling {
    /// The ceiling a figure measured with `threads` intra-op threads is compared with.
    pub fn for_threads(&self, threads: usize) -> f64 {
        if threads <= 1 {
            self.gflops_1_thread
        } else {
            self.gflops_2_threads
        }
    }
}

/// `c[m × n] = a[m × k] · b[k × n]`, all row-major and contiguous.
fn sgemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    if a.len() < m * k || b.len() < k * n || c.len() < m * n {
        return;
    }
    // SAFETY: the lengths were checked above; strides describe row-major m×k, k×n and
    // m×n matrices inside those slices, and `c` is borrowed mutably (no aliasing).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Best-of-`repeats` GFLOP/s for an `n × n` product on `threads` (1 or 2) threads.
fn rate(clock: &Clock, n: usize, threads: usize, repeats: usize) -> f64 {
    let a: Vec<f32> = (0..n * n).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
    let b: Vec<f32> = (0..n * n).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
    let mut c = vec![0.0f32; n * n];
    let mut best_us = u64::MAX;
    for _ in 0..repeats + 1 {
        let (us, ()) = time_us(clock, || {
            if threads <= 1 {
                sgemm(n, n, n, &a, &b, &mut c);
            } else {
                let half = n / 2;
                let (c_top, c_bottom) = c.split_at_mut(half * n);
                let (a_top, a_bottom) = a.split_at(half * n);
                let b = &b;
                std::thread::scope(|scope| {
                    scope.spawn(|| sgemm(half, n, n, a_top, b, c_top));
                    sgemm(n - half, n, n, a_bottom, b, c_bottom);
                });
            }
        });
        best_us = best_us.min(us.max(1));
    }
    std::hint::black_box(&c);
    2.0 * (n as f64).powi(3) / (best_us as f64 * 1e3)
}

/// Measures the ceiling on square 512, 768 and 1024 matrices (about a second).
pub fn measure_ceiling() -> SgemmCeiling {
    let clock = Clock::real();
    let by_size: Vec<(usize, f64, f64)> = [512, 768, 1024]
        .into_iter()
        .map(|n| (n, rate(&clock, n, 1, 4), rate(&clock, n, 2, 4)))
        .collect();
    let best = |pick: fn(&(usize, f64, f64)) -> f64| by_size.iter().map(pick).fold(0.0, f64::max);
    SgemmCeiling {
        gflops_1_thread: best(|r| r.1),
        gflops_2_threads: best(|r| r.2),
        by_size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgemm_multiplies() {
        // [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50]
        let mut c = [0.0f32; 4];
        sgemm(
            2,
            2,
            2,
            &[1.0, 2.0, 3.0, 4.0],
            &[5.0, 6.0, 7.0, 8.0],
            &mut c,
        );
        assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
        // Short buffers: nothing written, no panic.
        let mut short = [0.0f32; 3];
        sgemm(2, 2, 2, &[1.0; 4], &[1.0; 4], &mut short);
        assert_eq!(short, [0.0; 3]);
    }
}
