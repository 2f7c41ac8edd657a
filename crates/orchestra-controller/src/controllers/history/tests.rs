//! The history decisions: create, renumber, trim; and rollbacks (on daemon sets, and where a
//! stateful set differs).

use std::sync::Arc;

use orchestra_api::resources::{
    ControllerRevision, DaemonSet, Pod, StatefulSet, StatefulSetStatus,
};
use orchestra_api::{LabelSelector, ObjectMeta};

use super::*;

fn ds(image: &str) -> DaemonSet {
    let mut ds = DaemonSet {
        metadata: ObjectMeta::namespaced("ns", "agent"),
        ..DaemonSet::default()
    };
    ds.metadata.uid = "ds-uid".into();
    ds.spec.selector = LabelSelector::match_labels([("app", "agent")]);
    ds.spec
        .template
        .metadata
        .labels
        .insert("app".into(), "agent".into());
    ds.spec.template.spec.containers = vec![orchestra_api::resources::Container {
        name: "agent".into(),
        image: image.into(),
        ..Default::default()
    }];
    ds.spec.revision_history_limit = Some(10);
    ds
}

/// The revision the controller would have written for `ds`'s template, numbered `number`, with
/// its uid set as the API server would.
fn stored(ds: &DaemonSet, number: i64) -> Arc<ControllerRevision> {
    let mut revision = plan_history(ds, &[], &[]).create.expect("a first revision");
    revision.revision = number;
    revision.metadata.uid = format!("rev-{number}");
    Arc::new(revision)
}

fn pod_running(hash: &str) -> Arc<Pod> {
    let mut pod = Pod::default();
    pod.metadata
        .labels
        .insert(REVISION_HASH_LABEL.into(), hash.into());
    Arc::new(pod)
}

#[test]
fn the_first_sync_records_revision_1_owned_by_the_daemon_set() {
    let ds = ds("agent:1");
    let plan = plan_history(&ds, &[], &[]);
    let revision = plan.create.expect("created");
    let hash = current_hash(&ds);
    assert_eq!(revision.metadata.name, format!("agent-{hash}"));
    assert_eq!(revision.metadata.namespace, "ns");
    assert_eq!(revision.revision, 1);
    assert_eq!(
        revision.metadata.labels.get(REVISION_HASH_LABEL),
        Some(&hash)
    );
    assert_eq!(
        revision.metadata.labels.get("app").map(String::as_str),
        Some("agent")
    );
    let owner = revision.metadata.controller_ref().expect("controller ref");
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("DaemonSet", "ds-uid")
    );
    assert_eq!(revision.data["spec"]["template"]["$patch"], "replace");
    assert_eq!(revision_template(&revision), Some(ds.spec.template.clone()));
    assert_eq!(plan.renumber, None);
    assert!(plan.delete.is_empty());
}

#[test]
fn an_unchanged_template_writes_nothing() {
    let ds = ds("agent:1");
    let plan = plan_history(&ds, &[stored(&ds, 1)], &[pod_running(&current_hash(&ds))]);
    assert_eq!(plan, HistoryPlan::default());
}

#[test]
fn a_new_template_gets_the_next_number_and_the_old_one_stays() {
    let v1 = ds("agent:1");
    let v2 = ds("agent:2");
    let plan = plan_history(&v2, &[stored(&v1, 1)], &[pod_running(&current_hash(&v1))]);
    assert_eq!(plan.create.map(|r| r.revision), Some(2));
    assert!(plan.delete.is_empty());
}

#[test]
fn a_template_that_comes_back_is_renumbered_not_copied() {
    let v1 = ds("agent:1");
    let v2 = ds("agent:2");
    let history = [stored(&v1, 1), stored(&v2, 2)];
    let plan = plan_history(&v1, &history, &[]);
    assert_eq!(plan.create, None);
    assert_eq!(plan.renumber, Some((history[0].metadata.name.clone(), 3)));
}

#[test]
fn a_hash_label_with_other_data_is_not_the_current_revision() {
    let v1 = ds("agent:1");
    let mut forged = (*stored(&v1, 1)).clone();
    forged.data = serde_json::json!({"spec": {"template": {"metadata": {"labels": {"x": "y"}}}}});
    let plan = plan_history(&v1, &[Arc::new(forged)], &[]);
    assert_eq!(plan.create.map(|r| r.revision), Some(2));
}

#[test]
fn old_revisions_beyond_the_limit_go_oldest_first_unless_a_pod_runs_them() {
    let mut current = ds("agent:current");
    current.spec.revision_history_limit = Some(2);
    let mut history: Vec<Arc<ControllerRevision>> = (1..=5)
        .map(|n| stored(&ds(&format!("agent:{n}")), n))
        .collect();
    history.push(stored(&current, 6));
    // A pod still runs revision 1: it is kept whatever its age.
    let hash_1 = history[0].metadata.labels[REVISION_HASH_LABEL].clone();
    let plan = plan_history(&current, &history, &[pod_running(&hash_1)]);
    // Unused old ones: 2, 3, 4, 5; two may stay (4, 5).
    let names = |ns: &[i64]| -> Vec<String> {
        ns.iter()
            .map(|n| {
                history[usize::try_from(*n - 1).unwrap()]
                    .metadata
                    .name
                    .clone()
            })
            .collect()
    };
    assert_eq!(plan.delete, names(&[2, 3]));
    assert_eq!(plan.create, None);
    assert_eq!(plan.renumber, None);

    current.spec.revision_history_limit = Some(0);
    let plan = plan_history(&current, &history, &[]);
    assert_eq!(plan.delete, names(&[1, 2, 3, 4, 5]));
}

#[test]
fn rollback_goes_to_the_previous_revision_or_the_one_named() {
    let (v1, v2, v3) = (ds("agent:1"), ds("agent:2"), ds("agent:3"));
    let history: Vec<ControllerRevision> = [stored(&v1, 1), stored(&v2, 2), stored(&v3, 3)]
        .into_iter()
        .map(Arc::unwrap_or_clone)
        .collect();
    match rollback(&v3, &history, None).unwrap() {
        RevisionRollback::To { revision, template } => {
            assert_eq!(revision, 2);
            assert_eq!(*template, v2.spec.template);
        }
        other => panic!("expected a rollback to 2, got {other:?}"),
    }
    match rollback(&v3, &history, Some(1)).unwrap() {
        RevisionRollback::To { revision, template } => {
            assert_eq!(revision, 1);
            assert_eq!(*template, v1.spec.template);
        }
        other => panic!("expected a rollback to 1, got {other:?}"),
    }
    assert_eq!(
        rollback(&v3, &history, Some(3)).unwrap(),
        RevisionRollback::AlreadyThere { revision: 3 }
    );
    assert_eq!(
        rollback(&v3, &history, Some(9)).unwrap_err().to_string(),
        "unable to find specified revision 9 in history"
    );
    assert_eq!(
        rollback(&v1, &history[..1], None).unwrap_err(),
        RevisionRollbackError::NoHistory {
            kind: "daemonset".into(),
            name: "agent".into()
        }
    );
}

#[test]
fn only_revisions_the_daemon_set_controls_are_its_own() {
    let v1 = ds("agent:1");
    let mine = Arc::unwrap_or_clone(stored(&v1, 1));
    let mut other = mine.clone();
    other.metadata.owner_references[0].uid = "someone-else".into();
    let all = [mine.clone(), other];
    let owned: Vec<&ControllerRevision> = owned_by(&v1, &all).collect();
    assert_eq!(owned, vec![&mine]);
}

#[test]
fn a_stateful_set_keeps_its_current_revision_and_those_its_pods_name() {
    let sts = |image: &str, current: &str| {
        let mut sts = StatefulSet {
            metadata: ObjectMeta::namespaced("ns", "db"),
            ..StatefulSet::default()
        };
        sts.metadata.uid = "sts-uid".into();
        sts.spec.template = ds(image).spec.template;
        sts.spec.revision_history_limit = Some(0);
        sts.status = Some(StatefulSetStatus {
            current_revision: current.into(),
            ..StatefulSetStatus::default()
        });
        sts
    };
    let stored = |sts: &StatefulSet, number: i64| {
        let mut revision = plan_history(sts, &[], &[])
            .create
            .expect("a first revision");
        revision.revision = number;
        revision.metadata.uid = format!("rev-{number}");
        Arc::new(revision)
    };
    let history = [
        stored(&sts("db:1", ""), 1),
        stored(&sts("db:2", ""), 2),
        stored(&sts("db:3", ""), 3),
    ];
    let name = |n: usize| history[n - 1].metadata.name.clone();
    assert!(name(1).starts_with("db-"));
    // Revision 1 is the current revision (pods below the partition), a pod runs revision 2
    // (its label holds the revision's name); the template is revision 4's.
    let owner = sts("db:4", &name(1));
    let plan = plan_history(&owner, &history, &[pod_running(&name(2))]);
    assert_eq!(plan.create.map(|r| r.revision), Some(4));
    assert_eq!(plan.delete, [name(3)]);
    assert_eq!(
        rollback(&owner, &[], None).unwrap_err().to_string(),
        "no rollout history found for statefulset \"db\""
    );
}
