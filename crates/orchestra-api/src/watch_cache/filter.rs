//! What one cached watch selects, and the event a change is for it: the selector
//! transitions exactly as the registry's watch makes them (starts matching: ADDED; stops
//! matching: DELETED with the last matching state at the change's resourceVersion).

use std::sync::Arc;

use super::kind::{Entry, Object};
use crate::selector::{FieldOperator, FieldSelector, Selector};

/// One change as one watch sees it.
#[derive(Clone, Debug)]
pub(crate) enum Change {
    /// Created, or starts matching: the entry's new state.
    Added(Arc<Entry>),
    /// Matches before and after: the entry's new state.
    Modified(Arc<Entry>),
    /// Deleted while matching: the entry's object (the last state, at the deletion's
    /// resourceVersion).
    Deleted(Arc<Entry>),
    /// Stops matching: the entry's previous state, reported at the entry's resourceVersion.
    Left(Arc<Entry>),
    /// Nothing this watch selects changed up to this revision.
    Bookmark(i64),
}

/// What one watch selects, and from where.
#[derive(Clone, Debug)]
pub(crate) struct Filter {
    /// Only this namespace (`None`: all; always `None` for cluster-scoped kinds).
    pub(crate) namespace: Option<String>,
    pub(crate) labels: Selector,
    pub(crate) fields: FieldSelector,
    /// Only changes after this revision.
    pub(crate) from: i64,
}

impl Filter {
    /// Whether the object is selected.
    pub(crate) fn matches(&self, object: &Object) -> bool {
        let object = object.as_ref();
        self.namespace
            .as_deref()
            .is_none_or(|ns| object.meta().namespace == ns)
            && self.labels.matches(&object.meta().labels)
            && self.fields.matches_dyn(object).unwrap_or(false)
    }

    /// The `(field, value)` an object must have to be selected, when the selectors name one
    /// (the first `field=value` requirement, else the namespace): the cache indexes the
    /// watch under it, so that only the changes of such objects reach it.
    pub(crate) fn index_key(&self) -> Option<(String, String)> {
        self.fields
            .requirements()
            .iter()
            .find(|r| r.operator == FieldOperator::Equals)
            .map(|r| (r.field.clone(), r.value.clone()))
            .or_else(|| {
                self.namespace
                    .clone()
                    .map(|ns| ("metadata.namespace".to_owned(), ns))
            })
    }

    /// The change this entry is for this watch (`None`: none of its business).
    pub(crate) fn view(&self, entry: &Arc<Entry>) -> Option<Change> {
        if entry.revision <= self.from {
            return None;
        }
        if entry.deleted {
            return self
                .matches(&entry.object)
                .then(|| Change::Deleted(entry.clone()));
        }
        let before = entry.prev.as_ref().map(|p| self.matches(p));
        let now = self.matches(&entry.object);
        match (before, now) {
            (None | Some(false), true) => Some(Change::Added(entry.clone())),
            (Some(true), true) => Some(Change::Modified(entry.clone())),
            (Some(true), false) => Some(Change::Left(entry.clone())),
            (_, false) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;
    use crate::scheme::erase;

    fn pod(node: &str, app: &str) -> Arc<Object> {
        let mut pod = crate::testing::pod("default", "p", app);
        pod.spec.node_name = node.into();
        Arc::new(erase(pod))
    }

    fn entry(
        revision: i64,
        prev: Option<Arc<Object>>,
        object: Arc<Object>,
        deleted: bool,
    ) -> Arc<Entry> {
        Arc::new(Entry {
            revision,
            deleted,
            object,
            prev,
            json: OnceLock::new(),
        })
    }

    fn on(node: &str) -> Filter {
        Filter {
            namespace: None,
            labels: Selector::default(),
            fields: FieldSelector::equals("spec.nodeName", node),
            from: 5,
        }
    }

    fn kind(change: Option<Change>) -> &'static str {
        match change {
            None => "none",
            Some(Change::Added(_)) => "added",
            Some(Change::Modified(_)) => "modified",
            Some(Change::Deleted(_)) => "deleted",
            Some(Change::Left(_)) => "left",
            Some(Change::Bookmark(_)) => "bookmark",
        }
    }

    #[test]
    fn transitions_follow_selector_matching() {
        let a = on("node-a");
        let moved = entry(6, Some(pod("node-a", "web")), pod("node-b", "web"), false);
        assert_eq!(kind(a.view(&moved)), "left");
        assert_eq!(kind(on("node-b").view(&moved)), "added");
        assert_eq!(kind(on("node-c").view(&moved)), "none");
        let updated = entry(7, Some(pod("node-a", "web")), pod("node-a", "api"), false);
        assert_eq!(kind(a.view(&updated)), "modified");
        let created = entry(8, None, pod("node-a", "web"), false);
        assert_eq!(kind(a.view(&created)), "added");
        let gone = entry(9, Some(pod("node-a", "web")), pod("node-a", "web"), true);
        assert_eq!(kind(a.view(&gone)), "deleted");
        assert_eq!(kind(on("node-b").view(&gone)), "none");
        let old = entry(5, None, pod("node-a", "web"), false);
        assert_eq!(kind(a.view(&old)), "none", "not after `from`");
    }

    #[test]
    fn the_index_key_is_the_first_equality_or_the_namespace() {
        let fields = FieldSelector::parse("spec.nodeName!=x,spec.nodeName=n1").expect("parse");
        let filter = Filter {
            namespace: Some("ns".into()),
            labels: Selector::default(),
            fields,
            from: 0,
        };
        assert_eq!(
            filter.index_key(),
            Some(("spec.nodeName".into(), "n1".into()))
        );
        let by_namespace = Filter {
            fields: FieldSelector::default(),
            ..filter.clone()
        };
        assert_eq!(
            by_namespace.index_key(),
            Some(("metadata.namespace".into(), "ns".into()))
        );
        let everything = Filter {
            namespace: None,
            ..by_namespace
        };
        assert_eq!(everything.index_key(), None);
    }
}
