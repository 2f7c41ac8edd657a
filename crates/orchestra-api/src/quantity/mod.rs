//! Resource quantities as Kubernetes writes them: `500m`, `1`, `1.5`, `128Mi`, `1Gi`, `1e3`,
//! `2k`, `1M`.
//!
//! A [`Quantity`] holds its value exactly as a whole number of nano-units (10^-9), so CPU
//! (`250m` = 0.25 cores) and memory (`1Gi` = 1073741824 bytes) add, subtract and compare
//! without rounding; values finer than a nano-unit round up, as in Kubernetes. It also keeps
//! the [`Format`] it was written in (decimal SI, binary SI or decimal exponent), so it
//! serializes back in the same style, canonicalized: `1024Mi` becomes `1Gi`, `0.5` becomes
//! `500m`, `1000k` becomes `1M`. Equality, ordering and hashing compare values only
//! (`1Gi == 1073741824`).
//!
//! ```
//! use orchestra_api::Quantity;
//!
//! let request: Quantity = "250m".parse()?;
//! let total = request.clone() + "1.5".parse()?;
//! assert_eq!(total.to_string(), "1750m");
//! assert_eq!(total.milli_value(), 1750);
//! let memory: Quantity = "1.5Gi".parse()?;
//! assert_eq!(memory.value(), 1_610_612_736);
//! assert_eq!(memory.to_string(), "1536Mi");
//! # Ok::<(), orchestra_api::QuantityError>(())
//! ```

mod format;
mod parse;

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Nano-units per unit.
pub const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// The largest magnitude a quantity holds, in nano-units (10^27 units: far beyond any CPU or
/// memory size, and room for sums).
pub const MAX_NANOS: i128 = 1_000_000_000_000_000_000_000_000_000_000_000_000;

/// How a quantity was written, and so how it is written back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// Powers of ten with SI suffixes: `500m`, `2k`, `1M`, `1G`.
    #[default]
    DecimalSI,
    /// Powers of 1024: `128Mi`, `1Gi`.
    BinarySI,
    /// A decimal exponent: `1e3`, `5e-3`.
    DecimalExponent,
}

/// The error for a string that is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string is empty.
    #[error(
        "quantity is empty; write a number with an optional suffix, e.g. 500m, 1, 1.5, 128Mi, 1Gi, 1e3"
    )]
    Empty,
    /// The number part is malformed.
    #[error(
        "invalid quantity {input:?}: {reason}; write a number with an optional suffix, e.g. 500m, 1, 1.5, 128Mi, 1Gi, 1e3"
    )]
    Invalid {
        /// The string given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The suffix is not one of Kubernetes' suffixes.
    #[error(
        "invalid quantity {input:?}: unknown suffix {suffix:?}; use one of n, u, m, k, M, G, T, P, E (powers of 10), Ki, Mi, Gi, Ti, Pi, Ei (powers of 1024) or an exponent such as e3"
    )]
    UnknownSuffix {
        /// The string given.
        input: String,
        /// The suffix that was not recognized.
        suffix: String,
    },
    /// The value is too large to represent.
    #[error("invalid quantity {input:?}: too large (the limit is 1e27)")]
    TooLarge {
        /// The string given.
        input: String,
    },
}

/// An exact resource amount with its preferred [`Format`]; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl Quantity {
    /// Zero.
    pub const ZERO: Quantity = Quantity {
        nanos: 0,
        format: Format::DecimalSI,
    };

    /// Parses a quantity string (also available as [`str::parse`]).
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let (nanos, format) = parse::parse(s)?;
        Ok(Quantity { nanos, format })
    }

    /// An amount of thousandths (millicores for CPU), written in decimal SI (`250m`).
    pub fn from_milli(milli: i64) -> Quantity {
        Quantity {
            nanos: i128::from(milli) * 1_000_000,
            format: Format::DecimalSI,
        }
    }

    /// A whole amount written in decimal SI (`4`, `2k`).
    pub fn from_value(value: i64) -> Quantity {
        Quantity {
            nanos: i128::from(value) * NANOS_PER_UNIT,
            format: Format::DecimalSI,
        }
    }

    /// A number of bytes written in binary SI (`1Gi` for 1073741824).
    pub fn from_bytes(bytes: i64) -> Quantity {
        Quantity {
            nanos: i128::from(bytes) * NANOS_PER_UNIT,
            format: Format::BinarySI,
        }
    }

    /// A value in nano-units with a format; `None` if the magnitude exceeds [`MAX_NANOS`].
    pub fn from_nanos(nanos: i128, format: Format) -> Option<Quantity> {
        (nanos.abs() <= MAX_NANOS).then_some(Quantity { nanos, format })
    }

    /// The value in nano-units, exact.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// The format the quantity serializes in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The value in thousandths, rounded up (Kubernetes' `MilliValue`): millicores for CPU.
    /// Saturates at the `i64` range.
    #[doc(alias = "millicores")]
    pub fn milli_value(&self) -> i64 {
        saturate(ceil_div(self.nanos, 1_000_000))
    }

    /// The value in whole units, rounded up (Kubernetes' `Value`): bytes for memory, cores for
    /// CPU. Saturates at the `i64` range.
    #[doc(alias = "bytes")]
    pub fn value(&self) -> i64 {
        saturate(ceil_div(self.nanos, NANOS_PER_UNIT))
    }

    /// The value as a float (for ratios and scores, not for accounting).
    pub fn as_f64(&self) -> f64 {
        self.nanos as f64 / NANOS_PER_UNIT as f64
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// The sum, or `None` beyond [`MAX_NANOS`]. The format is `self`'s (or `other`'s when
    /// `self` is zero).
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        let nanos = self.nanos.checked_add(other.nanos)?;
        Quantity::from_nanos(nanos, self.merged_format(other))
    }

    /// The difference, or `None` beyond [`MAX_NANOS`].
    pub fn checked_sub(&self, other: &Quantity) -> Option<Quantity> {
        let nanos = self.nanos.checked_sub(other.nanos)?;
        Quantity::from_nanos(nanos, self.merged_format(other))
    }

    /// The sum, clamped to ±[`MAX_NANOS`] (what `+` does).
    pub fn saturating_add(&self, other: &Quantity) -> Quantity {
        Quantity {
            nanos: self
                .nanos
                .saturating_add(other.nanos)
                .clamp(-MAX_NANOS, MAX_NANOS),
            format: self.merged_format(other),
        }
    }

    /// The difference, clamped to ±[`MAX_NANOS`] (what `-` does).
    pub fn saturating_sub(&self, other: &Quantity) -> Quantity {
        Quantity {
            nanos: self
                .nanos
                .saturating_sub(other.nanos)
                .clamp(-MAX_NANOS, MAX_NANOS),
            format: self.merged_format(other),
        }
    }

    fn merged_format(&self, other: &Quantity) -> Format {
        if self.nanos == 0 && other.nanos != 0 {
            other.format
        } else {
            self.format
        }
    }
}

fn ceil_div(n: i128, d: i128) -> i128 {
    let q = n.div_euclid(d);
    if n.rem_euclid(d) == 0 { q } else { q + 1 }
}

fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.nanos.hash(state);
    }
}

impl Add for Quantity {
    type Output = Quantity;

    fn add(self, rhs: Quantity) -> Quantity {
        self.saturating_add(&rhs)
    }
}

impl AddAssign for Quantity {
    fn add_assign(&mut self, rhs: Quantity) {
        *self = self.saturating_add(&rhs);
    }
}

impl Sub for Quantity {
    type Output = Quantity;

    fn sub(self, rhs: Quantity) -> Quantity {
        self.saturating_sub(&rhs)
    }
}

impl SubAssign for Quantity {
    fn sub_assign(&mut self, rhs: Quantity) {
        *self = self.saturating_sub(&rhs);
    }
}

impl Neg for Quantity {
    type Output = Quantity;

    fn neg(self) -> Quantity {
        Quantity {
            nanos: -self.nanos,
            format: self.format,
        }
    }
}

impl std::iter::Sum for Quantity {
    fn sum<I: Iterator<Item = Quantity>>(iter: I) -> Quantity {
        iter.fold(Quantity::ZERO, Add::add)
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Quantity, QuantityError> {
        Quantity::parse(s)
    }
}

impl TryFrom<&str> for Quantity {
    type Error = QuantityError;

    fn try_from(s: &str) -> Result<Quantity, QuantityError> {
        Quantity::parse(s)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format::canonical(self.nanos, self.format))
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

struct QuantityVisitor;

impl Visitor<'_> for QuantityVisitor {
    type Value = Quantity;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a quantity such as \"500m\", \"1Gi\" or a number")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
        Quantity::parse(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
        Ok(Quantity::from_value(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
        Quantity::from_nanos(i128::from(v) * NANOS_PER_UNIT, Format::DecimalSI)
            .ok_or_else(|| E::custom("quantity too large"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
        if !v.is_finite() {
            return Err(E::invalid_value(de::Unexpected::Float(v), &self));
        }
        // Rust prints the shortest string that reads back as the same float: `0.1` is "0.1".
        Quantity::parse(&format!("{v}")).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(QuantityVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(s: &str) -> Quantity {
        s.parse().unwrap()
    }

    #[test]
    fn parses_kubernetes_examples() {
        assert_eq!(q("500m").milli_value(), 500);
        assert_eq!(q("1").milli_value(), 1000);
        assert_eq!(q("1.5").milli_value(), 1500);
        assert_eq!(q("0.1").milli_value(), 100);
        assert_eq!(q(".5").milli_value(), 500);
        assert_eq!(q("5.").value(), 5);
        assert_eq!(q("1Gi").value(), 1 << 30);
        assert_eq!(q("128Mi").value(), 128 << 20);
        assert_eq!(q("1e3").value(), 1000);
        assert_eq!(q("1E3").value(), 1000);
        assert_eq!(q("2k").value(), 2000);
        assert_eq!(q("1M").value(), 1_000_000);
        assert_eq!(q("1E").value(), 1_000_000_000_000_000_000);
        assert_eq!(q("100n").nanos(), 100);
        assert_eq!(q("3u").nanos(), 3000);
        assert_eq!(q("-2").value(), -2);
        assert_eq!(q("+2").value(), 2);
        assert_eq!(q("5e-3").milli_value(), 5);
        assert_eq!(q("1e+3").value(), 1000);
    }

    #[test]
    fn canonical_forms() {
        for (input, canonical) in [
            ("0", "0"),
            ("0Mi", "0"),
            ("500m", "500m"),
            ("0.5", "500m"),
            ("1000m", "1"),
            ("1.5", "1500m"),
            ("1500", "1500"),
            ("2000", "2k"),
            ("1000k", "1M"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("1Ki", "1Ki"),
            ("0.5Ki", "512"),
            ("100", "100"),
            ("1e3", "1e3"),
            ("12e2", "1200"),
            ("1e-3", "1e-3"),
            ("-1.5", "-1500m"),
            ("1.0000000001", "1000000001n"),
            ("0.0000000001", "1n"),
            ("1e-100", "1e-9"),
            ("7E", "7E"),
            ("8000E", "8000E"),
        ] {
            assert_eq!(q(input).to_string(), canonical, "{input}");
        }
    }

    #[test]
    fn bad_strings_are_clear_errors() {
        assert_eq!(Quantity::parse(""), Err(QuantityError::Empty));
        for bad in [
            "abc", "1.5.5", ".", "-", "Mi", "1 Mi", "1Qi", "1e", "1ee3", "1e3.5", "--1",
        ] {
            let err = Quantity::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        assert!(
            matches!(Quantity::parse("1Qi"), Err(QuantityError::UnknownSuffix { suffix, .. }) if suffix == "Qi")
        );
        assert!(matches!(
            Quantity::parse("1e9999"),
            Err(QuantityError::TooLarge { .. })
        ));
        assert!(matches!(
            Quantity::parse("2000000000000000000000000000000000000000"),
            Err(QuantityError::Invalid { .. })
        ));
        assert!(matches!(
            Quantity::parse("9000000000Ei"),
            Err(QuantityError::TooLarge { .. })
        ));
    }

    #[test]
    fn equality_ignores_format_and_ordering_is_by_value() {
        assert_eq!(q("1Gi"), q("1073741824"));
        assert_eq!(q("1"), q("1000m"));
        assert!(q("500m") < q("1"));
        assert!(q("1Gi") > q("1G"));
        let mut v = vec![q("2"), q("100m"), q("1Ki")];
        v.sort();
        assert_eq!(v, vec![q("100m"), q("2"), q("1Ki")]);
    }

    #[test]
    fn arithmetic() {
        assert_eq!((q("250m") + q("750m")).to_string(), "1");
        assert_eq!((q("1Gi") - q("512Mi")).to_string(), "512Mi");
        assert_eq!((q("0") + q("1Gi")).to_string(), "1Gi");
        assert_eq!((q("1") - q("1500m")).to_string(), "-500m");
        let total: Quantity = ["100m", "200m", "300m"].iter().map(|s| q(s)).sum();
        assert_eq!(total.milli_value(), 600);
        let max = Quantity::from_nanos(MAX_NANOS, Format::DecimalSI).unwrap();
        assert_eq!(max.checked_add(&q("1")), None);
        assert_eq!(max + q("1"), max);
        assert_eq!(q("1n").milli_value(), 1, "rounds up");
        assert_eq!(q("1500m").value(), 2, "rounds up");
        assert_eq!(q("-1500m").value(), -1, "rounds up");
    }

    #[test]
    fn serde_accepts_strings_and_numbers() {
        let v: Quantity = serde_json::from_str("\"128Mi\"").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"128Mi\"");
        assert_eq!(serde_json::from_str::<Quantity>("2").unwrap(), q("2"));
        assert_eq!(serde_json::from_str::<Quantity>("0.1").unwrap(), q("100m"));
        let err = serde_json::from_str::<Quantity>("\"lots\"").unwrap_err();
        assert!(
            err.to_string().contains("invalid quantity \"lots\""),
            "{err}"
        );
        assert!(serde_json::from_str::<Quantity>("true").is_err());
    }

    fn any_suffix() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "", "n", "u", "m", "k", "M", "G", "T", "P", "Ki", "Mi", "Gi", "Ti", "e3", "e-3", "E6",
        ])
    }

    proptest! {
        #[test]
        fn canonical_string_round_trips(
            sign in prop::sample::select(vec!["", "-", "+"]),
            whole in 0u64..10_000_000,
            frac in prop::option::of(0u32..1_000_000),
            suffix in any_suffix(),
        ) {
            let input = match frac {
                Some(f) => format!("{sign}{whole}.{f}{suffix}"),
                None => format!("{sign}{whole}{suffix}"),
            };
            let parsed = Quantity::parse(&input).unwrap();
            let canonical = parsed.to_string();
            let reparsed = Quantity::parse(&canonical).unwrap();
            prop_assert_eq!(parsed, reparsed, "{} -> {}", input, canonical);
            prop_assert_eq!(reparsed.to_string(), canonical.clone());
            let json = serde_json::to_string(&parsed).unwrap();
            prop_assert_eq!(serde_json::from_str::<Quantity>(&json).unwrap(), parsed);
        }

        #[test]
        fn nanos_round_trip_in_every_format(
            nanos in -MAX_NANOS..=MAX_NANOS,
            format in prop::sample::select(vec![Format::DecimalSI, Format::BinarySI, Format::DecimalExponent]),
        ) {
            let quantity = Quantity::from_nanos(nanos, format).unwrap();
            let reparsed = Quantity::parse(&quantity.to_string()).unwrap();
            prop_assert_eq!(reparsed.nanos(), nanos);
        }

        #[test]
        fn arithmetic_matches_integers(a in -1_000_000_000i64..1_000_000_000, b in -1_000_000_000i64..1_000_000_000) {
            let (qa, qb) = (Quantity::from_milli(a), Quantity::from_milli(b));
            prop_assert_eq!((qa + qb).milli_value(), a + b);
            prop_assert_eq!((qa - qb).milli_value(), a - b);
            prop_assert_eq!(qa.cmp(&qb), a.cmp(&b));
        }

        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,40}") {
            let _ = Quantity::parse(&s);
        }

        #[test]
        fn quantity_like_strings_never_panic(s in "[-+]?[0-9.]{0,45}([eE][-+]?[0-9]{0,6}|[numkMGTPE]i?)?") {
            if let Ok(parsed) = Quantity::parse(&s) {
                prop_assert_eq!(Quantity::parse(&parsed.to_string()).unwrap(), parsed);
            }
        }
    }
}
