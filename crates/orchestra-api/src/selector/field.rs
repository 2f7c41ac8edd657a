//! Field selectors: `metadata.name=web,status.phase!=Running`.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::SelectorError;
use crate::resource::Resource;
use crate::scheme::DynResource;

/// The operator of a [`FieldRequirement`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `=` or `==`.
    Equals,
    /// `!=`.
    NotEquals,
}

/// One condition of a [`FieldSelector`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    /// The field's path, e.g. `spec.nodeName`.
    pub field: String,
    /// The operator.
    pub operator: FieldOperator,
    /// The value, unescaped.
    pub value: String,
}

impl FieldRequirement {
    fn holds(&self, actual: &str) -> bool {
        match self.operator {
            FieldOperator::Equals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

/// A field selector: all its requirements must hold. An empty one matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses `field=value,field!=value`; `\,`, `\=` and `\\` escape those characters in
    /// values.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        if input.trim().is_empty() {
            return Ok(FieldSelector { requirements });
        }
        for term in split_unescaped(input, ',') {
            requirements.push(parse_term(input, term)?);
        }
        Ok(FieldSelector { requirements })
    }

    /// A selector of one `field=value` requirement.
    pub fn equals(field: impl Into<String>, value: impl Into<String>) -> Self {
        FieldSelector {
            requirements: vec![FieldRequirement {
                field: field.into(),
                operator: FieldOperator::Equals,
                value: value.into(),
            }],
        }
    }

    /// The requirements, in order.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The value `field` must equal, if a requirement `field=value` restricts it (as
    /// Kubernetes' `RequiresExactMatch`): a list or watch with `metadata.name=NAME` can only
    /// see the object `NAME`, so authorization treats it as a request naming it.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }

    /// Whether it has no requirement.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether every requirement holds for the values `get` returns (`None` reads as `""`).
    pub fn matches_with(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.holds(get(&r.field).as_deref().unwrap_or("")))
    }

    /// Checks that `R` supports every field used (`metadata.name`, `metadata.namespace` and
    /// `R::SELECTABLE_FIELDS`).
    pub fn check<R: Resource>(&self) -> Result<(), SelectorError> {
        for r in &self.requirements {
            let supported = r.field == "metadata.name"
                || r.field == "metadata.namespace"
                || R::SELECTABLE_FIELDS.contains(&r.field.as_str());
            if !supported {
                return Err(unsupported(self, &r.field, R::KIND));
            }
        }
        Ok(())
    }

    /// Whether the object matches; an error names a field its kind does not support.
    pub fn matches<R: Resource>(&self, object: &R) -> Result<bool, SelectorError> {
        self.matches_fields(|f| object.field(f), R::KIND)
    }

    /// [`FieldSelector::matches`] for an object of any kind.
    pub fn matches_dyn(&self, object: &dyn DynResource) -> Result<bool, SelectorError> {
        self.matches_fields(|f| object.field(f), object.type_info().kind)
    }

    fn matches_fields(
        &self,
        get: impl Fn(&str) -> Option<String>,
        kind: &str,
    ) -> Result<bool, SelectorError> {
        let mut matched = true;
        for r in &self.requirements {
            match get(&r.field) {
                Some(actual) => matched &= r.holds(&actual),
                None => return Err(unsupported(self, &r.field, kind)),
            }
        }
        Ok(matched)
    }

    /// Whether a JSON object matches, reading fields by their dotted paths (a missing field
    /// reads as `""`; numbers and booleans as their JSON text).
    pub fn matches_value(&self, object: &Value) -> bool {
        self.matches_with(|field| {
            let mut current = object;
            for part in field.split('.') {
                current = current.get(part)?;
            }
            match current {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            }
        })
    }
}

fn unsupported(selector: &FieldSelector, field: &str, kind: &str) -> SelectorError {
    SelectorError::new(
        &selector.to_string(),
        format!("field label not supported for {kind}: {field}"),
    )
}

/// Splits on `sep` where it is not escaped by a backslash.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_term(input: &str, term: &str) -> Result<FieldRequirement, SelectorError> {
    let mut escaped = false;
    for (i, c) in term.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            continue;
        }
        let rest = &term[i..];
        let (operator, len) = if rest.starts_with("!=") {
            (FieldOperator::NotEquals, 2)
        } else if rest.starts_with("==") {
            (FieldOperator::Equals, 2)
        } else if rest.starts_with('=') {
            (FieldOperator::Equals, 1)
        } else {
            continue;
        };
        let field = term[..i].trim();
        if field.is_empty() {
            return Err(SelectorError::new(
                input,
                format!("invalid field selector term {term:?}: the field name is empty"),
            ));
        }
        let value = unescape(input, term[i + len..].trim())?;
        return Ok(FieldRequirement {
            field: field.to_owned(),
            operator,
            value,
        });
    }
    Err(SelectorError::new(
        input,
        format!(
            "invalid field selector term {term:?}: expected field=value, field==value or field!=value"
        ),
    ))
}

fn unescape(input: &str, value: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            if c == ',' || c == '=' {
                return Err(SelectorError::new(
                    input,
                    format!("invalid field selector value {value:?}: unescaped {c:?}; write \\{c}"),
                ));
            }
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(e @ ('\\' | ',' | '=')) => out.push(e),
            Some(e) => {
                return Err(SelectorError::new(
                    input,
                    format!(
                        "invalid escape sequence \\{e} in {value:?}; only \\\\, \\, and \\= are allowed"
                    ),
                ));
            }
            None => {
                return Err(SelectorError::new(
                    input,
                    format!("invalid field selector value {value:?}: it ends in a lone backslash"),
                ));
            }
        }
    }
    Ok(out)
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, SelectorError> {
        FieldSelector::parse(s)
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match r.operator {
                FieldOperator::Equals => "=",
                FieldOperator::NotEquals => "!=",
            };
            write!(f, "{}{op}{}", r.field, escape(&r.value))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::ObjectMeta;
    use crate::resources::{Pod, PodPhase, PodSpec, PodStatus};
    use proptest::prelude::*;
    use serde_json::json;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta::namespaced("default", "web-1"),
            spec: PodSpec {
                node_name: "node-a".into(),
                ..PodSpec::default()
            },
            status: Some(PodStatus {
                phase: Some(PodPhase::Running),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn typed_matching() {
        let p = pod();
        for (s, want) in [
            ("", true),
            ("metadata.name=web-1", true),
            ("metadata.name==web-2", false),
            ("metadata.namespace=default,spec.nodeName=node-a", true),
            ("spec.nodeName!=node-a", false),
            ("spec.nodeName=", false),
            ("status.phase=Running", true),
            ("status.phase!=Pending", true),
        ] {
            let selector: FieldSelector = s.parse().unwrap();
            assert_eq!(selector.matches(&p).unwrap(), want, "{s}");
        }
        let unbound = FieldSelector::parse("spec.nodeName=").unwrap();
        assert!(unbound.matches(&Pod::default()).unwrap());
        let err = FieldSelector::parse("spec.hostNetwork=true")
            .unwrap()
            .matches(&p)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to parse selector \"spec.hostNetwork=true\": field label not supported for Pod: spec.hostNetwork"
        );
        assert!(
            FieldSelector::parse("status.phase=Running")
                .unwrap()
                .check::<Pod>()
                .is_ok()
        );
    }

    #[test]
    fn json_matching_and_escapes() {
        let value = json!({"metadata": {"name": "a,b=c"}, "spec": {"replicas": 3}});
        let s = FieldSelector::parse(r"metadata.name=a\,b\=c,spec.replicas=3").unwrap();
        assert!(s.matches_value(&value));
        assert_eq!(s.to_string(), r"metadata.name=a\,b\=c,spec.replicas=3");
        assert!(
            FieldSelector::parse("spec.missing=")
                .unwrap()
                .matches_value(&value)
        );
    }

    #[test]
    fn bad_field_selectors() {
        for (input, fragment) in [
            ("metadata.name", "expected field=value"),
            ("=x", "the field name is empty"),
            (r"a=\q", "invalid escape sequence"),
            (r"a=b\", "lone backslash"),
            ("a=b=c", "unescaped '='"),
        ] {
            let err = FieldSelector::parse(input).unwrap_err();
            assert!(err.to_string().contains(fragment), "{input}: {err}");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(
            reqs in prop::collection::vec(
                ("[a-z]{1,5}(\\.[a-zA-Z]{1,5}){0,2}", any::<bool>(), "[a-z,=\\\\ !-]{0,6}"),
                1..4,
            ),
        ) {
            let selector = FieldSelector {
                requirements: reqs
                    .into_iter()
                    .map(|(field, eq, value)| FieldRequirement {
                        field,
                        operator: if eq { FieldOperator::Equals } else { FieldOperator::NotEquals },
                        value: value.trim().to_owned(),
                    })
                    .collect(),
            };
            let text = selector.to_string();
            prop_assert_eq!(FieldSelector::parse(&text).unwrap(), selector, "{}", text);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,30}") {
            let _ = FieldSelector::parse(&s);
        }
    }

    #[test]
    fn an_exact_name_requirement_names_the_object() {
        let named = |input: &str| {
            FieldSelector::parse(input)
                .unwrap()
                .requires_exact_match("metadata.name")
                .map(str::to_owned)
        };
        assert_eq!(named("metadata.name=app"), Some("app".into()));
        assert_eq!(named("metadata.name==app"), Some("app".into()));
        assert_eq!(
            named("metadata.namespace=shop,metadata.name=app"),
            Some("app".into())
        );
        assert_eq!(named("metadata.name!=app"), None);
        assert_eq!(named("metadata.namespace=shop"), None);
        assert_eq!(named(""), None);
    }
}
