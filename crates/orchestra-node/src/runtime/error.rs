//! [`RuntimeError`]: why a runtime call failed, in words the agent can put into a container's
//! `Waiting` reason and message.

use std::time::Duration;

/// Why a [`RuntimeDriver`](super::RuntimeDriver) call failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The sandbox or container does not exist (or no longer does).
    #[error("{kind} {id} not found")]
    NotFound {
        /// `sandbox` or `container`.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// The configuration cannot be run as given (an empty command, a bad working directory...).
    #[error("invalid {what}: {message}")]
    InvalidConfig {
        /// Which part of the configuration.
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// The image is not present and cannot be pulled.
    #[error("image {image:?}: {message}")]
    Image {
        /// The image reference.
        image: String,
        /// Why it is not available.
        message: String,
    },
    /// The container could not be started (the command does not exist, is not executable...).
    #[error("starting container {id} failed: {message}")]
    StartFailed {
        /// The container.
        id: String,
        /// Why, as the runtime reports it.
        message: String,
    },
    /// The call is not valid in the object's current state (starting a running container...).
    #[error("{id}: {message}")]
    InvalidState {
        /// The sandbox or container.
        id: String,
        /// What state it is in and why that forbids the call.
        message: String,
    },
    /// The call did not finish within its deadline.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What was being done.
        what: String,
        /// The deadline.
        after: Duration,
    },
    /// The runtime itself cannot be reached or failed (containerd down, state dir unwritable).
    #[error("runtime unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
    },
    /// An I/O error while doing `context`.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl RuntimeError {
    /// Whether this is [`RuntimeError::NotFound`]: stop and remove treat it as success.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RuntimeError::NotFound { .. })
    }

    /// Kubernetes' short reason for a container that could not be started because of this
    /// error, as kubelet puts into `state.waiting.reason`.
    pub fn waiting_reason(&self) -> &'static str {
        match self {
            RuntimeError::Image { .. } => "ErrImagePull",
            RuntimeError::InvalidConfig { .. } => "CreateContainerConfigError",
            RuntimeError::StartFailed { .. } => "RunContainerError",
            _ => "CreateContainerError",
        }
    }
}
