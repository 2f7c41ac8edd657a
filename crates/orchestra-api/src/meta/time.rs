//! Timestamps as Kubernetes writes them: [`Time`] (RFC 3339, whole seconds, as in
//! `creationTimestamp`) and [`MicroTime`] (RFC 3339 with microseconds, as in a Lease's
//! `renewTime`).
//!
//! Both wrap a [`jiff::Timestamp`]. jiff is the maintained, correct-by-construction date-time
//! crate that k8s-openapi also moved to; orchestra only needs its UTC timestamps, so it builds
//! without time-zone data. A value is truncated to the precision it serializes with when it is
//! made, so that a round trip through JSON gives back an equal value.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The error for a string that is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {input:?}: {reason}; expected RFC 3339, e.g. \"2024-05-01T12:30:00Z\"")]
pub struct TimeError {
    /// The string that was given.
    pub input: String,
    /// What the parser objected to.
    pub reason: String,
}

const NANOS_PER_SECOND: i128 = 1_000_000_000;
const NANOS_PER_MICRO: i128 = 1_000;

fn truncate(ts: jiff::Timestamp, unit: i128) -> jiff::Timestamp {
    let ns = ts.as_nanosecond();
    // Flooring never leaves jiff's range: its minimum is a whole second.
    jiff::Timestamp::from_nanosecond(ns - ns.rem_euclid(unit)).unwrap_or(ts)
}

fn parse(s: &str) -> Result<jiff::Timestamp, TimeError> {
    jiff::Timestamp::from_str(s).map_err(|e| TimeError {
        input: s.to_owned(),
        reason: e.to_string(),
    })
}

macro_rules! timestamp_type {
    ($(#[$doc:meta])* $name:ident, $unit:expr, $precision:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(jiff::Timestamp);

        impl $name {
            /// The current time, truncated to this type's precision.
            pub fn now() -> Self {
                Self::new(jiff::Timestamp::now())
            }

            /// Wraps a timestamp, truncating it to this type's precision.
            pub fn new(ts: jiff::Timestamp) -> Self {
                Self(truncate(ts, $unit))
            }

            /// The timestamp inside.
            pub fn timestamp(self) -> jiff::Timestamp {
                self.0
            }

            /// Seconds since the Unix epoch (rounded down).
            pub fn as_second(self) -> i64 {
                self.0.as_second()
            }
        }

        impl From<jiff::Timestamp> for $name {
            fn from(ts: jiff::Timestamp) -> Self {
                Self::new(ts)
            }
        }

        impl FromStr for $name {
            type Err = TimeError;

            fn from_str(s: &str) -> Result<Self, TimeError> {
                parse(s).map(Self::new)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:.*}", $precision, self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

timestamp_type!(
    /// A point in time with whole-second precision, serialized as RFC 3339 in UTC
    /// (`"2024-05-01T12:30:00Z"`): Kubernetes' `metav1.Time`.
    Time,
    NANOS_PER_SECOND,
    0
);

timestamp_type!(
    /// A point in time with microsecond precision, serialized as RFC 3339 in UTC with six
    /// fractional digits (`"2024-05-01T12:30:00.123456Z"`): Kubernetes' `metav1.MicroTime`.
    MicroTime,
    NANOS_PER_MICRO,
    6
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trips_with_second_precision() {
        let t: Time = "2024-05-01T12:30:00.987Z".parse().unwrap();
        assert_eq!(t.to_string(), "2024-05-01T12:30:00Z");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2024-05-01T12:30:00Z\"");
        assert_eq!(serde_json::from_str::<Time>(&json).unwrap(), t);
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let t: Time = "2024-05-01T14:30:00+02:00".parse().unwrap();
        assert_eq!(t.to_string(), "2024-05-01T12:30:00Z");
    }

    #[test]
    fn micro_time_keeps_microseconds() {
        let t: MicroTime = "2024-05-01T12:30:00.1234567Z".parse().unwrap();
        assert_eq!(t.to_string(), "2024-05-01T12:30:00.123456Z");
        let now = MicroTime::now();
        assert_eq!(now.to_string().parse::<MicroTime>().unwrap(), now);
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let err = "yesterday".parse::<Time>().unwrap_err();
        assert!(err.to_string().contains("RFC 3339"), "{err}");
        assert!(serde_json::from_str::<Time>("12").is_err());
    }
}
