//! The built-in kinds, with Kubernetes' shapes and JSON names: [`Namespace`], [`Node`],
//! [`Pod`], [`Service`], [`Endpoints`], [`ConfigMap`], [`Secret`], [`ServiceAccount`] (`v1`);
//! [`ReplicaSet`], [`Deployment`], [`DaemonSet`], [`StatefulSet`], [`ControllerRevision`]
//! (`apps/v1`); [`Job`]
//! (`batch/v1`); [`Lease`]
//! (`coordination.k8s.io/v1`); [`Event`] (`v1`); [`Role`], [`ClusterRole`], [`RoleBinding`],
//! [`ClusterRoleBinding`] (`rbac.authorization.k8s.io/v1`); [`PodGroup`]
//! (`scheduling.x-k8s.io/v1alpha1`); [`TrafficSplit`] (`mesh.orchestra.dev/v1alpha1`, the
//! mesh's weighted backends, after SMI's).
//!
//! Each kind implements [`Resource`](crate::Resource). Serializing one with serde gives its
//! body (`metadata`, `spec`, `status`); [`crate::to_value`] adds `apiVersion` and `kind`, and
//! [`crate::Scheme`] decodes full objects by them.

pub mod common;
pub mod config;
pub mod controller_revision;
pub mod daemon_set;
pub mod deployment;
pub mod endpoints;
pub mod event;
pub(crate) mod exact_vec;
pub(crate) mod file_mode;
pub mod job;
pub mod lease;
pub mod namespace;
pub mod node;
pub mod pod;
pub mod pod_group;
pub mod rbac;
pub mod replica_set;
pub mod service;
pub mod service_account;
pub mod stateful_set;
pub mod traffic_split;

pub use common::*;
pub use config::*;
pub use controller_revision::*;
pub use daemon_set::*;
pub use deployment::*;
pub use endpoints::*;
pub use event::*;
pub use job::*;
pub use lease::*;
pub use namespace::*;
pub use node::*;
pub use pod::*;
pub use pod_group::*;
pub use rbac::*;
pub use replica_set::*;
pub use service::*;
pub use service_account::*;
pub use stateful_set::*;
pub use traffic_split::*;

#[cfg(test)]
mod tests {
    //! Every kind with every field set, as `kubectl get -o json` prints it, must decode
    //! without unknown fields and encode back to the same JSON: this pins the JSON names.

    use serde_json::{Value, json};

    use crate::Scheme;

    fn round_trip(value: Value) {
        let decoded = Scheme::new().decode(value.clone()).unwrap();
        assert!(
            decoded.unknown_fields.is_empty(),
            "unknown: {:?}",
            decoded.unknown_fields
        );
        assert_eq!(decoded.object.to_json().unwrap(), value);
    }

    const T: &str = "2024-05-01T12:00:00Z";
    const MT: &str = "2024-05-01T12:00:00.123456Z";

    #[test]
    fn pod() {
        round_trip(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web-7d4b9-x2x7q", "generateName": "web-7d4b9-", "namespace": "shop",
                "uid": "0b5c", "resourceVersion": "1042", "generation": 1,
                "labels": {"app": "web"}, "annotations": {"a": "b"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9", "uid": "9f", "controller": true, "blockOwnerDeletion": true}],
                "finalizers": ["example.com/cleanup"],
                "creationTimestamp": T, "deletionTimestamp": T, "deletionGracePeriodSeconds": 30
            },
            "spec": {
                "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
                "containers": [{
                    "name": "web", "image": "nginx:1.27", "command": ["nginx"], "args": ["-g", "daemon off;"],
                    "workingDir": "/srv", "imagePullPolicy": "IfNotPresent",
                    "ports": [{"name": "http", "containerPort": 80, "hostPort": 8080, "hostIP": "0.0.0.0", "protocol": "TCP"}],
                    "env": [
                        {"name": "A", "value": "1"},
                        {"name": "B", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                        {"name": "C", "valueFrom": {"resourceFieldRef": {"containerName": "web", "resource": "limits.memory", "divisor": "1Mi"}}},
                        {"name": "D", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k", "optional": true}}},
                        {"name": "E", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
                    ],
                    "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "512Mi"}},
                    "livenessProbe": {"httpGet": {"path": "/", "port": 80, "host": "localhost", "scheme": "HTTPS", "httpHeaders": [{"name": "X", "value": "y"}]},
                        "initialDelaySeconds": 1, "timeoutSeconds": 2, "periodSeconds": 3, "successThreshold": 1, "failureThreshold": 4, "terminationGracePeriodSeconds": 5},
                    "readinessProbe": {"tcpSocket": {"port": "http", "host": "h"}},
                    "startupProbe": {"exec": {"command": ["cat", "/ready"]}}
                }],
                "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "activeDeadlineSeconds": 600,
                "dnsPolicy": "ClusterFirstWithHostNet", "nodeSelector": {"disk": "ssd"},
                "serviceAccountName": "web", "nodeName": "node-1", "hostNetwork": true, "hostname": "web", "subdomain": "web-hl",
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
                            "matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}],
                            "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-1"]}]
                        }]},
                        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}}]
                    },
                    "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                        "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["cache"]}]},
                        "namespaces": ["shop"], "namespaceSelector": {"matchLabels": {"team": "a"}}, "topologyKey": "zone"
                    }]},
                    "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}]}
                },
                "tolerations": [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute", "tolerationSeconds": 300}],
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}, "minDomains": 2}],
                "priority": 1000, "priorityClassName": "high", "schedulerName": "custom", "preemptionPolicy": "Never"
            },
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": T, "lastTransitionTime": T, "reason": "R", "message": "M"}],
                "message": "m", "reason": "r", "nominatedNodeName": "node-2",
                "hostIP": "10.0.0.1", "hostIPs": [{"ip": "10.0.0.1"}], "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}],
                "startTime": T,
                "initContainerStatuses": [{"name": "init", "state": {"terminated": {"exitCode": 0, "signal": 9, "reason": "Completed", "message": "done", "startedAt": T, "finishedAt": T, "containerID": "containerd://1"}}, "ready": false, "restartCount": 0}],
                "containerStatuses": [{
                    "name": "web", "state": {"running": {"startedAt": T}}, "lastState": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                    "ready": true, "restartCount": 2, "image": "nginx:1.27", "imageID": "sha256:ab", "containerID": "containerd://2", "started": true
                }],
                "qosClass": "Burstable"
            }
        }));
    }

    #[test]
    fn node_namespace_lease_event() {
        round_trip(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
            "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"], "providerID": "local://node-1", "unschedulable": true,
                "taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": T}, {"key": "dedicated", "value": "gpu", "effect": "PreferNoSchedule"}]},
            "status": {
                "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                "allocatable": {"cpu": "3800m", "memory": "15Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "False", "lastHeartbeatTime": T, "lastTransitionTime": T, "reason": "NodeStatusUnknown", "message": "stopped posting"}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "node-1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "6.1.0", "osImage": "Debian GNU/Linux 13",
                    "containerRuntimeVersion": "containerd://1.6.20", "kubeletVersion": "v0.1.0", "kubeProxyVersion": "v0.1.0", "operatingSystem": "linux", "architecture": "amd64"}
            }
        }));
        round_trip(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "shop"}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Terminating"}
        }));
        round_trip(json!({
            "apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": "agent-5f7c9d", "namespace": "kube-system", "labels": {"controller-revision-hash": "5f7c9d"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "d1", "controller": true, "blockOwnerDeletion": true}]},
            "data": {"spec": {"template": {"$patch": "replace", "metadata": {"labels": {"app": "agent"}}}}},
            "revision": 2
        }));
        round_trip(json!({
            "apiVersion": "scheduling.x-k8s.io/v1alpha1", "kind": "PodGroup",
            "metadata": {"name": "training", "namespace": "ml"},
            "spec": {"minMember": 4, "scheduleTimeoutSeconds": 30},
            "status": {"phase": "Scheduling", "scheduled": 2, "running": 0, "failed": 0}
        }));
        round_trip(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40, "acquireTime": MT, "renewTime": MT, "leaseTransitions": 3}
        }));
        round_trip(json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web-1.17a8b", "namespace": "shop"},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "u", "resourceVersion": "5", "fieldPath": "spec.containers{web}"},
            "reason": "BackOff", "message": "Back-off restarting failed container", "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": T, "lastTimestamp": T, "count": 7, "type": "Warning", "eventTime": MT,
            "action": "Restarting", "reportingComponent": "orchestra.dev/agent", "reportingInstance": "node-1"
        }));
    }

    #[test]
    fn traffic_split() {
        round_trip(json!({
            "apiVersion": "mesh.orchestra.dev/v1alpha1", "kind": "TrafficSplit",
            "metadata": {"name": "web-canary", "namespace": "shop"},
            "spec": {"service": "web", "backends": [
                {"service": "web-v1", "weight": 90},
                {"service": "web-v2", "weight": 10}
            ]}
        }));
    }

    #[test]
    fn rbac_kinds() {
        let rules = json!([
            {"apiGroups": [""], "resources": ["pods", "pods/status"], "verbs": ["get", "list"], "resourceNames": ["web"]},
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
        ]);
        round_trip(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "reader", "namespace": "shop"}, "rules": rules
        }));
        round_trip(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "system:health"},
            "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]
        }));
        let subjects = json!([
            {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
            {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"},
            {"kind": "ServiceAccount", "name": "builder", "namespace": "ci"}
        ]);
        round_trip(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "readers", "namespace": "shop"}, "subjects": subjects,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}
        }));
        round_trip(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "admins"}, "subjects": subjects,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}
        }));
    }

    #[test]
    fn service_endpoints_replica_set_deployment() {
        round_trip(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "ports": [{"name": "http", "protocol": "TCP", "appProtocol": "http", "port": 80, "targetPort": "http", "nodePort": 30080}],
                "selector": {"app": "web"}, "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
                "publishNotReadyAddresses": true},
            "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "hostname": "lb"}]}}
        }));
        round_trip(json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "web", "namespace": "shop"},
            "subsets": [{
                "addresses": [{"ip": "10.244.0.5", "hostname": "web-0", "nodeName": "node-1", "targetRef": {"kind": "Pod", "namespace": "shop", "name": "web-0", "uid": "u"}}],
                "notReadyAddresses": [{"ip": "10.244.0.6"}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]
            }]
        }));
        let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}});
        round_trip(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-7d4b9", "namespace": "shop"},
            "spec": {"replicas": 3, "minReadySeconds": 5, "selector": {"matchLabels": {"app": "web"}}, "template": template},
            "status": {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 2, "availableReplicas": 2, "observedGeneration": 4,
                "conditions": [{"type": "ReplicaFailure", "status": "False", "lastTransitionTime": T, "reason": "r", "message": "m"}]}
        }));
        round_trip(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template,
                "serviceName": "db", "podManagementPolicy": "Parallel",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1, "maxUnavailable": "50%"}},
                "revisionHistoryLimit": 3, "minReadySeconds": 5},
            "status": {"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "currentReplicas": 1, "updatedReplicas": 2,
                "availableReplicas": 3, "currentRevision": "db-5f7c9d", "updateRevision": "db-8b6d4f", "collisionCount": 1,
                "conditions": [{"type": "Healthy", "status": "True", "lastTransitionTime": T, "reason": "r", "message": "m"}]}
        }));
        round_trip(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "50%"}},
                "minReadySeconds": 5, "revisionHistoryLimit": 3, "paused": true, "progressDeadlineSeconds": 120},
            "status": {"observedGeneration": 2, "replicas": 4, "updatedReplicas": 2, "readyReplicas": 3, "availableReplicas": 3, "unavailableReplicas": 1,
                "conditions": [{"type": "Progressing", "status": "True", "lastUpdateTime": T, "lastTransitionTime": T, "reason": "NewReplicaSetAvailable", "message": "ok"}],
                "collisionCount": 1}
        }));
    }
}
