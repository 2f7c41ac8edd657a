//! [`TrafficSplit`]: weighted backends for a service, as SMI's TrafficSplit describes them
//! (a canary: `web` answered 90% by `web-v1` and 10% by `web-v2`). Requests for the apex
//! service go to one of its backend services, chosen by [`SplitPicker`], a smooth weighted
//! round-robin (nginx's): deterministic, exact over every cycle of the total weight, and
//! interleaved rather than bursty (weights 2:1 give a, b, a, not a, a, b). Backends without
//! a ready endpoint are skipped, so a canary with no pods yet takes no traffic.

use std::collections::HashSet;

use crate::table::ServiceKey;

/// One backend of a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedBackend {
    /// The backend service (same namespace or not).
    pub service: ServiceKey,
    /// Its share, relative to the others' (0: none).
    pub weight: u32,
}

/// A service's weighted backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficSplit {
    /// The backends.
    pub backends: Vec<WeightedBackend>,
}

/// Why a split is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// No backend has a weight above zero.
    #[error("the traffic split has no backend with a weight above 0")]
    NoWeight,
    /// A backend is listed twice.
    #[error("the traffic split lists backend {0} twice")]
    Duplicate(ServiceKey),
}

impl TrafficSplit {
    /// Checks the split: at least one positive weight, no backend twice.
    pub fn validate(&self) -> Result<(), SplitError> {
        let mut seen = HashSet::new();
        for backend in &self.backends {
            if !seen.insert(&backend.service) {
                return Err(SplitError::Duplicate(backend.service.clone()));
            }
        }
        if self.backends.iter().all(|b| b.weight == 0) {
            return Err(SplitError::NoWeight);
        }
        Ok(())
    }
}

/// Picks a split's backends in proportion to their weights (see the module docs).
#[derive(Debug, Clone)]
pub struct SplitPicker {
    split: TrafficSplit,
    current: Vec<i64>,
}

impl SplitPicker {
    /// A picker for a valid split.
    pub fn new(split: TrafficSplit) -> Result<Self, SplitError> {
        split.validate()?;
        let current = vec![0; split.backends.len()];
        Ok(SplitPicker { split, current })
    }

    /// The split.
    pub fn split(&self) -> &TrafficSplit {
        &self.split
    }

    /// The next backend among those `available` says can take requests (`None`: none
    /// can).
    pub fn pick(&mut self, available: impl Fn(&ServiceKey) -> bool) -> Option<&ServiceKey> {
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, backend) in self.split.backends.iter().enumerate() {
            if backend.weight == 0 || !available(&backend.service) {
                continue;
            }
            let weight = i64::from(backend.weight);
            self.current[i] += weight;
            total += weight;
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let best = best?;
        self.current[best] -= total;
        Some(&self.split.backends[best].service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ServiceKey {
        ServiceKey::new("shop", name, "")
    }

    fn split(weights: &[(&str, u32)]) -> TrafficSplit {
        TrafficSplit {
            backends: weights
                .iter()
                .map(|(name, weight)| WeightedBackend {
                    service: key(name),
                    weight: *weight,
                })
                .collect(),
        }
    }

    fn counts(
        picker: &mut SplitPicker,
        n: usize,
        available: impl Fn(&ServiceKey) -> bool,
    ) -> Vec<(String, usize)> {
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for _ in 0..n {
            let picked = picker.pick(&available).unwrap().name.clone();
            *counts.entry(picked).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    #[test]
    fn weights_are_exact_over_each_cycle_and_interleaved() {
        let mut picker = SplitPicker::new(split(&[("v1", 90), ("v2", 10)])).unwrap();
        assert_eq!(
            counts(&mut picker, 1000, |_| true),
            [("v1".to_owned(), 900), ("v2".to_owned(), 100)]
        );
        // 2:1 interleaves.
        let mut picker = SplitPicker::new(split(&[("a", 2), ("b", 1)])).unwrap();
        let order: Vec<String> = (0..6)
            .map(|_| picker.pick(|_| true).unwrap().name.clone())
            .collect();
        assert_eq!(order, ["a", "b", "a", "a", "b", "a"]);
    }

    #[test]
    fn unavailable_and_zero_weight_backends_get_nothing() {
        let mut picker = SplitPicker::new(split(&[("v1", 50), ("v2", 50), ("off", 0)])).unwrap();
        assert_eq!(
            counts(&mut picker, 10, |k| k.name != "v2"),
            [("v1".to_owned(), 10)]
        );
        assert_eq!(picker.pick(|_| false), None);
    }

    #[test]
    fn invalid_splits_are_refused_by_name() {
        assert_eq!(
            SplitPicker::new(split(&[("v1", 0)])).unwrap_err(),
            SplitError::NoWeight
        );
        assert_eq!(
            SplitPicker::new(split(&[])).unwrap_err(),
            SplitError::NoWeight
        );
        let error = SplitPicker::new(split(&[("v1", 1), ("v1", 2)])).unwrap_err();
        assert!(error.to_string().contains("shop/v1"), "{error}");
    }
}
