//! Authorization as `orchestra server` and [`Cluster`](super::Cluster) both run it, set up in
//! one place: the Node authorizer for node agents, then RBAC with the built-in roles (created
//! or reconciled at every start, see
//! [`ensure_default_roles`](orchestra_api::auth::bootstrap::ensure_default_roles)), and every
//! write and every denial recorded in `<data-dir>/audit.log`.

use std::path::Path;
use std::sync::Arc;

use orchestra_api::auth::audit::{AuditError, FileAuditSink};
use orchestra_api::auth::bootstrap::{BootstrapReport, ensure_default_roles};
use orchestra_api::auth::node::NodeAuthorizer;
use orchestra_api::auth::rbac::RbacAuthorizer;
use orchestra_api::auth::{Authorizer, AuthorizerChain};
use orchestra_api::{ApiError, LocalClient};
use tokio::task::JoinHandle;

/// Why authorization could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizationError {
    /// The built-in RBAC roles could not be created or reconciled.
    #[error("creating the built-in RBAC roles and bindings")]
    Roles(#[source] ApiError),
    /// The audit log could not be opened.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// The authorizer and the audit log of a secure API server, and the watches that feed the
/// authorizers' caches.
#[derive(Debug)]
pub struct Authorization {
    /// Node restriction, then RBAC (`ServerOptions::authorizer`).
    pub authorizer: Arc<dyn Authorizer>,
    /// The audit log (`ServerOptions::audit`); flush it at shutdown.
    pub audit: FileAuditSink,
    /// What the built-in roles' reconciliation did.
    pub roles: BootstrapReport,
    feeds: Vec<JoinHandle<()>>,
}

impl Authorization {
    /// Creates or reconciles the built-in roles through `client` (the server's own registry),
    /// starts the authorizers' feeds on it, waits until RBAC has read every role and binding,
    /// and opens `<data_dir>/audit.log`.
    pub async fn start(client: LocalClient, data_dir: &Path) -> Result<Self, AuthorizationError> {
        let roles = ensure_default_roles(&client)
            .await
            .map_err(AuthorizationError::Roles)?;
        let node = NodeAuthorizer::new();
        let rbac = RbacAuthorizer::new();
        let feeds = vec![
            tokio::spawn({
                let (node, client) = (node.clone(), client.clone());
                async move { node.run(client).await }
            }),
            tokio::spawn({
                let rbac = rbac.clone();
                async move { rbac.run(client).await }
            }),
        ];
        rbac.wait_until_ready().await;
        let audit = FileAuditSink::open(data_dir.join("audit.log"))?;
        Ok(Authorization {
            authorizer: Arc::new(AuthorizerChain::standard(node, rbac)),
            audit,
            roles,
            feeds,
        })
    }

    /// What in-process components are checked against: this authorizer, this audit log.
    pub fn for_components(&self) -> super::ComponentAuthorization {
        super::ComponentAuthorization {
            authorizer: self.authorizer.clone(),
            audit: Some(Arc::new(self.audit.clone())),
        }
    }

    /// Stops the authorizers' feeds (their caches stop following the store) and flushes the
    /// audit log.
    pub fn stop(&self) {
        for feed in &self.feeds {
            feed.abort();
        }
        if let Err(error) = self.audit.flush() {
            tracing::warn!(%error, "the audit log was not flushed");
        }
    }
}
