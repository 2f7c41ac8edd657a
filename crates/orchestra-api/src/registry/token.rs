//! The `continue` token of a paged list: the revision the first page was read at and the key
//! the next page starts from, so that every page reads the same snapshot.
//!
//! The format (`{revision}.{hex of the key}`) is opaque to callers; anything else is refused
//! as a bad request.

use orchestra_store::Revision;

use super::error::ApiError;

/// Where the next page of a list starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ContinueToken {
    /// The store revision every page reads.
    pub revision: Revision,
    /// The first key of the next page.
    pub start_key: Vec<u8>,
}

impl ContinueToken {
    /// The token's text.
    pub fn encode(&self) -> String {
        let mut out = format!("{}.", self.revision);
        for byte in &self.start_key {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }

    /// Reads a token produced by [`ContinueToken::encode`].
    pub fn decode(token: &str) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::BadRequest(format!(
                "invalid continue token {token:?}: pass the `continue` value of the previous page unchanged, or list again without it"
            ))
        };
        let (revision, hex) = token.split_once('.').ok_or_else(bad)?;
        let revision: Revision = revision.parse().map_err(|_| bad())?;
        if revision <= 0 || hex.is_empty() || hex.len() % 2 != 0 {
            return Err(bad());
        }
        let start_key = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(bad)?;
        Ok(ContinueToken {
            revision,
            start_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let token = ContinueToken {
            revision: 42,
            start_key: b"/registry/pods/default/b\0".to_vec(),
        };
        assert_eq!(ContinueToken::decode(&token.encode()).unwrap(), token);
        for bad in [
            "", "abc", "12", "12.", "x.00", "-1.00", "3.0g", "3.abc", "3.é0",
        ] {
            assert!(
                matches!(ContinueToken::decode(bad), Err(ApiError::BadRequest(_))),
                "{bad}"
            );
        }
    }
}
