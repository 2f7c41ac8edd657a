//! The options of list, watch and delete requests, as Kubernetes' `ListOptions` and
//! `DeleteOptions`.

use std::time::Duration;

use crate::selector::{FieldSelector, Selector};

/// What a list returns: the objects matching both selectors, `limit` at a time.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// Only objects whose labels match (default: everything).
    pub label_selector: Selector,
    /// Only objects whose fields match (default: everything).
    pub field_selector: FieldSelector,
    /// At most this many objects per page; 0 means all.
    pub limit: usize,
    /// The `continue` token of the previous page.
    pub continue_token: Option<String>,
    /// Which state to read, as Kubernetes' `resourceVersion` of a list: `None` (or empty) is a
    /// consistent read of the latest state from the store; `"0"` accepts any recent state, which
    /// the API server serves from its watch cache (without a `limit` or `continue`); another
    /// resourceVersion is read as the latest state, which is not older than it.
    pub resource_version: Option<String>,
}

impl ListOptions {
    /// Options selecting by labels.
    pub fn labels(selector: Selector) -> Self {
        ListOptions {
            label_selector: selector,
            ..ListOptions::default()
        }
    }

    /// Options selecting by fields.
    pub fn fields(selector: FieldSelector) -> Self {
        ListOptions {
            field_selector: selector,
            ..ListOptions::default()
        }
    }

    /// These options with a page size.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

/// What a watch reports, and from where.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    /// Only objects whose labels match; an object that stops matching arrives as `Deleted`,
    /// one that starts matching as `Added`.
    pub label_selector: Selector,
    /// Only objects whose fields match, with the same transitions.
    pub field_selector: FieldSelector,
    /// Report the changes after this resourceVersion (of a list, or of an earlier event).
    /// `None` (or `"0"`) first reports every matching object as `Added` (one consistent
    /// snapshot), then the changes after it, as Kubernetes does.
    pub resource_version: Option<String>,
    /// Send a [`WatchEvent::Bookmark`](super::WatchEvent::Bookmark) at this interval, so that
    /// a client resumes from a recent resourceVersion even when nothing it selects changes.
    pub bookmark_interval: Option<Duration>,
}

impl WatchOptions {
    /// A watch from `resource_version`.
    pub fn from_version(resource_version: impl Into<String>) -> Self {
        WatchOptions {
            resource_version: Some(resource_version.into()),
            ..WatchOptions::default()
        }
    }
}

/// What happens to the dependents of a deleted object (by their ownerReferences), as
/// Kubernetes' `propagationPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagationPolicy {
    /// Delete the object now; the garbage collector deletes dependents afterwards.
    Background,
    /// Keep the object (finalizer `foregroundDeletion`) until the garbage collector has deleted
    /// its blocking dependents.
    Foreground,
    /// Keep the object (finalizer `orphan`) until the garbage collector has removed the
    /// dependents' ownerReferences to it.
    Orphan,
}

impl PropagationPolicy {
    /// Kubernetes' spelling: `Background`, `Foreground`, `Orphan`.
    pub fn as_str(self) -> &'static str {
        match self {
            PropagationPolicy::Background => "Background",
            PropagationPolicy::Foreground => "Foreground",
            PropagationPolicy::Orphan => "Orphan",
        }
    }

    /// The finalizer that holds the object for the garbage collector, if any.
    pub fn finalizer(self) -> Option<&'static str> {
        match self {
            PropagationPolicy::Background => None,
            PropagationPolicy::Foreground => Some("foregroundDeletion"),
            PropagationPolicy::Orphan => Some("orphan"),
        }
    }
}

/// How to delete.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// Recorded as `metadata.deletionGracePeriodSeconds` on an object that stays for its
    /// finalizers (default 0); negative values are refused.
    pub grace_period_seconds: Option<i64>,
    /// Recorded in the [`PROPAGATION_POLICY_ANNOTATION`](super::PROPAGATION_POLICY_ANNOTATION)
    /// annotation, with the policy's finalizer.
    pub propagation_policy: Option<PropagationPolicy>,
    /// Delete only if the object is still at this resourceVersion (else `Conflict`).
    pub resource_version: Option<String>,
}
