//! The canonical string of a quantity (Kubernetes' `Quantity.String()`): the shortest exact
//! mantissa with the largest suffix that keeps it an integer, in the quantity's format.

use std::fmt::Write as _;

use super::{Format, NANOS_PER_UNIT};

const DECIMAL_SUFFIXES: [(i32, &str); 10] = [
    (18, "E"),
    (15, "P"),
    (12, "T"),
    (9, "G"),
    (6, "M"),
    (3, "k"),
    (0, ""),
    (-3, "m"),
    (-6, "u"),
    (-9, "n"),
];

const BINARY_SUFFIXES: [(u32, &str); 7] = [
    (6, "Ei"),
    (5, "Pi"),
    (4, "Ti"),
    (3, "Gi"),
    (2, "Mi"),
    (1, "Ki"),
    (0, ""),
];

/// Writes the canonical form of `nanos` in `format`.
pub(super) fn canonical(nanos: i128, format: Format) -> String {
    let mut out = String::new();
    if nanos == 0 {
        out.push('0');
        return out;
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let magnitude = nanos.unsigned_abs();
    let nano = NANOS_PER_UNIT as u128;

    // Binary suffixes only for whole numbers of at least 1024; others read better in decimal.
    if format == Format::BinarySI && magnitude >= 1024 * nano && magnitude.is_multiple_of(nano) {
        let units = magnitude / nano;
        for (power, suffix) in BINARY_SUFFIXES {
            let scale = 1u128 << (10 * power);
            if units.is_multiple_of(scale) {
                let _ = write!(out, "{sign}{}{suffix}", units / scale);
                return out;
            }
        }
    }

    // The largest power of ten (a multiple of 3) that divides the value exactly.
    let max_exponent = if format == Format::DecimalExponent {
        27
    } else {
        18
    };
    let mut exponent = -9;
    let mut mantissa = magnitude;
    while exponent < max_exponent && mantissa.is_multiple_of(1000) {
        mantissa /= 1000;
        exponent += 3;
    }
    if format == Format::DecimalExponent {
        if exponent == 0 {
            let _ = write!(out, "{sign}{mantissa}");
        } else {
            let _ = write!(out, "{sign}{mantissa}e{exponent}");
        }
        return out;
    }
    let suffix = DECIMAL_SUFFIXES
        .iter()
        .find(|(e, _)| *e == exponent)
        .map_or("", |(_, s)| *s);
    let _ = write!(out, "{sign}{mantissa}{suffix}");
    out
}
