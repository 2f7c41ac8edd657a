//! Which pod conditions the node agent owns, readiness gates, and keeping the conditions that
//! others write.
//!
//! As in kubelet, the agent owns `PodScheduled`, `Initialized`, `ContainersReady` and `Ready`;
//! every other condition in `status.conditions` belongs to whoever wrote it (a controller
//! implementing a readiness gate, the eviction machinery...). The agent reads them (a pod's
//! `Ready` is `True` only when its containers are ready and each of `spec.readinessGates` has
//! its condition `True`) and keeps them in every status it writes: [`with_foreign_conditions`]
//! merges the latest ones it has seen into its own status.

use orchestra_api::resources::{ConditionStatus, Pod, PodCondition, PodStatus};

/// The condition types the node agent sets; every other type is someone else's.
pub const AGENT_CONDITIONS: [&str; 4] = ["PodScheduled", "Initialized", "ContainersReady", "Ready"];

/// Kubelet's reason for a `Ready` condition held back by a readiness gate.
pub const READINESS_GATES_NOT_READY: &str = "ReadinessGatesNotReady";

/// Whether the node agent owns conditions of type `type_`.
pub fn is_agent_condition(type_: &str) -> bool {
    AGENT_CONDITIONS.contains(&type_)
}

/// Why the pod's readiness gates hold `Ready` back (kubelet's message), or `None` when each
/// gate's condition is `True` in `conditions`.
pub fn unmet_gates(pod: &Pod, conditions: &[PodCondition]) -> Option<String> {
    let messages: Vec<String> = pod
        .spec
        .readiness_gates
        .iter()
        .filter_map(|gate| {
            let type_ = gate.condition_type.as_str();
            match conditions.iter().find(|c| c.type_ == type_) {
                None => Some(format!(
                    "corresponding condition of pod readiness gate {type_:?} does not exist."
                )),
                Some(c) if c.status != ConditionStatus::True => Some(format!(
                    "the status of pod readiness gate {type_:?} is not \"True\", but {}",
                    condition_status(c.status)
                )),
                Some(_) => None,
            }
        })
        .collect();
    (!messages.is_empty()).then(|| messages.join(", "))
}

fn condition_status(status: ConditionStatus) -> &'static str {
    match status {
        ConditionStatus::True => "True",
        ConditionStatus::False => "False",
        ConditionStatus::Unknown => "Unknown",
    }
}

/// `own` (the agent's status, whose conditions are the agent's) with the conditions of other
/// writers taken from `latest` (the freshest status read from the API), after the agent's.
pub fn with_foreign_conditions(own: &PodStatus, latest: Option<&PodStatus>) -> PodStatus {
    let mut merged = own.clone();
    merged.conditions.retain(|c| is_agent_condition(&c.type_));
    merged.conditions.extend(
        latest
            .into_iter()
            .flat_map(|s| &s.conditions)
            .filter(|c| !is_agent_condition(&c.type_))
            .cloned(),
    );
    merged
}

/// Whether `status` carries conditions of other writers.
pub fn has_foreign_conditions(status: Option<&PodStatus>) -> bool {
    status.is_some_and(|s| s.conditions.iter().any(|c| !is_agent_condition(&c.type_)))
}

#[cfg(test)]
mod tests {
    use orchestra_api::resources::PodReadinessGate;

    use super::*;

    fn cond(type_: &str, status: ConditionStatus) -> PodCondition {
        PodCondition {
            type_: type_.into(),
            status,
            ..PodCondition::default()
        }
    }

    fn gated(gates: &[&str]) -> Pod {
        let mut pod = Pod::default();
        pod.spec.readiness_gates = gates
            .iter()
            .map(|g| PodReadinessGate {
                condition_type: (*g).into(),
            })
            .collect();
        pod
    }

    #[test]
    fn gates_need_their_conditions_true() {
        let pod = gated(&["example.com/a", "example.com/b", "example.com/c"]);
        assert_eq!(unmet_gates(&gated(&[]), &[]), None);
        assert_eq!(
            unmet_gates(&pod, &[cond("example.com/b", ConditionStatus::False)]).unwrap(),
            "corresponding condition of pod readiness gate \"example.com/a\" does not exist., \
             the status of pod readiness gate \"example.com/b\" is not \"True\", but False, \
             corresponding condition of pod readiness gate \"example.com/c\" does not exist."
        );
        let all = [
            cond("example.com/a", ConditionStatus::True),
            cond("example.com/b", ConditionStatus::True),
            cond("example.com/c", ConditionStatus::Unknown),
        ];
        assert_eq!(
            unmet_gates(&pod, &all).unwrap(),
            "the status of pod readiness gate \"example.com/c\" is not \"True\", but Unknown"
        );
        let mut all = all.to_vec();
        all[2].status = ConditionStatus::True;
        assert_eq!(unmet_gates(&pod, &all), None);
    }

    #[test]
    fn foreign_conditions_are_kept_and_the_agents_replaced() {
        let own = PodStatus {
            conditions: vec![
                cond("Ready", ConditionStatus::True),
                // Not the agent's to write: dropped in favour of the API's.
                cond("example.com/a", ConditionStatus::False),
            ],
            ..PodStatus::default()
        };
        let latest = PodStatus {
            conditions: vec![
                cond("Ready", ConditionStatus::False),
                cond("example.com/a", ConditionStatus::True),
                cond("DisruptionTarget", ConditionStatus::True),
            ],
            ..PodStatus::default()
        };
        let merged = with_foreign_conditions(&own, Some(&latest));
        assert_eq!(
            merged.conditions,
            vec![
                cond("Ready", ConditionStatus::True),
                cond("example.com/a", ConditionStatus::True),
                cond("DisruptionTarget", ConditionStatus::True),
            ]
        );
        assert!(has_foreign_conditions(Some(&latest)));
        assert!(!has_foreign_conditions(Some(&with_foreign_conditions(
            &own, None
        ))));
        assert!(!has_foreign_conditions(None));
        assert_eq!(
            with_foreign_conditions(&own, None).conditions,
            vec![cond("Ready", ConditionStatus::True)]
        );
    }
}
