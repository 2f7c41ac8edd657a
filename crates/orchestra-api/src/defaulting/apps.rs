//! Defaults of ReplicaSets and Deployments.

use super::pod::default_pod_spec;
use crate::meta::IntOrString;
use crate::resources::{
    Deployment, DeploymentStrategy, DeploymentStrategyType, ReplicaSet, RollingUpdateDeployment,
};

/// Fills a ReplicaSet's defaults: `replicas: 1` and the template's pod defaults.
pub fn default_replica_set(rs: &mut ReplicaSet) {
    rs.spec.replicas.get_or_insert(1);
    default_pod_spec(&mut rs.spec.template.spec);
}

/// Fills a Deployment's defaults: `replicas: 1`, a RollingUpdate strategy of 25%/25%,
/// `revisionHistoryLimit: 10`, `progressDeadlineSeconds: 600`, and the template's pod
/// defaults.
pub fn default_deployment(d: &mut Deployment) {
    let spec = &mut d.spec;
    spec.replicas.get_or_insert(1);
    let strategy = spec
        .strategy
        .get_or_insert_with(DeploymentStrategy::default);
    let type_ = *strategy
        .type_
        .get_or_insert(DeploymentStrategyType::RollingUpdate);
    if type_ == DeploymentStrategyType::RollingUpdate {
        let rolling = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDeployment::default);
        rolling
            .max_unavailable
            .get_or_insert_with(|| IntOrString::from("25%"));
        rolling
            .max_surge
            .get_or_insert_with(|| IntOrString::from("25%"));
    }
    spec.revision_history_limit.get_or_insert(10);
    spec.progress_deadline_seconds.get_or_insert(600);
    default_pod_spec(&mut spec.template.spec);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_defaults() {
        let mut d = Deployment::default();
        default_deployment(&mut d);
        let strategy = d.spec.strategy.as_ref().unwrap();
        assert_eq!(strategy.type_, Some(DeploymentStrategyType::RollingUpdate));
        let rolling = strategy.rolling_update.as_ref().unwrap();
        assert_eq!(rolling.max_surge, Some("25%".into()));
        assert_eq!(rolling.max_unavailable, Some("25%".into()));
        assert_eq!(d.spec.replicas, Some(1));
        assert_eq!(d.spec.revision_history_limit, Some(10));
        assert_eq!(d.spec.progress_deadline_seconds, Some(600));
    }

    #[test]
    fn recreate_gets_no_rolling_update() {
        let mut d = Deployment::default();
        d.spec.strategy = Some(DeploymentStrategy {
            type_: Some(DeploymentStrategyType::Recreate),
            rolling_update: None,
        });
        default_deployment(&mut d);
        assert_eq!(d.spec.strategy.unwrap().rolling_update, None);
    }
}
