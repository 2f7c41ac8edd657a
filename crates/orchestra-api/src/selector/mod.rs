//! Label and field selectors: parsing Kubernetes' selector strings and matching objects.
//!
//! - [`Selector`]: label selectors, equality-based (`app=web`, `app==web`, `tier!=db`) and
//!   set-based (`env in (prod,staging)`, `env notin (dev)`, `canary`, `!canary`), plus `gt`/`lt`
//!   (`cores>4`) for node affinity; built from a string or from a [`LabelSelector`]
//!   (`matchLabels`/`matchExpressions`). An empty selector matches everything;
//!   [`Selector::nothing`] matches nothing.
//! - [`FieldSelector`]: `metadata.name=web,status.phase!=Running` over an object's
//!   [`Resource::field`](crate::Resource::field) or a JSON value.
//!
//! ```
//! use std::collections::BTreeMap;
//! use orchestra_api::selector::Selector;
//!
//! let selector: Selector = "app=web, env in (prod, staging), !canary".parse()?;
//! let labels = BTreeMap::from([("app".to_owned(), "web".to_owned()), ("env".to_owned(), "prod".to_owned())]);
//! assert!(selector.matches(&labels));
//! assert_eq!(selector.to_string(), "app=web,!canary,env in (prod,staging)");
//! # Ok::<(), orchestra_api::selector::SelectorError>(())
//! ```
//!
//! [`LabelSelector`]: crate::meta::LabelSelector

mod field;
mod label;
mod lexer;

pub use field::{FieldOperator, FieldRequirement, FieldSelector};
pub use label::{Operator, Requirement, Selector};

/// Why a selector string could not be parsed, or a selector could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse selector {input:?}: {message}")]
pub struct SelectorError {
    /// The selector string (or a rendering of the structured selector).
    pub input: String,
    /// What is wrong, e.g. `found ')', expected: identifier`.
    pub message: String,
}

impl SelectorError {
    pub(crate) fn new(input: &str, message: impl Into<String>) -> Self {
        SelectorError {
            input: input.to_owned(),
            message: message.into(),
        }
    }
}
