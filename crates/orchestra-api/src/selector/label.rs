//! Label selectors: [`Selector`], its [`Requirement`]s, the string parser and the matcher.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::SelectorError;
use super::lexer::{Token, tokenize};
use crate::meta::{LabelSelector, LabelSelectorOperator};
use crate::validation::names;

/// How a [`Requirement`] relates a label to its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    /// `key=value` or `key==value`: present with that value.
    Equals,
    /// `key!=value`: absent, or present with another value.
    NotEquals,
    /// `key in (a,b)`: present with one of the values.
    In,
    /// `key notin (a,b)`: absent, or present with none of the values.
    NotIn,
    /// `key`: present.
    Exists,
    /// `!key`: absent.
    DoesNotExist,
    /// `key>n`: present with an integer value greater than `n`.
    GreaterThan,
    /// `key<n`: present with an integer value less than `n`.
    LessThan,
}

/// One condition of a [`Selector`] on one label key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// A requirement, checked: the key is a qualified name, the values are label values and
    /// their number fits the operator (one for `=`/`!=`/`>`/`<`, at least one for
    /// `in`/`notin`, none for exists/`!`), `>`/`<` values are integers. Values are sorted and
    /// deduplicated.
    pub fn new(
        key: impl Into<String>,
        operator: Operator,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, SelectorError> {
        let key = key.into();
        let mut values: Vec<String> = values.into_iter().map(Into::into).collect();
        values.sort();
        values.dedup();
        let render = || format!("{key} {operator:?} {values:?}");
        if let Some(msg) = names::is_qualified_name(&key).into_iter().next() {
            return Err(SelectorError::new(
                &render(),
                format!("invalid label key {key:?}: {msg}"),
            ));
        }
        let count_ok = match operator {
            Operator::Equals | Operator::NotEquals => values.len() == 1,
            Operator::In | Operator::NotIn => !values.is_empty(),
            Operator::Exists | Operator::DoesNotExist => values.is_empty(),
            Operator::GreaterThan | Operator::LessThan => values.len() == 1,
        };
        if !count_ok {
            let want = match operator {
                Operator::Equals | Operator::NotEquals => {
                    "exactly one value for '=', '==' and '!='"
                }
                Operator::In | Operator::NotIn => "at least one value for 'in' and 'notin'",
                Operator::Exists | Operator::DoesNotExist => "no values for exists and '!'",
                Operator::GreaterThan | Operator::LessThan => "exactly one value for '>' and '<'",
            };
            return Err(SelectorError::new(
                &render(),
                format!("key {key:?} needs {want}"),
            ));
        }
        for value in &values {
            if matches!(operator, Operator::GreaterThan | Operator::LessThan) {
                if value.parse::<i64>().is_err() {
                    return Err(SelectorError::new(
                        &render(),
                        format!("for '>' and '<' the value must be an integer, found {value:?}"),
                    ));
                }
            } else if let Some(msg) = names::is_valid_label_value(value).into_iter().next() {
                return Err(SelectorError::new(
                    &render(),
                    format!("invalid label value {value:?}: {msg}"),
                ));
            }
        }
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether the labels (looked up through `get`) satisfy the requirement.
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        let value = get(&self.key);
        let contains = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::Equals | Operator::In => value.is_some_and(contains),
            Operator::NotEquals | Operator::NotIn => !value.is_some_and(contains),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(actual), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > bound
                } else {
                    actual < bound
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.values.first().map_or("", String::as_str);
        match self.operator {
            Operator::Equals => write!(f, "{}={first}", self.key),
            Operator::NotEquals => write!(f, "{}!={first}", self.key),
            Operator::In => write!(f, "{} in ({})", self.key, self.values.join(",")),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, self.values.join(",")),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::GreaterThan => write!(f, "{}>{first}", self.key),
            Operator::LessThan => write!(f, "{}<{first}", self.key),
        }
    }
}

/// A label selector: all its requirements must hold. See the [module docs](super).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl Selector {
    /// The selector that matches everything (no requirement).
    pub fn everything() -> Self {
        Selector::default()
    }

    /// The selector that matches nothing (what an absent `LabelSelector` means).
    pub fn nothing() -> Self {
        Selector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses a selector string: comma-separated requirements.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        Parser::new(input).parse()
    }

    /// An equality selector from a label map (a Service's `selector`, `matchLabels`).
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Result<Self, SelectorError> {
        let mut selector = Selector::everything();
        for (k, v) in labels {
            selector = selector.with(Requirement::new(k, Operator::Equals, [v])?);
        }
        Ok(selector)
    }

    /// The selector of an optional [`LabelSelector`]: absent matches nothing, empty matches
    /// everything (Kubernetes' `LabelSelectorAsSelector`).
    pub fn from_label_selector(selector: Option<&LabelSelector>) -> Result<Self, SelectorError> {
        match selector {
            None => Ok(Selector::nothing()),
            Some(s) => Selector::try_from(s),
        }
    }

    /// Adds a requirement (kept sorted by key, as Kubernetes does).
    pub fn with(mut self, requirement: Requirement) -> Self {
        let at = self
            .requirements
            .partition_point(|r| r.key <= requirement.key);
        self.requirements.insert(at, requirement);
        self
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether the selector matches everything.
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether the selector matches nothing.
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    /// Whether the labels match.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|k| labels.get(k).map(String::as_str))
    }

    /// Whether the labels, looked up through `get`, match.
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches_with(&get))
    }
}

impl TryFrom<&LabelSelector> for Selector {
    type Error = SelectorError;

    fn try_from(s: &LabelSelector) -> Result<Self, SelectorError> {
        let mut selector = Selector::from_labels(&s.match_labels)?;
        for expr in &s.match_expressions {
            let operator = match expr.operator {
                LabelSelectorOperator::In => Operator::In,
                LabelSelectorOperator::NotIn => Operator::NotIn,
                LabelSelectorOperator::Exists => Operator::Exists,
                LabelSelectorOperator::DoesNotExist => Operator::DoesNotExist,
            };
            selector = selector.with(Requirement::new(&expr.key, operator, &expr.values)?);
        }
        Ok(selector)
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, SelectorError> {
        Selector::parse(s)
    }
}

impl fmt::Display for Selector {
    /// The canonical string, which parses back to an equal selector; the nothing-selector
    /// shows as `<nothing>`, which does not parse.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nothing {
            return f.write_str("<nothing>");
        }
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Parser {
            input,
            tokens: tokenize(input),
            pos: 0,
        }
    }

    fn peek(&self) -> &Token {
        self.tokens.get(self.pos).unwrap_or(&Token::End)
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        self.pos += 1;
        token
    }

    fn error(&self, message: String) -> SelectorError {
        SelectorError::new(self.input, message)
    }

    fn parse(mut self) -> Result<Selector, SelectorError> {
        let mut selector = Selector::everything();
        if *self.peek() == Token::End {
            return Ok(selector);
        }
        loop {
            let requirement = self.requirement()?;
            selector = selector.with(requirement);
            match self.next() {
                Token::End => return Ok(selector),
                Token::Comma => {}
                other => {
                    return Err(self.error(format!(
                        "found {}, expected: ',' or end of string",
                        other.describe()
                    )));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let requirement = match self.next() {
            Token::DoesNotExist => {
                let key = self.key()?;
                Requirement::new(key, Operator::DoesNotExist, Vec::<String>::new())
            }
            Token::Identifier(key) => match self.peek().clone() {
                Token::Comma | Token::End => {
                    Requirement::new(key, Operator::Exists, Vec::<String>::new())
                }
                Token::Equals | Token::DoubleEquals => {
                    self.next();
                    let value = self.exact_value()?;
                    Requirement::new(key, Operator::Equals, [value])
                }
                Token::NotEquals => {
                    self.next();
                    let value = self.exact_value()?;
                    Requirement::new(key, Operator::NotEquals, [value])
                }
                Token::GreaterThan | Token::LessThan => {
                    let op = if self.next() == Token::GreaterThan {
                        Operator::GreaterThan
                    } else {
                        Operator::LessThan
                    };
                    let value = self.exact_value()?;
                    Requirement::new(key, op, [value])
                }
                Token::In | Token::NotIn => {
                    let op = if self.next() == Token::In {
                        Operator::In
                    } else {
                        Operator::NotIn
                    };
                    let values = self.value_set()?;
                    Requirement::new(key, op, values)
                }
                other => {
                    return Err(self.error(format!(
                        "found {}, expected: in, notin, =, ==, !=, >, <, ',' or end of string",
                        other.describe()
                    )));
                }
            },
            other => {
                return Err(self.error(format!(
                    "found {}, expected: !, or a label key",
                    other.describe()
                )));
            }
        };
        requirement.map_err(|e| self.error(e.message))
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        match self.next() {
            Token::Identifier(key) => Ok(key),
            other => Err(self.error(format!("found {}, expected: a label key", other.describe()))),
        }
    }

    /// The value after `=`, `!=`, `>` or `<`; empty when the requirement ends there.
    fn exact_value(&mut self) -> Result<String, SelectorError> {
        match self.peek().clone() {
            Token::Comma | Token::End => Ok(String::new()),
            Token::Identifier(value) => {
                self.next();
                Ok(value)
            }
            Token::In => {
                self.next();
                Ok("in".to_owned())
            }
            Token::NotIn => {
                self.next();
                Ok("notin".to_owned())
            }
            other => Err(self.error(format!(
                "found {}, expected: a label value",
                other.describe()
            ))),
        }
    }

    /// `( v1, v2, ... )`; an empty item between commas is the empty value.
    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        match self.next() {
            Token::OpenParen => {}
            other => {
                return Err(self.error(format!("found {}, expected: '('", other.describe())));
            }
        }
        let mut values = Vec::new();
        if *self.peek() == Token::CloseParen {
            self.next();
            return Ok(values);
        }
        loop {
            let value = match self.peek().clone() {
                Token::Comma | Token::CloseParen => String::new(),
                Token::Identifier(v) => {
                    self.next();
                    v
                }
                Token::In => {
                    self.next();
                    "in".to_owned()
                }
                Token::NotIn => {
                    self.next();
                    "notin".to_owned()
                }
                other => {
                    return Err(self.error(format!(
                        "found {}, expected: a label value, ',' or ')'",
                        other.describe()
                    )));
                }
            };
            values.push(value);
            match self.next() {
                Token::Comma => {}
                Token::CloseParen => return Ok(values),
                other => {
                    return Err(
                        self.error(format!("found {}, expected: ',' or ')'", other.describe()))
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn sel(s: &str) -> Selector {
        s.parse().unwrap()
    }

    #[test]
    fn equality_and_set_based_requirements() {
        let l = labels(&[("app", "web"), ("env", "prod"), ("cores", "8")]);
        for (s, want) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=api", true),
            ("missing!=x", true),
            ("env in (prod,staging)", true),
            ("env in (dev)", false),
            ("env notin (dev)", true),
            ("env notin (prod)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("cores>4", true),
            ("cores<4", false),
            ("app>4", false),
            ("app=web,env=prod", true),
            ("app=web,env=dev", false),
            ("  app = web ,  env in ( prod , dev )  ", true),
        ] {
            assert_eq!(sel(s).matches(&l), want, "{s:?}");
        }
    }

    #[test]
    fn canonical_display() {
        assert_eq!(sel("b=1,a in (y, x),!c").to_string(), "a in (x,y),b=1,!c");
        assert_eq!(sel("a==b").to_string(), "a=b");
        assert_eq!(sel("a=").to_string(), "a=");
        assert!(sel("a=").matches(&labels(&[("a", "")])));
        assert_eq!(Selector::nothing().to_string(), "<nothing>");
        assert!(!Selector::nothing().matches(&labels(&[])));
    }

    #[test]
    fn errors_are_clear() {
        for (input, fragment) in [
            ("a in ()", "at least one value"),
            ("a in (x", "expected: ',' or ')'"),
            ("a in x", "expected: '('"),
            ("a=b=c", "expected: ',' or end of string"),
            ("=a", "expected: !, or a label key"),
            ("!", "expected: a label key"),
            ("a,", "expected: !, or a label key"),
            ("bad key!=x", "expected: in, notin"),
            ("a=b c", "expected: ',' or end of string"),
            ("a>x", "must be an integer"),
            ("Bad_/x=1", "invalid label key"),
            ("a=bad value!", "expected"),
            ("a=-x", "invalid label value"),
        ] {
            let err = Selector::parse(input).unwrap_err();
            assert!(err.to_string().contains(fragment), "{input:?}: {err}");
            assert!(
                err.to_string().contains(&format!("{input:?}")),
                "{input:?}: {err}"
            );
        }
    }

    #[test]
    fn from_label_selector() {
        let ls = LabelSelector {
            match_labels: labels(&[("app", "web")]),
            match_expressions: vec![crate::meta::LabelSelectorRequirement {
                key: "tier".into(),
                operator: LabelSelectorOperator::NotIn,
                values: vec!["db".into()],
            }],
        };
        let s = Selector::try_from(&ls).unwrap();
        assert_eq!(s.to_string(), "app=web,tier notin (db)");
        assert!(s.matches(&labels(&[("app", "web")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "db")])));
        assert!(Selector::from_label_selector(None).unwrap().is_nothing());
        assert!(
            Selector::from_label_selector(Some(&LabelSelector::default()))
                .unwrap()
                .is_everything()
        );
    }

    fn any_requirement() -> impl Strategy<Value = Requirement> {
        let key = prop::sample::select(vec!["a", "b", "app", "example.com/tier"]);
        let value = prop::sample::select(vec!["", "x", "y", "web", "1", "10"]);
        let op = prop::sample::select(vec![
            Operator::Equals,
            Operator::NotEquals,
            Operator::In,
            Operator::NotIn,
            Operator::Exists,
            Operator::DoesNotExist,
            Operator::GreaterThan,
            Operator::LessThan,
        ]);
        (key, op, prop::collection::vec(value, 1..4)).prop_map(|(k, op, values)| {
            let values: Vec<&str> = match op {
                Operator::Exists | Operator::DoesNotExist => vec![],
                Operator::Equals | Operator::NotEquals => vec![values[0]],
                Operator::GreaterThan | Operator::LessThan => vec!["5"],
                // `key in ()` does not parse (as in Kubernetes), so a lone empty value has no
                // string form: keep empty values out of sets.
                Operator::In | Operator::NotIn => {
                    let set: Vec<&str> = values.into_iter().filter(|v| !v.is_empty()).collect();
                    if set.is_empty() { vec!["x"] } else { set }
                }
            };
            Requirement::new(k, op, values).unwrap()
        })
    }

    /// A reference evaluation of one requirement, written from the definitions.
    fn model(r: &Requirement, l: &BTreeMap<String, String>) -> bool {
        let v = l.get(r.key());
        match r.operator() {
            Operator::Equals | Operator::In => v.is_some_and(|v| r.values().contains(v)),
            Operator::NotEquals | Operator::NotIn => v.is_none_or(|v| !r.values().contains(v)),
            Operator::Exists => v.is_some(),
            Operator::DoesNotExist => v.is_none(),
            Operator::GreaterThan => v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|n| n > 5),
            Operator::LessThan => v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|n| n < 5),
        }
    }

    proptest! {
        #[test]
        fn display_parses_back_and_matching_follows_the_model(
            reqs in prop::collection::vec(any_requirement(), 0..5),
            label_pairs in prop::collection::btree_map(
                prop::sample::select(vec!["a", "b", "app", "example.com/tier"]).prop_map(String::from),
                prop::sample::select(vec!["", "x", "y", "web", "1", "10"]).prop_map(String::from),
                0..4,
            ),
        ) {
            let selector = reqs.iter().cloned().fold(Selector::everything(), Selector::with);
            let text = selector.to_string();
            let parsed = Selector::parse(&text).unwrap();
            prop_assert_eq!(&parsed, &selector, "{}", text);
            let want = reqs.iter().all(|r| model(r, &label_pairs));
            prop_assert_eq!(parsed.matches(&label_pairs), want);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in "[a-z!=(), <>]{0,30}|\\PC{0,30}") {
            if let Ok(selector) = Selector::parse(&s) {
                prop_assert_eq!(Selector::parse(&selector.to_string()).unwrap(), selector);
            }
        }
    }
}
