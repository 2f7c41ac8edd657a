//! [`Threshold`]: the consecutive-success and consecutive-failure counting of a probe, pure.

/// Turns single probe outcomes into a verdict: it becomes a success after `success`
/// consecutive successes and a failure after `failure` consecutive failures, as Kubernetes'
/// `successThreshold` and `failureThreshold`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threshold {
    success: u32,
    failure: u32,
    successes: u32,
    failures: u32,
    verdict: Option<bool>,
}

impl Threshold {
    /// A counter with the given thresholds (at least 1 each) and initial verdict (`None`:
    /// unknown, as a startup probe starts; readiness starts failed, liveness succeeded).
    pub fn new(success: u32, failure: u32, initial: Option<bool>) -> Self {
        Threshold {
            success: success.max(1),
            failure: failure.max(1),
            successes: 0,
            failures: 0,
            verdict: initial,
        }
    }

    /// The current verdict.
    pub fn verdict(&self) -> Option<bool> {
        self.verdict
    }

    /// Records one outcome; returns the new verdict when it changed.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
        if ok {
            self.successes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.successes = 0;
        }
        let next = if ok && self.successes >= self.success {
            Some(true)
        } else if !ok && self.failures >= self.failure {
            Some(false)
        } else {
            self.verdict
        };
        let changed = next != self.verdict;
        self.verdict = next;
        changed.then_some(next).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::Threshold;

    #[test]
    fn failure_needs_consecutive_failures() {
        let mut t = Threshold::new(1, 3, Some(true));
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), Some(false));
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(true), Some(true));
    }

    #[test]
    fn success_threshold_counts_too() {
        let mut t = Threshold::new(2, 1, Some(false));
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(true), Some(true));
        assert_eq!(t.record(false), Some(false));
    }

    #[test]
    fn unknown_becomes_known_on_either_threshold() {
        let mut t = Threshold::new(1, 2, None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.verdict(), None);
        assert_eq!(t.record(false), Some(false));
        let mut t = Threshold::new(1, 2, None);
        assert_eq!(t.record(true), Some(true));
    }
}
