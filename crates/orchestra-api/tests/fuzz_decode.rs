//! Fuzz targets (proptest over arbitrary bytes and strings; see docs/fuzzing.md): manifest
//! decoding, label and field selector parsing, quantity parsing, the gRPC object codec and the
//! HTTP API's path and query parser never panic, and what they accept round-trips.
//!
//! Bounded for CI to 256 cases per target (well under a second; `PROPTEST_CASES` overrides); a longer
//! run: `PROPTEST_CASES=200000 cargo test -p orchestra-api --all-features --test fuzz_decode`.

use orchestra_api::manifest::{ManifestOptions, parse_bytes};
use orchestra_api::resources::Pod;
use orchestra_api::{FieldSelector, Quantity, Scheme, Selector};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text that looks like a manifest more often than random bytes do: YAML/JSON fragments,
/// the scheme's kinds and fields, glued at random.
fn manifest_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("apiVersion: v1\n".to_owned()),
        Just("apiVersion: apps/v1\n".to_owned()),
        Just("kind: Pod\n".to_owned()),
        Just("kind: Deployment\n".to_owned()),
        Just("kind: List\nitems:\n".to_owned()),
        Just("metadata:\n  name: web\n".to_owned()),
        Just("spec:\n  containers:\n  - name: c\n    image: i\n".to_owned()),
        Just("  resources: {limits: {cpu: 1e999, memory: -1Ki}}\n".to_owned()),
        Just("---\n".to_owned()),
        Just("{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"a\"}}".to_owned()),
        Just("&a [*a, *a]\n".to_owned()),
        Just("!!binary AAAA\n".to_owned()),
        "[ -~\n]{0,24}",
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_manifest_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let scheme = Scheme::new();
        let _ = parse_bytes(&scheme, &bytes, &ManifestOptions::default());
    }

    #[test]
    fn fuzz_manifest_text(text in manifest_text(), strict in any::<bool>()) {
        let scheme = Scheme::new();
        let options = ManifestOptions { strict, ..ManifestOptions::default() };
        let _ = parse_bytes(&scheme, text.as_bytes(), &options);
    }

    #[test]
    fn fuzz_label_selector(text in prop_oneof!["[a-z0-9=!,()./ -]{0,40}", any::<String>()]) {
        if let Ok(selector) = Selector::parse(&text) {
            // What parses prints back to a selector that parses.
            let printed = selector.to_string();
            let again = Selector::parse(&printed);
            prop_assert!(again.is_ok(), "{text:?} printed as {printed:?} does not parse");
        }
    }

    #[test]
    fn fuzz_field_selector(text in prop_oneof!["[a-z.=!,]{0,40}", any::<String>()]) {
        let _ = FieldSelector::parse(&text);
    }

    #[test]
    fn fuzz_quantity(text in prop_oneof!["[-+0-9.eEKMGTPimnuk]{0,24}", any::<String>()]) {
        if let Ok(q) = Quantity::parse(&text) {
            // A parsed quantity's canonical text parses to the same quantity.
            let printed = q.to_string();
            let again = Quantity::parse(&printed);
            prop_assert!(again.is_ok(), "{text:?} printed as {printed:?} does not parse");
        }
    }

    /// The gRPC object codec: an object arrives as JSON bytes; the server decodes it with the
    /// scheme (strictly, through `codec::decode_known_fields` when that takes it), the client
    /// with `codec::decode`.
    #[test]
    fn fuzz_grpc_object_codec(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            manifest_text().prop_map(|t| {
                serde_yaml_ng::from_str::<serde_json::Value>(&t)
                    .ok()
                    .and_then(|v| serde_json::to_vec(&v).ok())
                    .unwrap_or_else(|| t.into_bytes())
            }),
        ]
    ) {
        let scheme = Scheme::new();
        // The server's fast path takes only what the strict full path decodes the same way.
        if let Some(fast) = orchestra_api::codec::decode_known_fields::<Pod>(&bytes) {
            let value = serde_json::from_slice(&bytes).expect("the fast path took valid JSON");
            let full = orchestra_api::decode::<Pod>(value).and_then(|d| d.strict());
            prop_assert_eq!(full.ok(), Some(fast));
        }
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            let _ = scheme.decode(value.clone());
            if let Ok(decoded) = orchestra_api::decode::<Pod>(value) {
                // What decodes encodes, and decodes again to the same object.
                let text = orchestra_api::to_string(&decoded.object).expect("encode");
                let value = serde_json::from_str(&text).expect("valid JSON");
                let again = orchestra_api::decode::<Pod>(value).expect("decode again");
                prop_assert_eq!(again.object, decoded.object);
            }
        }
    }

    #[cfg(feature = "server")]
    #[test]
    fn fuzz_grpc_status_details(details in prop::collection::vec(any::<u8>(), 0..256), code in 0i32..20) {
        let status = tonic::Status::with_details(tonic::Code::from(code), "m", details.into());
        let _ = orchestra_api::wire::from_grpc(&status, "Pod");
    }

    #[cfg(feature = "server")]
    #[test]
    fn fuzz_http_path(
        path in prop_oneof![
            "(/(api|apis|v1|apps|namespaces|pods|default|status|%2F|%ZZ|%00|\\.\\.|))*",
            any::<String>(),
        ],
        query in proptest::option::of(prop_oneof!["[a-zA-Z=&%+0-9]{0,40}", any::<String>()]),
    ) {
        let _ = orchestra_api::server::parse_path_for_fuzzing(&path, query.as_deref());
    }
}
