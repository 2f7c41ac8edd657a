//! Defaults of StatefulSets.

use super::pod::default_pod_spec;
use crate::meta::IntOrString;
use crate::resources::{
    PodManagementPolicyType, RollingUpdateStatefulSetStrategy, StatefulSet,
    StatefulSetUpdateStrategy, StatefulSetUpdateStrategyType,
};

/// Fills a StatefulSet's defaults: `replicas: 1`, `podManagementPolicy: OrderedReady`,
/// `updateStrategy: RollingUpdate` with `partition: 0` and `maxUnavailable: 1`,
/// `revisionHistoryLimit: 10`, and the template's pod defaults.
pub fn default_stateful_set(sts: &mut StatefulSet) {
    let spec = &mut sts.spec;
    spec.replicas.get_or_insert(1);
    spec.pod_management_policy
        .get_or_insert(PodManagementPolicyType::OrderedReady);
    let strategy = spec
        .update_strategy
        .get_or_insert_with(StatefulSetUpdateStrategy::default);
    let type_ = *strategy
        .type_
        .get_or_insert(StatefulSetUpdateStrategyType::RollingUpdate);
    if type_ == StatefulSetUpdateStrategyType::RollingUpdate {
        let rolling = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateStatefulSetStrategy::default);
        rolling.partition.get_or_insert(0);
        rolling.max_unavailable.get_or_insert(IntOrString::Int(1));
    }
    spec.revision_history_limit.get_or_insert(10);
    default_pod_spec(&mut spec.template.spec);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_rolling_one_at_a_time_by_default() {
        let mut sts = StatefulSet::default();
        default_stateful_set(&mut sts);
        assert_eq!(sts.spec.replicas, Some(1));
        assert_eq!(
            sts.spec.pod_management_policy,
            Some(PodManagementPolicyType::OrderedReady)
        );
        let strategy = sts.spec.update_strategy.unwrap();
        assert_eq!(
            strategy.type_,
            Some(StatefulSetUpdateStrategyType::RollingUpdate)
        );
        let rolling = strategy.rolling_update.unwrap();
        assert_eq!(
            (rolling.partition, rolling.max_unavailable),
            (Some(0), Some(IntOrString::Int(1)))
        );
        assert_eq!(sts.spec.revision_history_limit, Some(10));
    }

    #[test]
    fn on_delete_gets_no_rolling_settings() {
        let mut sts = StatefulSet::default();
        sts.spec.update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some(StatefulSetUpdateStrategyType::OnDelete),
            rolling_update: None,
        });
        default_stateful_set(&mut sts);
        assert_eq!(sts.spec.update_strategy.unwrap().rolling_update, None);
    }
}
