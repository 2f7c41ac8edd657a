//! Parsing a quantity string into nano-units.

use super::{Format, MAX_NANOS, QuantityError};

/// Most significant digits a quantity may have (what a `u128` holds with room to scale).
const MAX_DIGITS: usize = 38;
/// Largest decimal exponent accepted (`1e30` already exceeds [`MAX_NANOS`]).
const MAX_EXPONENT: i32 = 40;

/// The multiplier and format a suffix stands for: `(power of ten, power of 1024, format)`.
fn suffix(s: &str) -> Option<(i32, u32, Format)> {
    Some(match s {
        "" => (0, 0, Format::DecimalSI),
        "n" => (-9, 0, Format::DecimalSI),
        "u" => (-6, 0, Format::DecimalSI),
        "m" => (-3, 0, Format::DecimalSI),
        "k" => (3, 0, Format::DecimalSI),
        "M" => (6, 0, Format::DecimalSI),
        "G" => (9, 0, Format::DecimalSI),
        "T" => (12, 0, Format::DecimalSI),
        "P" => (15, 0, Format::DecimalSI),
        "E" => (18, 0, Format::DecimalSI),
        "Ki" => (0, 1, Format::BinarySI),
        "Mi" => (0, 2, Format::BinarySI),
        "Gi" => (0, 3, Format::BinarySI),
        "Ti" => (0, 4, Format::BinarySI),
        "Pi" => (0, 5, Format::BinarySI),
        "Ei" => (0, 6, Format::BinarySI),
        _ => return None,
    })
}

/// Parses `[+-]digits[.digits][suffix]` into `(nanos, format)`. Precision finer than one
/// nano-unit is rounded up (away from zero), as Kubernetes does.
pub(super) fn parse(input: &str) -> Result<(i128, Format), QuantityError> {
    let err = |reason: &'static str| QuantityError::Invalid {
        input: input.to_owned(),
        reason,
    };
    if input.is_empty() {
        return Err(QuantityError::Empty);
    }
    let (negative, rest) = match input.as_bytes()[0] {
        b'-' => (true, &input[1..]),
        b'+' => (false, &input[1..]),
        _ => (false, input),
    };
    let number_len = rest
        .bytes()
        .position(|b| !(b.is_ascii_digit() || b == b'.'))
        .unwrap_or(rest.len());
    let (number, suffix_str) = rest.split_at(number_len);
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if frac.contains('.') {
        return Err(err("the number has more than one decimal point"));
    }
    if whole.is_empty() && frac.is_empty() {
        return Err(err("it must start with a number"));
    }

    let (exp10, pow1024, format) = match suffix(suffix_str) {
        Some(s) => s,
        None => match exponent(suffix_str) {
            Some(Ok(e)) => (e, 0, Format::DecimalExponent),
            Some(Err(())) => {
                return Err(QuantityError::TooLarge {
                    input: input.to_owned(),
                });
            }
            None => {
                return Err(QuantityError::UnknownSuffix {
                    input: input.to_owned(),
                    suffix: suffix_str.to_owned(),
                });
            }
        },
    };

    // The significant digits, as an integer `mantissa` scaled by 10^-(fraction digits).
    let frac = frac.trim_end_matches('0');
    let digits: String = whole.chars().chain(frac.chars()).collect();
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok((0, format));
    }
    if digits.len() > MAX_DIGITS {
        return Err(err("it has more than 38 significant digits"));
    }
    let too_large = || QuantityError::TooLarge {
        input: input.to_owned(),
    };
    let mut mantissa: u128 = digits.parse().map_err(|_| too_large())?;
    mantissa = mantissa
        .checked_mul(1u128 << (10 * pow1024))
        .ok_or_else(too_large)?;
    let frac_len = i32::try_from(frac.len()).map_err(|_| too_large())?;
    let power = 9 + exp10 - frac_len;
    let nanos = if power >= 0 {
        let scale = 10u128
            .checked_pow(power.unsigned_abs())
            .ok_or_else(too_large)?;
        mantissa.checked_mul(scale).ok_or_else(too_large)?
    } else {
        match 10u128.checked_pow(power.unsigned_abs()) {
            // Rounds up: any non-zero remainder adds one nano-unit.
            Some(scale) => mantissa.div_ceil(scale),
            // Smaller than 10^-38 of a nano-unit: rounds up to one.
            None => 1,
        }
    };
    if nanos > MAX_NANOS as u128 {
        return Err(too_large());
    }
    let nanos = nanos as i128;
    Ok((if negative { -nanos } else { nanos }, format))
}

/// Parses a decimal exponent suffix `e3`, `E-2`, `e+6`. `None` if the suffix is not one,
/// `Some(Err(()))` if it is one that is out of range.
fn exponent(s: &str) -> Option<Result<i32, ()>> {
    let rest = s.strip_prefix('e').or_else(|| s.strip_prefix('E'))?;
    let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let negative = rest.starts_with('-');
    let significant = digits.trim_start_matches('0');
    let value = if significant.len() > 3 {
        None
    } else {
        significant
            .parse::<i32>()
            .ok()
            .or(significant.is_empty().then_some(0))
            .filter(|v| *v <= MAX_EXPONENT)
    };
    let Some(value) = value else {
        // A huge negative exponent is a tiny number, rounded up to 1n later; a huge positive
        // one is out of range.
        return Some(if negative { Ok(-MAX_EXPONENT) } else { Err(()) });
    };
    Some(Ok(if negative { -value } else { value }))
}
