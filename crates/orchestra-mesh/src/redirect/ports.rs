//! [`PortList`]: the TCP ports the redirect leaves alone, as the command line writes them
//! (`25,587,9000-9010`, Linkerd's proxy-init syntax), parsed and printed for nft.

use std::fmt;
use std::str::FromStr;

/// An inclusive range of TCP ports (`first == last` for one port); never port 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortRange {
    /// The first port.
    first: u16,
    /// The last port (at least `first`).
    last: u16,
}

impl PortRange {
    /// One port; `None` for port 0, which no connection is addressed to.
    pub fn single(port: u16) -> Option<Self> {
        Self::new(port, port)
    }

    /// The ports `first..=last`; `None` when the range is empty or includes port 0.
    pub fn new(first: u16, last: u16) -> Option<Self> {
        (first != 0 && first <= last).then_some(PortRange { first, last })
    }

    /// The first port.
    pub fn first(&self) -> u16 {
        self.first
    }

    /// The last port.
    pub fn last(&self) -> u16 {
        self.last
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl fmt::Display for PortRange {
    /// `8080`, or `9000-9010`: both the command line's syntax and nft's.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// A list of ports and port ranges, sorted, with overlapping and adjacent ranges merged (nft
/// refuses overlapping intervals in one set, and the same list must always give the same
/// script).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortList {
    ranges: Vec<PortRange>,
}

impl PortList {
    /// The list of `ranges`, sorted and merged.
    pub fn new(ranges: impl IntoIterator<Item = PortRange>) -> Self {
        let mut sorted: Vec<PortRange> = ranges.into_iter().collect();
        sorted.sort_unstable();
        let mut ranges: Vec<PortRange> = Vec::with_capacity(sorted.len());
        for range in sorted {
            match ranges.last_mut() {
                Some(last) if u32::from(range.first) <= u32::from(last.last) + 1 => {
                    last.last = last.last.max(range.last);
                }
                _ => ranges.push(range),
            }
        }
        PortList { ranges }
    }

    /// The ranges, sorted and disjoint.
    pub fn ranges(&self) -> &[PortRange] {
        &self.ranges
    }

    /// Whether the list has no port.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether `port` is in the list.
    pub fn contains(&self, port: u16) -> bool {
        self.ranges.iter().any(|r| r.contains(port))
    }

    /// This list with `other`'s ports too.
    pub fn union(&self, other: &PortList) -> PortList {
        PortList::new(self.ranges.iter().chain(&other.ranges).copied())
    }
}

impl fmt::Display for PortList {
    /// `25, 587, 9000-9010` (the inside of an nft anonymous set; it parses back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, range) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{range}")?;
        }
        Ok(())
    }
}

/// Why a port list did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad port list {input:?}: {reason} (write ports and ranges separated by commas, like 25,587,9000-9010)"
)]
pub struct PortListError {
    /// The text given.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for PortList {
    type Err = PortListError;

    /// Ports and `FIRST-LAST` ranges separated by commas, spaces allowed around each; the
    /// empty text is the empty list.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| PortListError {
            input: input.to_owned(),
            reason,
        };
        if input.trim().is_empty() {
            return Ok(PortList::default());
        }
        let mut ranges = Vec::new();
        for item in input.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(fail("an empty item between commas".to_owned()));
            }
            let port = |text: &str| {
                text.trim()
                    .parse::<u16>()
                    .map_err(|_| fail(format!("{:?} is not a port (1 to 65535)", text.trim())))
            };
            let (first, last) = match item.split_once('-') {
                Some((first, last)) => (port(first)?, port(last)?),
                None => {
                    let p = port(item)?;
                    (p, p)
                }
            };
            let range = PortRange::new(first, last).ok_or_else(|| {
                fail(if first == 0 {
                    "port 0 is not a port a connection can be addressed to".to_owned()
                } else {
                    format!("the range {item:?} is empty (its first port is above its last)")
                })
            })?;
            ranges.push(range);
        }
        Ok(PortList::new(ranges))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> PortList {
        text.parse().unwrap()
    }

    #[test]
    fn lists_parse_sort_and_merge() {
        assert_eq!(list(""), PortList::default());
        assert_eq!(list("  "), PortList::default());
        assert_eq!(list("4191").to_string(), "4191");
        assert_eq!(
            list("9000-9010, 25,587 ,  443").to_string(),
            "25, 443, 587, 9000-9010"
        );
        // Overlapping, adjacent and repeated entries collapse: nft refuses overlaps.
        assert_eq!(list("10-20,15-30,31,5,5").to_string(), "5, 10-31");
        assert_eq!(list("1-65535,80").to_string(), "1-65535");
        assert!(list("25,9000-9010").contains(9005));
        assert!(!list("25,9000-9010").contains(26));
        assert_eq!(
            list("25").union(&list("26,80")).to_string(),
            "25-26, 80",
            "a union merges"
        );
    }

    #[test]
    fn bad_lists_say_what_is_wrong() {
        for (input, says) in [
            ("80,,81", "empty item"),
            ("80,", "empty item"),
            ("http", "\"http\" is not a port"),
            ("70000", "\"70000\" is not a port"),
            ("-5", "\"\" is not a port"),
            ("0", "port 0"),
            ("0-10", "port 0"),
            ("90-80", "is empty"),
            ("80-", "\"\" is not a port"),
        ] {
            let err = input.parse::<PortList>().unwrap_err().to_string();
            assert!(err.contains(says), "{input}: {err}");
            assert!(err.contains(&format!("{input:?}")), "{input}: {err}");
        }
    }
}
