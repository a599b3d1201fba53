//! Tolerances and the comparison of a kernel's output with its reference:
//! `|gpu - want| <= atol + rtol * |want|` at every checked element.
//!
//! The constants are those of the parity tests (tests/gpu_parity*.rs), where each is argued;
//! the ones for sums grow with the number of terms, because the benchmark runs the model's
//! real sizes (a weight gradient at batch 256 sums 200704 products) where the tests use
//! small ones.

use crate::error::{CheckFailure, Error, Result};

/// `|got - want| <= atol + rtol * |want|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

const fn tol(rtol: f64, atol: f64) -> Tolerance {
    Tolerance { rtol, atol }
}

/// One IEEE operation or a select on the same inputs (LeakyReLU, dropout, permutes, copies,
/// the exact integer sums of `fma_peak`): bit-exact but for a subnormal flushed to zero.
pub const EXACT: Tolerance = tol(0.0, f32::MIN_POSITIVE as f64);
/// tanh and its gradient: the GPU's tanh is within a few ulp of Rust's.
pub const TRANSCENDENTAL: Tolerance = tol(1e-5, 1e-6);
/// BCE per-sample loss and its mean: exp and log, then a reordered sum of a batch.
pub const BCE_LOSS: Tolerance = tol(1e-5, 1e-6);
/// BCE gradient: sigmoid minus target over n; small values need the tight atol.
pub const BCE_GRAD: Tolerance = tol(1e-5, 1e-7);
/// Adam moments: one multiply-add each, which a GPU may fuse (one rounding, not two).
pub const ADAM_MOMENTS: Tolerance = tol(1e-6, 1e-12);
/// Adam parameters: an update is about lr = 2e-4, so 5e-8 absolute is 2.5e-4 of it.
pub const ADAM_PARAM: Tolerance = tol(1e-6, 5e-8);
/// Gathered pixels `px / 127.5 - 1`: a GPU may divide with 2.5 ulp of error. A wrongly
/// chosen image is off by 1 / 127.5 or more.
pub const GATHER: Tolerance = tol(0.0, 2.5e-7);
/// Normal noise through the GPU's log and cos: cos has an absolute error that the radius
/// (up to 5.8) scales.
pub const NORMAL: Tolerance = tol(1e-5, 1e-5);

/// Absolute error allowed per term summed, on top of [`SUM_RTOL`]: a sum of `terms`
/// inputs in [-1, 1] carries about sqrt(terms) roundings of values that grow like
/// sqrt(terms), on the CPU in sequence and on the GPU in tiles, chunks or trees; 1e-6 per
/// term keeps a margin of 50 or more, while a wrong tap or layout is off by 0.1 and more.
const SUM_ATOL_PER_TERM: f64 = 1e-6;
/// The relative part of a sum's tolerance.
const SUM_RTOL: f64 = 1e-4;

/// A sum of `terms` products or values in [-1, 1] (GEMM, convolution, bias gradient,
/// BatchNorm's dgamma and dbeta).
pub fn sum_of(terms: usize) -> Tolerance {
    tol(SUM_RTOL, SUM_ATOL_PER_TERM * terms.max(1) as f64)
}

/// Rounding of a BatchNorm statistic over `count` values, relative: the CPU sums the values
/// in sequence in f32, which is off by about sqrt(count) ulp of the sum (2.7e-5 at batch
/// 256's 200704 values); 1e-6 * sqrt(count) allows ten times that, and the 1e-5 floor is the
/// parity tests' at their few hundred values.
fn statistic_rounding(count: usize) -> f64 {
    1e-5 + 1e-6 * (count as f64).sqrt()
}

/// BatchNorm's batch and running statistics over `count` values.
pub fn statistic_of(count: usize) -> Tolerance {
    tol(statistic_rounding(count), 1e-6)
}

/// BatchNorm's y and dx: the statistics' rounding, amplified by 1 / sqrt(var + eps), both
/// relative and (for outputs near zero, which the mean's error shifts) absolute.
pub fn normalised_of(count: usize) -> Tolerance {
    tol(1e-4 + statistic_rounding(count), statistic_rounding(count))
}

/// How one output compared: the worst element as a fraction of what it was allowed.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Agreement {
    /// Elements compared.
    pub checked: usize,
    /// Largest `|got - want| / allowed`; at most 1 for a pass.
    pub worst: f64,
}

impl Agreement {
    /// The worse of two.
    pub fn merge(self, other: Agreement) -> Agreement {
        Agreement {
            checked: self.checked + other.checked,
            worst: self.worst.max(other.worst),
        }
    }
}

/// What an error names: the kernel, its shape and the output.
pub struct Subject<'a> {
    pub kernel: &'a str,
    pub shape: &'a str,
    pub output: &'a str,
}

/// Compare `got` at `entries` (index, wanted value); NaN where a value is wanted fails.
/// Fails with [`Error::CheckFailed`] naming the worst element.
pub fn compare(
    subject: &Subject<'_>,
    got: &[f32],
    entries: impl Iterator<Item = (usize, f64)>,
    tolerance: Tolerance,
) -> Result<Agreement> {
    let mut agreement = Agreement::default();
    let mut bad = 0;
    let mut worst: Option<(usize, f32, f64, f64, f64)> = None;
    for (index, want) in entries {
        let value = got.get(index).copied().unwrap_or(f32::NAN);
        let allowed = tolerance.atol + tolerance.rtol * want.abs();
        let error = (value as f64 - want).abs();
        // A NaN result (an element the kernel never wrote) counts as infinitely wrong.
        let ratio = if error.is_nan() {
            f64::INFINITY
        } else {
            error / allowed
        };
        agreement.checked += 1;
        if ratio > 1.0 {
            bad += 1;
        }
        if worst.is_none_or(|w| ratio > w.4) {
            worst = Some((index, value, want, error, ratio));
        }
        agreement.worst = agreement.worst.max(ratio);
    }
    match worst {
        Some((index, got, want, error, ratio)) if ratio > 1.0 => {
            Err(Error::CheckFailed(Box::new(CheckFailure {
                kernel: subject.kernel.to_string(),
                shape: subject.shape.to_string(),
                output: subject.output.to_string(),
                index,
                got,
                want,
                error,
                allowed: tolerance.atol + tolerance.rtol * want.abs(),
                bad,
                checked: agreement.checked,
            })))
        }
        _ => Ok(agreement),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBJECT: Subject<'static> = Subject {
        kernel: "k",
        shape: "s",
        output: "y",
    };

    #[test]
    fn passes_within_tolerance_and_reports_the_worst_ratio() {
        let got = [1.0, 2.0];
        let want = [(0, 1.0), (1, 2.0 + 1e-7)];
        let a = compare(&SUBJECT, &got, want.into_iter(), tol(0.0, 1e-6)).unwrap();
        assert_eq!(a.checked, 2);
        assert!(a.worst > 0.09 && a.worst < 0.11, "{}", a.worst);
    }

    #[test]
    fn names_the_worst_element_when_out_of_tolerance() {
        let got = [1.0, 5.0, f32::NAN];
        let want = [(0, 1.0), (1, 2.0), (2, 3.0)];
        match compare(&SUBJECT, &got, want.into_iter(), sum_of(10)) {
            Err(Error::CheckFailed(f)) => {
                assert_eq!((f.index, f.bad, f.output.as_str()), (2, 2, "y"));
            }
            other => panic!("expected CheckFailed, got {other:?}"),
        }
    }
}
