//! When a sidecar renews its certificate: a pure function of the certificate's validity and
//! the time, so that the schedule is tested without clocks. Renewal starts at 70% of the
//! lifetime (Istio and Linkerd do the same), which leaves 30% (about 7 hours of a 24-hour
//! certificate) to reach a CA that is briefly down: expiry must never become an outage.

use std::time::{Duration, SystemTime};

/// The default point of a certificate's lifetime at which it is renewed.
pub const RENEW_AT_FRACTION: f64 = 0.7;

/// What a sidecar should do with its current certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewDecision {
    /// Keep it; ask again after this long.
    Keep {
        /// Time left until renewal is due.
        renew_in: Duration,
    },
    /// Ask the CA for a new one now (the current one is still valid until `expires_in`).
    Renew {
        /// Time left until the current certificate expires.
        expires_in: Duration,
    },
    /// The certificate has expired (or is not valid yet): renew before serving anything.
    Invalid,
}

/// The instant at which a certificate valid from `not_before` to `not_after` is due for
/// renewal: `fraction` (0..=1, clamped) of the way through its lifetime.
pub fn renewal_time(not_before: SystemTime, not_after: SystemTime, fraction: f64) -> SystemTime {
    let lifetime = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    not_before + lifetime.mul_f64(fraction.clamp(0.0, 1.0))
}

/// The decision for a certificate valid from `not_before` to `not_after` at `now`.
pub fn renew_decision(
    not_before: SystemTime,
    not_after: SystemTime,
    now: SystemTime,
    fraction: f64,
) -> RenewDecision {
    if now < not_before || now >= not_after {
        return RenewDecision::Invalid;
    }
    let due = renewal_time(not_before, not_after, fraction);
    match due.duration_since(now) {
        Ok(renew_in) if !renew_in.is_zero() => RenewDecision::Keep { renew_in },
        _ => RenewDecision::Renew {
            expires_in: not_after.duration_since(now).unwrap_or(Duration::ZERO),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn renews_at_seventy_percent_of_the_lifetime() {
        let start = SystemTime::UNIX_EPOCH + 1000 * HOUR;
        let end = start + 24 * HOUR;
        let at = |hours: f64| start + HOUR.mul_f64(hours);
        assert_eq!(renewal_time(start, end, RENEW_AT_FRACTION), at(24.0 * 0.7));
        assert_eq!(
            renew_decision(start, end, start, RENEW_AT_FRACTION),
            RenewDecision::Keep {
                renew_in: HOUR.mul_f64(24.0 * 0.7)
            }
        );
        assert_eq!(
            renew_decision(start, end, at(16.0), RENEW_AT_FRACTION),
            RenewDecision::Keep {
                renew_in: HOUR.mul_f64(0.8)
            }
        );
        assert_eq!(
            renew_decision(start, end, at(24.0 * 0.7), RENEW_AT_FRACTION),
            RenewDecision::Renew {
                expires_in: HOUR.mul_f64(24.0 * 0.3)
            }
        );
        assert_eq!(
            renew_decision(start, end, at(23.0), RENEW_AT_FRACTION),
            RenewDecision::Renew { expires_in: HOUR }
        );
    }

    #[test]
    fn expired_or_future_certificates_are_invalid() {
        let start = SystemTime::UNIX_EPOCH + 1000 * HOUR;
        let end = start + HOUR;
        assert_eq!(
            renew_decision(start, end, end, RENEW_AT_FRACTION),
            RenewDecision::Invalid
        );
        assert_eq!(
            renew_decision(start, end, start - HOUR, RENEW_AT_FRACTION),
            RenewDecision::Invalid
        );
        // A fraction outside 0..=1 is clamped, not trusted.
        assert_eq!(renewal_time(start, end, 7.0), end);
    }
}
