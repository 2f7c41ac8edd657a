//! [`FieldPath`], [`FieldError`] and [`ErrorList`]: Kubernetes' `field.Path`, `field.Error`
//! and `field.ErrorList`.

use std::fmt;

use serde_json::Value;

/// The path of a field: `spec.containers[0].image`, `metadata.labels[app]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(String);

impl FieldPath {
    /// A path starting at a top-level field: `FieldPath::new("spec")`.
    pub fn new(name: &str) -> Self {
        FieldPath(name.to_owned())
    }

    /// The path of a member: `spec` -> `spec.replicas`.
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(name.to_owned())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    /// The path of a list element: `spec.containers` -> `spec.containers[0]`.
    pub fn index(&self, index: usize) -> Self {
        FieldPath(format!("{}[{index}]", self.0))
    }

    /// The path of a map entry: `metadata.labels` -> `metadata.labels[app]`.
    pub fn key(&self, key: &str) -> Self {
        FieldPath(format!("{}[{key}]", self.0))
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kind of a [`FieldError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// A required field is missing or empty.
    Required,
    /// The value is malformed or out of range.
    Invalid,
    /// The value is not one of the supported values.
    NotSupported,
    /// The value duplicates another that must be unique.
    Duplicate,
    /// The field may not be set (here, or by this user, or now).
    Forbidden,
    /// The value is too long.
    TooLong,
    /// The list has too many items.
    TooMany,
    /// The value names something that does not exist.
    NotFound,
}

impl ErrorType {
    /// Kubernetes' reason string: `FieldValueRequired`, `FieldValueInvalid`, ...
    pub fn reason(self) -> &'static str {
        match self {
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::NotFound => "FieldValueNotFound",
        }
    }
}

/// One validation error: which field, what kind of problem, the bad value and a detail.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// What kind of problem.
    pub type_: ErrorType,
    /// The field's path.
    pub field: String,
    /// The bad value (for `Invalid`, `NotSupported`, `Duplicate`, `TooMany`).
    pub value: Option<Value>,
    /// What is wrong, or what is expected.
    pub detail: String,
}

impl FieldError {
    fn new(type_: ErrorType, field: &FieldPath, value: Option<Value>, detail: String) -> Self {
        FieldError {
            type_,
            field: field.to_string(),
            value,
            detail,
        }
    }

    /// `field: Required value[: detail]`.
    pub fn required(field: &FieldPath, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Required, field, None, detail.into())
    }

    /// `field: Invalid value: "value": detail`.
    pub fn invalid(field: &FieldPath, value: impl Into<Value>, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Invalid, field, Some(value.into()), detail.into())
    }

    /// `field: Unsupported value: "value": supported values: "a", "b"`.
    pub fn not_supported(field: &FieldPath, value: impl Into<Value>, supported: &[&str]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<_> = supported.iter().map(|s| format!("{s:?}")).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(ErrorType::NotSupported, field, Some(value.into()), detail)
    }

    /// `field: Duplicate value: "value"`.
    pub fn duplicate(field: &FieldPath, value: impl Into<Value>) -> Self {
        Self::new(
            ErrorType::Duplicate,
            field,
            Some(value.into()),
            String::new(),
        )
    }

    /// `field: Not found: "value"`.
    pub fn not_found(field: &FieldPath, value: impl Into<Value>) -> Self {
        Self::new(
            ErrorType::NotFound,
            field,
            Some(value.into()),
            String::new(),
        )
    }

    /// `field: Forbidden: detail`.
    pub fn forbidden(field: &FieldPath, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Forbidden, field, None, detail.into())
    }

    /// `field: Too long: may not be more than N bytes`.
    pub fn too_long(field: &FieldPath, max_bytes: usize) -> Self {
        Self::new(
            ErrorType::TooLong,
            field,
            None,
            format!("may not be more than {max_bytes} bytes"),
        )
    }

    /// `field: Too many: N: must have at most M items`.
    pub fn too_many(field: &FieldPath, actual: usize, max: usize) -> Self {
        Self::new(
            ErrorType::TooMany,
            field,
            Some(Value::from(actual)),
            format!("must have at most {max} items"),
        )
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.type_ {
            ErrorType::Required => "Required value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::NotFound => "Not found",
        };
        write!(f, "{}: {what}", self.field)?;
        if let Some(value) = &self.value {
            write!(f, ": {value}")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldError {}

/// A list of [`FieldError`]s; empty means valid. Displays one error, or several as
/// `[a, b]`, as Kubernetes does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ErrorList(Vec<FieldError>);

impl ErrorList {
    /// An empty list.
    pub fn new() -> Self {
        ErrorList(Vec::new())
    }

    /// Adds an error.
    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    /// Whether there is no error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The errors.
    pub fn iter(&self) -> std::slice::Iter<'_, FieldError> {
        self.0.iter()
    }

    /// `Ok(())` when empty, the list as an error otherwise.
    pub fn into_result(self) -> Result<(), ErrorList> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl Extend<FieldError> for ErrorList {
    fn extend<I: IntoIterator<Item = FieldError>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl FromIterator<FieldError> for ErrorList {
    fn from_iter<I: IntoIterator<Item = FieldError>>(iter: I) -> Self {
        ErrorList(iter.into_iter().collect())
    }
}

impl IntoIterator for ErrorList {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ErrorList {
    type Item = &'a FieldError;
    type IntoIter = std::slice::Iter<'a, FieldError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for ErrorList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("no errors"),
            [one] => write!(f, "{one}"),
            many => {
                f.write_str("[")?;
                for (i, e) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl std::error::Error for ErrorList {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_kubernetes_style() {
        let spec = FieldPath::new("spec");
        let image = spec.child("containers").index(0).child("image");
        assert_eq!(
            FieldError::required(&image, "").to_string(),
            "spec.containers[0].image: Required value"
        );
        assert_eq!(
            FieldError::invalid(
                &spec.child("replicas"),
                -1,
                "must be greater than or equal to 0"
            )
            .to_string(),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            FieldError::not_supported(
                &spec.child("restartPolicy"),
                "Sometimes",
                &["Always", "Never"]
            )
            .to_string(),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\""
        );
        assert_eq!(
            FieldError::duplicate(&FieldPath::new("metadata").child("labels").key("app"), "x")
                .to_string(),
            "metadata.labels[app]: Duplicate value: \"x\""
        );
        assert_eq!(
            FieldError::forbidden(
                &FieldPath::new("metadata").child("namespace"),
                "not allowed on this type"
            )
            .to_string(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );
        let mut list = ErrorList::new();
        assert_eq!(list.clone().into_result(), Ok(()));
        list.push(FieldError::required(&image, ""));
        list.push(FieldError::too_long(
            &FieldPath::new("metadata").child("annotations"),
            262144,
        ));
        assert_eq!(
            list.to_string(),
            "[spec.containers[0].image: Required value, metadata.annotations: Too long: may not be more than 262144 bytes]"
        );
    }
}
