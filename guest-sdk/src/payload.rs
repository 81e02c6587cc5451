//! How payloads are decoded and results encoded: JSON by default, raw bytes on request.

use std::any::type_name;
use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Failure;

/// Raw bytes, passed through without JSON encoding or decoding.
///
/// Use `Job<Bytes>` to receive the payload exactly as enqueued, and return `Bytes` to make the
/// job's result exactly these bytes. `Bytes` deliberately implements neither `Serialize` nor
/// `Deserialize`, so that it is never mistaken for a JSON value.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// Returns the bytes, consuming the wrapper.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for Bytes {
    /// Writes the bytes as an escaped byte string (`b"{\"hi\":1}"`), which reads better than a
    /// list of numbers for the mostly-text payloads jobs carry.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

impl Deref for Bytes {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for Bytes {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&[u8]> for Bytes {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl From<String> for Bytes {
    fn from(text: String) -> Self {
        Self(text.into_bytes())
    }
}

impl From<&str> for Bytes {
    fn from(text: &str) -> Self {
        Self(text.as_bytes().to_vec())
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(bytes: Bytes) -> Self {
        bytes.0
    }
}

/// Decodes a job's payload bytes into the type a handler asks for.
///
/// Implemented for every `T: serde::de::DeserializeOwned` (the payload is JSON) and for
/// [`Bytes`] (the payload as it is). Implement it for a type of your own to use another
/// encoding; a payload that cannot be decoded should be a [`Failure::permanent`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be decoded from a job payload",
    label = "the payload type of `Job<T>` must be `Deserialize` or `spool_guest::Bytes`",
    note = "derive `serde::Deserialize` for it, or take `Job<spool_guest::Bytes>` for raw bytes"
)]
pub trait FromPayload: Sized {
    /// Decodes `payload`, or says why it cannot be.
    fn from_payload(payload: Vec<u8>) -> Result<Self, Failure>;
}

impl<T> FromPayload for T
where
    T: DeserializeOwned,
{
    /// Decodes JSON; bytes that are not JSON of the right shape are a permanent failure, since
    /// they would be just as malformed on a retry.
    fn from_payload(payload: Vec<u8>) -> Result<Self, Failure> {
        if payload.is_empty() {
            return Err(Failure::permanent(format!(
                "the payload is empty, but the handler expects JSON for `{}`",
                type_name::<T>()
            )));
        }
        serde_json::from_slice(&payload).map_err(|error| {
            Failure::permanent(format!(
                "the payload is not valid JSON for `{}`: {error}",
                type_name::<T>()
            ))
        })
    }
}

impl FromPayload for Bytes {
    fn from_payload(payload: Vec<u8>) -> Result<Self, Failure> {
        Ok(Bytes(payload))
    }
}

/// Encodes what a handler returns into the job's result bytes.
///
/// Implemented for every `T: serde::Serialize` (the result is JSON, and `()` is `null`) and for
/// [`Bytes`] (the result is those bytes).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a job result",
    label = "a handler's `Ok` value must be `Serialize` or `spool_guest::Bytes`",
    note = "derive `serde::Serialize` for it, or return `spool_guest::Bytes` for raw bytes"
)]
pub trait IntoJobResult {
    /// Encodes the result, or says why it cannot be.
    fn into_job_result(self) -> Result<Vec<u8>, Failure>;
}

impl<T> IntoJobResult for T
where
    T: Serialize,
{
    /// Encodes JSON; a value that cannot be encoded (a map with non-string keys, say) is a
    /// permanent failure, since it would fail the same way on a retry.
    fn into_job_result(self) -> Result<Vec<u8>, Failure> {
        serde_json::to_vec(&self).map_err(|error| {
            Failure::permanent(format!(
                "the handler's result `{}` cannot be encoded as JSON: {error}",
                type_name::<T>()
            ))
        })
    }
}

impl IntoJobResult for Bytes {
    fn into_job_result(self) -> Result<Vec<u8>, Failure> {
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Order {
        id: String,
        amount_cents: u64,
    }

    #[test]
    fn json_payload_decodes_into_a_struct() {
        let order = Order::from_payload(br#"{"id":"o-1","amount_cents":1250}"#.to_vec()).unwrap();
        assert_eq!(
            order,
            Order {
                id: "o-1".into(),
                amount_cents: 1250
            }
        );
    }

    #[test]
    fn malformed_payload_is_a_permanent_failure_naming_the_type() {
        let failure = Order::from_payload(br#"{"id":"o-1"}"#.to_vec()).unwrap_err();
        assert!(failure.is_permanent());
        assert!(failure.message().contains("Order"), "{failure}");
        assert!(failure.message().contains("amount_cents"), "{failure}");
    }

    #[test]
    fn invalid_json_is_a_permanent_failure() {
        let failure = serde_json::Value::from_payload(b"{not json".to_vec()).unwrap_err();
        assert!(failure.is_permanent());
        assert!(
            failure
                .message()
                .starts_with("the payload is not valid JSON"),
            "{failure}"
        );
    }

    #[test]
    fn empty_payload_is_a_permanent_failure_for_json() {
        let failure = Order::from_payload(Vec::new()).unwrap_err();
        assert!(failure.is_permanent());
        assert!(failure.message().contains("empty"), "{failure}");
    }

    #[test]
    fn bytes_payload_is_not_decoded() {
        let raw = b"\xff\x00 not json".to_vec();
        assert_eq!(Bytes::from_payload(raw.clone()).unwrap(), Bytes(raw));
        assert_eq!(Bytes::from_payload(Vec::new()).unwrap(), Bytes::default());
    }

    #[test]
    fn serializable_result_is_encoded_as_json() {
        #[derive(Serialize)]
        struct Receipt {
            order: &'static str,
        }
        let bytes = Receipt { order: "o-1" }.into_job_result().unwrap();
        assert_eq!(bytes, br#"{"order":"o-1"}"#);
    }

    #[test]
    fn unit_result_is_json_null() {
        assert_eq!(().into_job_result().unwrap(), b"null");
    }

    #[test]
    fn bytes_result_passes_through() {
        assert_eq!(
            Bytes::from("raw \u{1}").into_job_result().unwrap(),
            b"raw \x01"
        );
    }

    #[test]
    fn unencodable_result_is_a_permanent_failure() {
        let map: HashMap<Vec<u8>, u8> = HashMap::from([(vec![1], 1)]);
        let failure = map.into_job_result().unwrap_err();
        assert!(failure.is_permanent());
    }

    #[test]
    fn bytes_debug_reads_as_text() {
        assert_eq!(
            format!("{:?}", Bytes::from("{\"a\":1}\n")),
            r#"b"{\"a\":1}\n""#
        );
    }
}
