//! [`IpRange`]: the loopback range pod IPs come from, and the choice of a free address.

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::runtime::RuntimeError;

/// A range of loopback addresses (`127.3.0.0/16` by default) from which each sandbox gets its
/// own IP. Linux routes all of 127.0.0.0/8 to the loopback interface, so a process can bind
/// any of them without configuration; two pods listening on the same port do not collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    base: u32,
    prefix: u8,
}

impl IpRange {
    /// The range `base/prefix`; it must lie inside 127.0.0.0/8 and hold at least one pod.
    pub fn new(base: Ipv4Addr, prefix: u8) -> Result<Self, RuntimeError> {
        let invalid = |message: String| RuntimeError::InvalidConfig {
            what: "pod IP range".into(),
            message,
        };
        if !(8..=30).contains(&prefix) {
            return Err(invalid(format!(
                "{base}/{prefix}: the prefix length must be between 8 and 30"
            )));
        }
        if !base.is_loopback() {
            return Err(invalid(format!(
                "{base}/{prefix} is not a loopback range (127.0.0.0/8): pods get local addresses only"
            )));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(IpRange {
            base: u32::from(base) & mask,
            prefix,
        })
    }

    /// Whether `ip` is one of the range's pod addresses.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        ip > self.base && ip < self.last()
    }

    /// The lowest address of the range not in `used` (the range's first and last addresses are
    /// never given out), or `None` when all are taken.
    pub fn allocate(&self, used: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        (self.base + 1..self.last())
            .map(Ipv4Addr::from)
            .find(|ip| !used.contains(ip))
    }

    fn last(&self) -> u32 {
        self.base | (u32::MAX >> self.prefix)
    }
}

impl Default for IpRange {
    fn default() -> Self {
        IpRange {
            base: u32::from(Ipv4Addr::new(127, 3, 0, 0)),
            prefix: 16,
        }
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

impl FromStr for IpRange {
    type Err = RuntimeError;

    /// Parses `A.B.C.D/N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || RuntimeError::InvalidConfig {
            what: "pod IP range".into(),
            message: format!("{s:?} is not of the form 127.A.B.C/N"),
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(invalid)?;
        let addr: Ipv4Addr = addr.trim().parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.trim().parse().map_err(|_| invalid())?;
        IpRange::new(addr, prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_free_and_skips_ends() {
        let range: IpRange = "127.9.0.0/30".parse().expect("range");
        let mut used = HashSet::new();
        let a = range.allocate(&used).expect("first");
        assert_eq!(a, Ipv4Addr::new(127, 9, 0, 1));
        used.insert(a);
        let b = range.allocate(&used).expect("second");
        assert_eq!(b, Ipv4Addr::new(127, 9, 0, 2));
        used.insert(b);
        assert_eq!(range.allocate(&used), None, "a /30 holds two pods");
        used.remove(&a);
        assert_eq!(
            range.allocate(&used),
            Some(a),
            "a released address is given out again"
        );
    }

    #[test]
    fn refuses_bad_ranges() {
        for bad in [
            "10.0.0.0/16",
            "127.0.0.0/4",
            "127.0.0.0/31",
            "127.3.0.0",
            "x/16",
            "127.3.0.0/abc",
        ] {
            let err = bad.parse::<IpRange>().expect_err(bad);
            assert!(
                matches!(err, RuntimeError::InvalidConfig { .. }),
                "{bad}: {err:?}"
            );
        }
        assert_eq!(IpRange::default().to_string(), "127.3.0.0/16");
        assert_eq!(
            "127.3.4.5/16".parse::<IpRange>().expect("ok"),
            IpRange::default()
        );
    }
}
