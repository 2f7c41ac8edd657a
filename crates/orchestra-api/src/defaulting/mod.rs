//! Defaulting: the values Kubernetes fills in when a field is left out, applied by the API
//! server to every object it stores (through [`Resource::apply_defaults`](crate::Resource)),
//! so that controllers and the node agent read complete objects.
//!
//! | kind | defaults |
//! |---|---|
//! | every namespaced kind | `metadata.namespace: default` |
//! | Pod (and pod templates) | `restartPolicy: Always`, `terminationGracePeriodSeconds: 30`, `dnsPolicy: ClusterFirst`, `schedulerName: default-scheduler`, `preemptionPolicy: PreemptLowerPriority`; per container `imagePullPolicy` (`Always` for `:latest` or no tag, else `IfNotPresent`), port `protocol: TCP`, requests = limits where only limits are given, probe timing (`timeoutSeconds: 1`, `periodSeconds: 10`, `successThreshold: 1`, `failureThreshold: 3`), `httpGet` `path: /` and `scheme: HTTP`, `fieldRef` `apiVersion: v1`; volumes' `defaultMode: 0644` (ConfigMap, Secret, downward API) |
//! | ReplicaSet | `replicas: 1` |
//! | Deployment | `replicas: 1`, `strategy: RollingUpdate` with `maxSurge: 25%`, `maxUnavailable: 25%`, `revisionHistoryLimit: 10`, `progressDeadlineSeconds: 600` |
//! | Service | `type: ClusterIP`, `sessionAffinity: None` (`ClientIP` gets `timeoutSeconds: 10800`), port `protocol: TCP`, `targetPort` = `port` |
//! | Endpoints | port `protocol: TCP` |
//! | Node | `allocatable` = `capacity` when absent |
//! | Namespace | `status.phase: Active` |
//! | Job | `parallelism: 1`, `completions: 1` (when neither is given), `backoffLimit: 6`, `completionMode: NonIndexed`, `suspend: false`; on create a generated selector (`batch.kubernetes.io/controller-uid`) |
//! | DaemonSet | `updateStrategy: RollingUpdate` with `maxUnavailable: 1`, `maxSurge: 0`, `revisionHistoryLimit: 10` |
//! | StatefulSet | `replicas: 1`, `podManagementPolicy: OrderedReady`, `updateStrategy: RollingUpdate` with `partition: 0`, `maxUnavailable: 1`, `revisionHistoryLimit: 10` |
//! | Secret | `type: Opaque`; `stringData` merged into `data` |

mod apps;
mod node;
mod pod;
mod service;
mod stateful_set;
mod workloads;

pub use apps::{default_deployment, default_replica_set};
pub use node::default_node;
pub use pod::{default_container, default_pod_spec, default_volume, image_pull_policy};
pub use service::default_service_spec;
pub use stateful_set::default_stateful_set;
pub use workloads::{default_daemon_set, default_job, default_secret, generate_job_selector};

use crate::meta::ObjectMeta;

/// The namespace objects land in when they name none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Sets `namespace: default` on a namespaced object that names none.
pub fn default_object_meta(meta: &mut ObjectMeta, namespaced: bool) {
    if namespaced && meta.namespace.is_empty() {
        meta.namespace = DEFAULT_NAMESPACE.to_owned();
    }
}
