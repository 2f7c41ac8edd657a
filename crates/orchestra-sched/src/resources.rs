//! [`Resources`]: the amounts the scheduler adds up and compares, as plain integers (CPU in
//! millicores, memory and ephemeral storage in bytes, extended resources in whole units), so
//! that Filter and Score loops do integer arithmetic only.

use std::sync::Arc;

use orchestra_api::resources::{
    Container, PodSpec, RESOURCE_CPU, RESOURCE_EPHEMERAL_STORAGE, RESOURCE_MEMORY, RESOURCE_PODS,
    ResourceList,
};

/// The CPU a container without a CPU request counts as when scoring (Kubernetes' 100m).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory a container without a memory request counts as when scoring (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of resources: what a node offers (allocatable), what its pods request, or what one
/// pod requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Local ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Pods: the most a node runs (allocatable), the pods on it (requested), or 1 for a pod.
    pub pods: i64,
    /// Extended resources (`example.com/gpu`, `hugepages-2Mi`, ...) in whole units, sorted by
    /// name; empty (no allocation) in the common case.
    pub scalar: Vec<(Arc<str>, i64)>,
}

impl Resources {
    /// The amounts of a resource list (a node's allocatable or capacity).
    pub fn from_list(list: &ResourceList) -> Self {
        let mut out = Resources::default();
        for (name, quantity) in list {
            match name.as_str() {
                RESOURCE_CPU => out.milli_cpu = quantity.milli_value(),
                RESOURCE_MEMORY => out.memory = quantity.value(),
                RESOURCE_EPHEMERAL_STORAGE => out.ephemeral_storage = quantity.value(),
                RESOURCE_PODS => out.pods = quantity.value(),
                other => out.set_scalar(other, quantity.value()),
            }
        }
        out
    }

    /// The amount of an extended resource (0 when absent).
    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar
            .binary_search_by(|(n, _)| (**n).cmp(name))
            .map_or(0, |i| self.scalar[i].1)
    }

    /// Set the amount of an extended resource.
    pub fn set_scalar(&mut self, name: &str, value: i64) {
        match self.scalar.binary_search_by(|(n, _)| (**n).cmp(name)) {
            Ok(i) => self.scalar[i].1 = value,
            Err(i) => self.scalar.insert(i, (Arc::from(name), value)),
        }
    }

    /// Add `other` into `self` (saturating: a pathological request cannot wrap around).
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_add(other.ephemeral_storage);
        self.pods = self.pods.saturating_add(other.pods);
        for (name, value) in &other.scalar {
            let sum = self.scalar(name).saturating_add(*value);
            self.set_scalar(name, sum);
        }
    }

    /// Subtract `other` from `self` (when a pod leaves its node).
    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_sub(other.ephemeral_storage);
        self.pods = self.pods.saturating_sub(other.pods);
        for (name, value) in &other.scalar {
            let diff = self.scalar(name).saturating_sub(*value);
            self.set_scalar(name, diff);
        }
    }

    /// Raise every amount of `self` to at least `other`'s (init containers run one at a time,
    /// so a pod needs the largest of them, not their sum).
    fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (name, value) in &other.scalar {
            if *value > self.scalar(name) {
                self.set_scalar(name, *value);
            }
        }
    }

    /// Whether nothing is requested besides the pod slot.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.iter().all(|(_, v)| *v == 0)
    }
}

/// What one pod asks of its node, computed once per pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodRequests {
    /// The requests the Filter checks: the sum over containers and sidecars, raised to the
    /// peak of the init phase (an init container plus the sidecars started before it), with
    /// `pods: 1`.
    pub requests: Resources,
    /// CPU for scoring: as `requests`, but a container without a CPU request counts
    /// [`DEFAULT_MILLI_CPU_REQUEST`] (so that best-effort pods still spread).
    pub non_zero_milli_cpu: i64,
    /// Memory for scoring, with [`DEFAULT_MEMORY_REQUEST`] per container without one.
    pub non_zero_memory: i64,
}

impl PodRequests {
    /// The requests of a pod spec. A container's request is its `requests` entry, or its
    /// `limits` entry when only the limit is given (as Kubernetes defaults it).
    pub fn of(spec: &PodSpec) -> Self {
        let mut requests = Resources::default();
        let (mut cpu, mut memory) = (0i64, 0i64);
        for container in &spec.containers {
            let r = container_requests(container);
            cpu = cpu.saturating_add(non_zero(r.milli_cpu, container, RESOURCE_CPU));
            memory = memory.saturating_add(non_zero(r.memory, container, RESOURCE_MEMORY));
            requests.add(&r);
        }
        // Init containers run one at a time, each next to the sidecars started before it
        // (init containers with `restartPolicy: Always`), which then keep running beside the
        // app: the pod needs the app's sum plus every sidecar's, and at least the peak of the
        // init phase. Kubernetes' rule (`resourcehelper.PodRequests`).
        let mut sidecars = Resources::default();
        let (mut sidecar_cpu, mut sidecar_memory) = (0i64, 0i64);
        let mut init_peak = Resources::default();
        let (mut init_cpu, mut init_memory) = (0i64, 0i64);
        for container in &spec.init_containers {
            let r = container_requests(container);
            let (c, m) = (
                non_zero(r.milli_cpu, container, RESOURCE_CPU),
                non_zero(r.memory, container, RESOURCE_MEMORY),
            );
            let mut during = sidecars.clone();
            during.add(&r);
            let (during_cpu, during_memory) = (
                sidecar_cpu.saturating_add(c),
                sidecar_memory.saturating_add(m),
            );
            if container.is_sidecar() {
                requests.add(&r);
                cpu = cpu.saturating_add(c);
                memory = memory.saturating_add(m);
                sidecars = during.clone();
                (sidecar_cpu, sidecar_memory) = (during_cpu, during_memory);
            }
            init_peak.max_with(&during);
            init_cpu = init_cpu.max(during_cpu);
            init_memory = init_memory.max(during_memory);
        }
        requests.max_with(&init_peak);
        cpu = cpu.max(init_cpu);
        memory = memory.max(init_memory);
        requests.pods = 1;
        PodRequests {
            requests,
            non_zero_milli_cpu: cpu,
            non_zero_memory: memory,
        }
    }
}

/// One container's requests (limits standing in for missing requests).
fn container_requests(container: &Container) -> Resources {
    let res = &container.resources;
    if res.limits.is_empty() {
        return Resources::from_list(&res.requests);
    }
    let mut merged = res.limits.clone();
    merged.extend(res.requests.iter().map(|(k, v)| (k.clone(), *v)));
    Resources::from_list(&merged)
}

/// A container's CPU or memory for scoring: its request, or the default when it has none.
fn non_zero(value: i64, container: &Container, resource: &str) -> i64 {
    let given = container.resources.requests.contains_key(resource)
        || container.resources.limits.contains_key(resource);
    match (given, resource) {
        (true, _) => value,
        (false, RESOURCE_CPU) => DEFAULT_MILLI_CPU_REQUEST,
        (false, _) => DEFAULT_MEMORY_REQUEST,
    }
}

#[cfg(test)]
mod tests {
    use orchestra_api::Quantity;
    use orchestra_api::resources::ResourceRequirements;

    use super::*;

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let list = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Quantity::parse(v).unwrap()))
                .collect()
        };
        Container {
            name: "c".into(),
            resources: ResourceRequirements {
                requests: list(requests),
                limits: list(limits),
            },
            ..Container::default()
        }
    }

    #[test]
    fn sums_containers_and_takes_the_largest_init_container() {
        let spec = PodSpec {
            containers: vec![
                container(&[("cpu", "250m"), ("memory", "64Mi")], &[]),
                container(&[("cpu", "250m"), ("example.com/gpu", "1")], &[]),
            ],
            init_containers: vec![container(&[("cpu", "2")], &[])],
            ..PodSpec::default()
        };
        let r = PodRequests::of(&spec);
        assert_eq!(r.requests.milli_cpu, 2000);
        assert_eq!(r.requests.memory, 64 * 1024 * 1024);
        assert_eq!(r.requests.scalar("example.com/gpu"), 1);
        assert_eq!(r.requests.pods, 1);
        // The second container has no memory request: it counts 200Mi for scoring.
        assert_eq!(r.non_zero_memory, 64 * 1024 * 1024 + DEFAULT_MEMORY_REQUEST);
        assert_eq!(r.non_zero_milli_cpu, 2000);
    }

    #[test]
    fn sidecars_add_to_the_app_and_to_every_later_init_container() {
        let mut sidecar = container(&[("cpu", "500m"), ("memory", "100Mi")], &[]);
        sidecar.restart_policy = Some(orchestra_api::resources::RestartPolicy::Always);
        let spec = PodSpec {
            containers: vec![container(&[("cpu", "1"), ("memory", "200Mi")], &[])],
            init_containers: vec![
                container(&[("cpu", "1200m")], &[]),
                sidecar,
                // Runs next to the sidecar: 1.5 + 0.5 = 2 CPUs at the peak.
                container(&[("cpu", "1500m"), ("memory", "1Mi")], &[]),
            ],
            ..PodSpec::default()
        };
        let r = PodRequests::of(&spec);
        // App 1 + sidecar 0.5 = 1.5 < the init peak of 2.
        assert_eq!(r.requests.milli_cpu, 2000);
        // App 200Mi + sidecar 100Mi = 300Mi > any init step (101Mi).
        assert_eq!(r.requests.memory, 300 * 1024 * 1024);
        assert_eq!(r.non_zero_milli_cpu, 2000);
        assert_eq!(r.non_zero_memory, 300 * 1024 * 1024);

        // Without the peak, the sidecar simply adds to the app.
        let mut spec = spec;
        spec.init_containers.remove(2);
        spec.init_containers.remove(0);
        let r = PodRequests::of(&spec);
        assert_eq!(
            (r.requests.milli_cpu, r.requests.memory),
            (1500, 300 * 1024 * 1024)
        );
    }

    #[test]
    fn limits_stand_in_for_missing_requests() {
        let spec = PodSpec {
            containers: vec![container(
                &[("memory", "1Gi")],
                &[("cpu", "1"), ("memory", "2Gi")],
            )],
            ..PodSpec::default()
        };
        let r = PodRequests::of(&spec);
        assert_eq!((r.requests.milli_cpu, r.requests.memory), (1000, 1 << 30));
    }

    #[test]
    fn best_effort_pods_request_nothing_but_score_defaults() {
        let spec = PodSpec {
            containers: vec![container(&[], &[])],
            ..PodSpec::default()
        };
        let r = PodRequests::of(&spec);
        assert!(r.requests.is_zero());
        assert_eq!(
            (r.non_zero_milli_cpu, r.non_zero_memory),
            (DEFAULT_MILLI_CPU_REQUEST, DEFAULT_MEMORY_REQUEST)
        );
    }

    #[test]
    fn add_and_sub_are_inverse() {
        let mut a = Resources {
            milli_cpu: 1,
            memory: 2,
            ..Resources::default()
        };
        a.set_scalar("x", 3);
        let b = a.clone();
        let mut sum = a.clone();
        sum.add(&b);
        assert_eq!((sum.milli_cpu, sum.scalar("x")), (2, 6));
        sum.sub(&b);
        assert_eq!(sum, a);
    }
}
