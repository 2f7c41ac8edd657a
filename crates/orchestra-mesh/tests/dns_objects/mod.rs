//! The Services the DNS tests serve, shared by `dns.rs`, `dns_bad_input.rs` and `dns_dig.rs`;
//! the sidecar tests (`sidecar_dual_stack.rs`, `traffic_split.rs`) publish theirs from here too.

use orchestra_api::ObjectMeta;
use orchestra_api::resources::{Service, ServicePort, ServiceSpec};

/// The metadata of an object named `name` in `namespace`.
pub fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: name.into(),
        namespace: namespace.into(),
        ..ObjectMeta::default()
    }
}

/// A Service with one port, `http` 80; `cluster_ip` "None" makes it headless.
pub fn service(namespace: &str, name: &str, cluster_ip: &str) -> Service {
    Service {
        metadata: meta(namespace, name),
        spec: ServiceSpec {
            cluster_ip: cluster_ip.into(),
            ports: vec![ServicePort {
                name: "http".into(),
                port: 80,
                ..ServicePort::default()
            }],
            ..ServiceSpec::default()
        },
        status: None,
    }
}
