//! [`DefaultTolerationSeconds`]: every new pod tolerates the `NoExecute` taints of a not-ready
//! or unreachable node for a while (300 s), so a short node outage does not evict it at once.

use async_trait::async_trait;

use super::{AdmissionPlugin, AdmissionRequest, Operation};
use crate::registry::ApiError;
use crate::resources::{Pod, Taint, TaintEffect, Toleration, TolerationOperator};

/// The taint of a node whose Ready condition is not true.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a node that stopped reporting.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Kubernetes' `DefaultTolerationSeconds` admission controller: on pod creation, adds
/// `{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute,
/// tolerationSeconds: 300}` and the same for `node.kubernetes.io/unreachable`, unless the pod
/// tolerates that taint already.
#[derive(Clone, Copy, Debug)]
pub struct DefaultTolerationSeconds {
    /// How long a pod stays on a not-ready node (Kubernetes: 300 s).
    pub not_ready_seconds: i64,
    /// How long a pod stays on an unreachable node (Kubernetes: 300 s).
    pub unreachable_seconds: i64,
}

impl Default for DefaultTolerationSeconds {
    fn default() -> Self {
        DefaultTolerationSeconds {
            not_ready_seconds: 300,
            unreachable_seconds: 300,
        }
    }
}

impl DefaultTolerationSeconds {
    /// Adds the two tolerations a pod lacks.
    pub fn apply(&self, pod: &mut Pod) {
        for (key, seconds) in [
            (TAINT_NOT_READY, self.not_ready_seconds),
            (TAINT_UNREACHABLE, self.unreachable_seconds),
        ] {
            let taint = Taint {
                key: key.to_owned(),
                effect: TaintEffect::NoExecute,
                ..Taint::default()
            };
            if !pod.spec.tolerations.iter().any(|t| t.tolerates(&taint)) {
                pod.spec.tolerations.push(Toleration {
                    key: key.to_owned(),
                    operator: Some(TolerationOperator::Exists),
                    effect: Some(TaintEffect::NoExecute),
                    toleration_seconds: Some(seconds),
                    ..Toleration::default()
                });
            }
        }
    }
}

#[async_trait]
impl AdmissionPlugin for DefaultTolerationSeconds {
    fn name(&self) -> &'static str {
        "DefaultTolerationSeconds"
    }

    async fn mutate(&self, request: &mut AdmissionRequest<'_>) -> Result<(), ApiError> {
        if request.operation() != Operation::Create {
            return Ok(());
        }
        if let Some(pod) = request.object_mut().and_then(|o| o.downcast_mut::<Pod>()) {
            self.apply(pod);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pod: &Pod) -> Vec<(&str, Option<i64>)> {
        pod.spec
            .tolerations
            .iter()
            .map(|t| (t.key.as_str(), t.toleration_seconds))
            .collect()
    }

    #[test]
    fn adds_both_tolerations_with_300_seconds() {
        let mut pod = Pod::default();
        DefaultTolerationSeconds::default().apply(&mut pod);
        assert_eq!(
            keys(&pod),
            [(TAINT_NOT_READY, Some(300)), (TAINT_UNREACHABLE, Some(300))]
        );
        assert_eq!(pod.spec.tolerations[0].effect, Some(TaintEffect::NoExecute));
    }

    #[test]
    fn keeps_a_pods_own_toleration() {
        let mut pod = Pod::default();
        pod.spec.tolerations.push(Toleration {
            key: TAINT_UNREACHABLE.into(),
            operator: Some(TolerationOperator::Exists),
            effect: Some(TaintEffect::NoExecute),
            toleration_seconds: Some(5),
            ..Toleration::default()
        });
        DefaultTolerationSeconds::default().apply(&mut pod);
        assert_eq!(
            keys(&pod),
            [(TAINT_UNREACHABLE, Some(5)), (TAINT_NOT_READY, Some(300))]
        );
        // A pod that tolerates everything gets nothing.
        let mut all = Pod::default();
        all.spec.tolerations.push(Toleration {
            operator: Some(TolerationOperator::Exists),
            ..Toleration::default()
        });
        DefaultTolerationSeconds::default().apply(&mut all);
        assert_eq!(all.spec.tolerations.len(), 1);
    }
}
