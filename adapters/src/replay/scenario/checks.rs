//! Value checks shared by the scenario's parts: each returns the value or
//! a [`Problem`] naming the key.

use drover_core::Duration;
use drover_core::catalog::MAX_NAME;

use super::locate::FieldPath;

/// Longest duration a scenario may give: 30 days, in seconds.
const MAX_SECS: f64 = 30.0 * 24.0 * 3600.0;

/// A check that failed: the key and why.
pub(super) struct Problem {
    pub path: FieldPath,
    pub reason: String,
}

/// A value, or the problem with it.
pub(super) type Checked<T> = Result<T, Problem>;

pub(super) fn fail<T>(path: &FieldPath, reason: impl Into<String>) -> Checked<T> {
    Err(Problem {
        path: path.clone(),
        reason: reason.into(),
    })
}

fn duration(path: &FieldPath, v: f64, unit: f64, name: &str) -> Checked<Duration> {
    let max = MAX_SECS * unit;
    if !(v.is_finite() && (0.0..=max).contains(&v)) {
        return fail(path, format!("must be {name} from 0 to {max}, found {v}"));
    }
    let nanos = v * (1e9 / unit);
    Ok(Duration::from_nanos(nanos.round() as u64))
}

pub(super) fn millis(path: &FieldPath, v: f64) -> Checked<Duration> {
    duration(path, v, 1_000.0, "a number of milliseconds")
}

pub(super) fn secs(path: &FieldPath, v: f64) -> Checked<Duration> {
    duration(path, v, 1.0, "a number of seconds")
}

pub(super) fn nonzero(path: &FieldPath, d: Checked<Duration>) -> Checked<Duration> {
    match d {
        Ok(Duration::ZERO) => fail(path, "must be above 0"),
        other => other,
    }
}

pub(super) fn probability(path: &FieldPath, v: f64) -> Checked<f64> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        fail(path, format!("must be between 0 and 1, found {v}"))
    }
}

pub(super) fn positive(path: &FieldPath, v: f64) -> Checked<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        fail(path, format!("must be a number above 0, found {v}"))
    }
}

pub(super) fn at_least_one(path: &FieldPath, v: f64) -> Checked<f64> {
    if v.is_finite() && v >= 1.0 {
        Ok(v)
    } else {
        fail(path, format!("must be a number of at least 1, found {v}"))
    }
}

pub(super) fn min_one<T: Copy + PartialEq + From<u8>>(path: &FieldPath, v: T) -> Checked<T> {
    if v == T::from(0) {
        fail(path, "must be at least 1")
    } else {
        Ok(v)
    }
}

/// An inclusive range written `[low, high]`. (Read as a list: TOML's serde
/// reader would let a tuple ignore extra elements.)
pub(super) fn range(path: &FieldPath, v: Vec<u32>, min: u32) -> Checked<(u32, u32)> {
    let &[lo, hi] = v.as_slice() else {
        return fail(path, format!("must be [low, high], found {v:?}"));
    };
    if lo < min {
        fail(
            path,
            format!("must start at {min} or more, found [{lo}, {hi}]"),
        )
    } else if lo > hi {
        fail(
            path,
            format!("must be [low, high] with low <= high, found [{lo}, {hi}]"),
        )
    } else {
        Ok((lo, hi))
    }
}

pub(super) fn name(path: &FieldPath, s: &str, what: &str) -> Checked<()> {
    if s.is_empty() || s.len() > MAX_NAME {
        fail(
            path,
            format!("{what} must be 1 to {MAX_NAME} bytes, found {s:?}"),
        )
    } else {
        Ok(())
    }
}
