//! Where the CRI server listens (`unix:///run/containerd/containerd.sock`), and a gRPC channel
//! to it over the unix socket.
//!
//! tonic dials TCP by itself; for a unix socket it takes a connector, a tower service from the
//! (ignored) URI to a connected stream wrapped for hyper.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use crate::runtime::RuntimeError;

/// The socket path named by a CRI endpoint: `unix:///PATH` (kubelet's spelling) or an
/// absolute path.
pub fn socket_path(endpoint: &str) -> Result<PathBuf, RuntimeError> {
    let invalid = |message: &str| RuntimeError::InvalidConfig {
        what: format!("CRI endpoint {endpoint:?}"),
        message: message.to_owned(),
    };
    let path = match endpoint.strip_prefix("unix://") {
        Some(path) => path,
        None if endpoint.contains("://") => {
            return Err(invalid(
                "only unix sockets are supported: write unix:///PATH",
            ));
        }
        None => endpoint,
    };
    if path.is_empty() {
        return Err(invalid("no socket path: write unix:///PATH"));
    }
    if !path.starts_with('/') {
        return Err(invalid(
            "the socket path must be absolute: write unix:///PATH (three slashes)",
        ));
    }
    Ok(PathBuf::from(path))
}

/// A channel to the CRI server on the unix socket `path`, connected once (so that a missing
/// socket is reported here) and reconnecting by itself afterwards.
pub async fn connect(path: &Path, connect_timeout: Duration) -> Result<Channel, RuntimeError> {
    let socket = path.to_owned();
    let connector = tower::service_fn(move |_: tonic::transport::Uri| {
        let socket = socket.clone();
        async move {
            let stream = tokio::net::UnixStream::connect(socket).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    // The authority is never dialled (the connector ignores it); it only names the server in
    // the HTTP/2 requests.
    Endpoint::from_static("http://cri.localhost")
        .connect_timeout(connect_timeout)
        .connect_with_connector(connector)
        .await
        .map_err(|e| RuntimeError::Unavailable {
            message: format!(
                "cannot connect to the CRI socket {}: {} (is containerd running with its CRI plugin?)",
                path.display(),
                error_chain(&e)
            ),
        })
}

/// An error and its sources, joined with `: `.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_name_absolute_socket_paths() {
        assert_eq!(
            socket_path("unix:///run/containerd/containerd.sock").expect("unix url"),
            PathBuf::from("/run/containerd/containerd.sock")
        );
        assert_eq!(
            socket_path("/tmp/c.sock").expect("plain path"),
            PathBuf::from("/tmp/c.sock")
        );
        for bad in [
            "tcp://127.0.0.1:1234",
            "unix://",
            "unix://relative.sock",
            "c.sock",
            "",
        ] {
            let err = socket_path(bad).expect_err(bad);
            assert!(
                matches!(&err, RuntimeError::InvalidConfig { what, .. } if what.contains(bad)),
                "{bad}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_missing_socket_is_unavailable_and_named() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("none.sock");
        let err = connect(&path, Duration::from_secs(1))
            .await
            .expect_err("no server");
        assert!(matches!(err, RuntimeError::Unavailable { .. }), "{err:?}");
        assert!(err.to_string().contains("none.sock"), "{err}");
    }
}
