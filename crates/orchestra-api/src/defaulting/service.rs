//! Defaults of Services.

use crate::meta::IntOrString;
use crate::resources::{
    ClientIpConfig, Protocol, ServiceSpec, ServiceType, SessionAffinity, SessionAffinityConfig,
};

/// How long a `ClientIP` session sticks by default: 3 hours.
pub const DEFAULT_CLIENT_IP_TIMEOUT_SECONDS: i32 = 10800;

/// Fills a Service spec's defaults: `type: ClusterIP`, `sessionAffinity: None` (a
/// `ClientIP` timeout of 10800 s), and per port `protocol: TCP` and `targetPort` = `port`.
pub fn default_service_spec(spec: &mut ServiceSpec) {
    spec.type_.get_or_insert(ServiceType::ClusterIP);
    let affinity = *spec.session_affinity.get_or_insert(SessionAffinity::None);
    if affinity == SessionAffinity::ClientIP {
        let config = spec
            .session_affinity_config
            .get_or_insert_with(SessionAffinityConfig::default);
        config
            .client_ip
            .get_or_insert_with(ClientIpConfig::default)
            .timeout_seconds
            .get_or_insert(DEFAULT_CLIENT_IP_TIMEOUT_SECONDS);
    }
    for port in &mut spec.ports {
        port.protocol.get_or_insert(Protocol::Tcp);
        if port.target_port.is_none() {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::ServicePort;

    #[test]
    fn service_defaults() {
        let mut spec = ServiceSpec {
            ports: vec![ServicePort {
                port: 80,
                ..ServicePort::default()
            }],
            session_affinity: Some(SessionAffinity::ClientIP),
            ..ServiceSpec::default()
        };
        default_service_spec(&mut spec);
        assert_eq!(spec.type_, Some(ServiceType::ClusterIP));
        assert_eq!(spec.ports[0].protocol, Some(Protocol::Tcp));
        assert_eq!(spec.ports[0].target_port, Some(IntOrString::Int(80)));
        assert_eq!(
            spec.session_affinity_config
                .unwrap()
                .client_ip
                .unwrap()
                .timeout_seconds,
            Some(10800)
        );
    }
}
