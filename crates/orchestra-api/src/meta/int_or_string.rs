//! [`IntOrString`]: a field that holds a number or a string, such as a Service's `targetPort`
//! (`8080` or `http`) or a Deployment's `maxSurge` (`1` or `25%`).

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A number or a string (Kubernetes' `intstr.IntOrString`), written in JSON as either.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IntOrString {
    /// A number, e.g. a port `8080` or a count `1`.
    Int(i32),
    /// A string, e.g. a port name `http` or a percentage `25%`.
    String(String),
}

impl Default for IntOrString {
    fn default() -> Self {
        IntOrString::Int(0)
    }
}

impl From<i32> for IntOrString {
    fn from(v: i32) -> Self {
        IntOrString::Int(v)
    }
}

impl From<&str> for IntOrString {
    fn from(v: &str) -> Self {
        IntOrString::String(v.to_owned())
    }
}

impl From<String> for IntOrString {
    fn from(v: String) -> Self {
        IntOrString::String(v)
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::String(s) => f.write_str(s),
        }
    }
}

/// The error for an [`IntOrString`] that should be a count or a percentage and is neither.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?}: must be an integer or a percentage (e.g. '5%')")]
pub struct NotIntOrPercent {
    /// The value as written.
    pub value: String,
}

impl IntOrString {
    /// The percentage, when this is a string such as `"25%"`.
    pub fn percent(&self) -> Option<i32> {
        match self {
            IntOrString::String(s) => {
                let digits = s.strip_suffix('%')?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                digits.parse().ok()
            }
            IntOrString::Int(_) => None,
        }
    }

    /// Resolves a count or a percentage of `total`, rounding a percentage up or down (Kubernetes'
    /// `GetScaledValueFromIntOrPercent`: `25%` of 10 is 3 rounded up, 2 rounded down).
    pub fn scaled_value(&self, total: i32, round_up: bool) -> Result<i32, NotIntOrPercent> {
        match self {
            IntOrString::Int(i) => Ok(*i),
            IntOrString::String(s) => {
                let pct = self
                    .percent()
                    .ok_or_else(|| NotIntOrPercent { value: s.clone() })?;
                let product = i64::from(pct) * i64::from(total);
                let scaled = if round_up {
                    (product + 99).div_euclid(100)
                } else {
                    product.div_euclid(100)
                };
                Ok(i32::try_from(scaled).unwrap_or(if scaled < 0 { i32::MIN } else { i32::MAX }))
            }
        }
    }
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrString::Int(i) => s.serialize_i32(*i),
            IntOrString::String(v) => s.serialize_str(v),
        }
    }
}

struct IntOrStringVisitor;

impl Visitor<'_> for IntOrStringVisitor {
    type Value = IntOrString;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
        i32::try_from(v)
            .map(IntOrString::Int)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &"a 32-bit integer"))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
        i32::try_from(v)
            .map(IntOrString::Int)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &"a 32-bit integer"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
        Ok(IntOrString::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<IntOrString, E> {
        Ok(IntOrString::String(v))
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntOrStringVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms() {
        assert_eq!(
            serde_json::from_str::<IntOrString>("8080").unwrap(),
            IntOrString::Int(8080)
        );
        assert_eq!(
            serde_json::from_str::<IntOrString>("\"http\"").unwrap(),
            IntOrString::from("http")
        );
        assert_eq!(
            serde_json::to_string(&IntOrString::from("25%")).unwrap(),
            "\"25%\""
        );
        assert_eq!(serde_json::to_string(&IntOrString::Int(3)).unwrap(), "3");
        assert!(serde_json::from_str::<IntOrString>("1.5").is_err());
        assert!(serde_json::from_str::<IntOrString>("99999999999").is_err());
    }

    #[test]
    fn scaled_values() {
        let pct = IntOrString::from("25%");
        assert_eq!(pct.scaled_value(10, true), Ok(3));
        assert_eq!(pct.scaled_value(10, false), Ok(2));
        assert_eq!(IntOrString::Int(4).scaled_value(10, true), Ok(4));
        assert!(IntOrString::from("abc").scaled_value(10, true).is_err());
        assert!(IntOrString::from("%").scaled_value(10, true).is_err());
        assert!(IntOrString::from("-5%").percent().is_none());
    }
}
