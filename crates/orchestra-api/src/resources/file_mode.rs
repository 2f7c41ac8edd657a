//! Reading file modes (`defaultMode`, `mode` of volumes) the way Kubernetes manifests spell
//! them: `0440` (YAML 1.1 octal), `0o440` (YAML 1.2 octal) or `288` (decimal).
//!
//! Kubernetes reads YAML 1.1, where an integer with a leading `0` is octal, so manifests
//! write `defaultMode: 0440`. Our YAML reader ([`serde_yaml_ng`]) follows YAML 1.2, where
//! `0440` is not a number at all: it hands over the *string* `"0440"`, and the field would
//! be refused (or, if read as decimal, mean 440, a different mode). The fix lives here, on
//! the few fields that are file modes, rather than in the YAML reader: turning every
//! leading-zero scalar of a document into an octal number would also rewrite strings that
//! mean something else (`version: 0123`, a zip code in a ConfigMap's `data`, an image tag).
//! YAML's `0o440` is already an integer by the time it gets here; the same spelling as a
//! string is accepted too.
//!
//! JSON has no octal: a JSON number is decimal, always. The reader cannot tell a string that
//! came from YAML from one written as a JSON string, so `"0440"` in JSON reads as octal as
//! well (Kubernetes would refuse it; being lenient here changes no valid object).
//!
//! Only the spelling is checked here: a well-formed mode outside `0..=0777` decodes, and
//! validation refuses it with its path (`spec.volumes[0].secret.defaultMode: Invalid value:
//! 1023: ...`), as Kubernetes does, so that one run reports it with every other mistake.
//! Serialization is untouched: a mode is written as a plain decimal integer.

use std::fmt;

use serde::Deserializer;
use serde::de::{self, Visitor};

/// What a file mode may be written as, for error messages.
const EXPECTED: &str = "a file mode: octal such as 0644 or 0o644, or a decimal integer such as 420";

/// Deserializes an optional file mode (use with `#[serde(deserialize_with = ...)]` and
/// `default`): an integer, or a string of octal digits after `0` or `0o`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i32>, D::Error> {
    deserializer.deserialize_option(OptionVisitor)
}

/// Parses a file mode written as a string: `0440` or `0o440` (octal).
pub(crate) fn parse_octal(text: &str) -> Result<i32, String> {
    let digits = match text.strip_prefix("0o") {
        Some(digits) => digits,
        None if text.starts_with('0') => text,
        None => {
            return Err(format!(
                "{text:?} is not {EXPECTED} (a string must be octal digits after 0 or 0o)"
            ));
        }
    };
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!(
            "{text:?} is not {EXPECTED} (octal digits are 0 to 7)"
        ));
    }
    i32::from_str_radix(digits, 8).map_err(|_| format!("{text:?} is too large for a file mode"))
}

struct OptionVisitor;

impl<'de> Visitor<'de> for OptionVisitor {
    type Value = Option<i32>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(ModeVisitor).map(Some)
    }
}

struct ModeVisitor;

impl<'de> Visitor<'de> for ModeVisitor {
    type Value = i32;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i32, E> {
        i32::try_from(v).map_err(|_| E::custom(format!("{v} is too large for a file mode")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i32, E> {
        i32::try_from(v).map_err(|_| E::custom(format!("{v} is too large for a file mode")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i32, E> {
        parse_octal(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::parse_octal;
    use crate::resources::Pod;
    use crate::{Scheme, to_value};

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Modes {
        #[serde(deserialize_with = "super::deserialize")]
        mode: Option<i32>,
    }

    fn mode(value: serde_json::Value) -> Result<Option<i32>, String> {
        serde_json::from_value::<Modes>(json!({ "mode": value }))
            .map(|m| m.mode)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn octal_strings_decimal_numbers_and_null() {
        assert_eq!(parse_octal("0440"), Ok(0o440));
        assert_eq!(parse_octal("0o440"), Ok(288));
        assert_eq!(parse_octal("00"), Ok(0));
        assert_eq!(parse_octal("0"), Ok(0));
        assert_eq!(parse_octal("0o0"), Ok(0));
        assert_eq!(mode(json!("0600")), Ok(Some(384)));
        assert_eq!(
            mode(json!(288)),
            Ok(Some(0o440)),
            "JSON numbers are decimal"
        );
        assert_eq!(mode(json!(null)), Ok(None));
        let absent: Modes = serde_json::from_value(json!({})).unwrap();
        assert_eq!(absent.mode, None);
    }

    #[test]
    fn malformed_modes_are_refused_with_what_was_wrong() {
        for (input, wrong) in [
            (json!("0999"), "\"0999\" is not a file mode"),
            (json!("0o8"), "octal digits are 0 to 7"),
            (json!("abc"), "a string must be octal digits after 0 or 0o"),
            (json!("440"), "a string must be octal digits after 0 or 0o"),
            (json!("0o"), "octal digits are 0 to 7"),
            (
                json!("-0440"),
                "a string must be octal digits after 0 or 0o",
            ),
            (json!("0o77777777777"), "too large for a file mode"),
            (
                json!(4_294_967_296_u64),
                "4294967296 is too large for a file mode",
            ),
            (
                json!(-4_294_967_296_i64),
                "-4294967296 is too large for a file mode",
            ),
            (json!(288.5), "expected a file mode"),
            (json!(true), "expected a file mode"),
            (json!([0o440]), "expected a file mode"),
        ] {
            let err = mode(input.clone()).expect_err(&input.to_string());
            assert!(err.contains(wrong), "{input}: {err}");
        }
    }

    #[test]
    fn a_bad_mode_names_its_field_path_and_modes_encode_as_integers() {
        let pod = |default_mode: serde_json::Value| {
            json!({
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                "spec": {
                    "containers": [{"name": "web", "image": "busybox"}],
                    "volumes": [{"name": "cm", "configMap": {
                        "name": "app", "defaultMode": default_mode,
                        "items": [{"key": "a", "path": "a", "mode": "0o600"}]
                    }}]
                }
            })
        };
        let err = Scheme::new().decode(pod(json!("abc"))).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.volumes[0].configMap.defaultMode: \"abc\" is not a file mode"),
            "{err}"
        );

        let decoded = Scheme::new().decode(pod(json!("0440"))).unwrap();
        let pod: &Pod = decoded.object.downcast_ref().unwrap();
        let source = pod.spec.volumes[0].config_map.as_ref().unwrap();
        assert_eq!(source.default_mode, Some(0o440));
        assert_eq!(source.items[0].mode, Some(0o600));
        let encoded = to_value(pod).unwrap();
        assert_eq!(
            encoded["spec"]["volumes"][0]["configMap"]["defaultMode"],
            288
        );
        assert_eq!(
            encoded["spec"]["volumes"][0]["configMap"]["items"][0]["mode"],
            384
        );
    }
}
