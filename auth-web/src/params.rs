//! Request bodies of the OAuth endpoints: read with a size cap (SEC-DS-01), parsed as
//! `application/x-www-form-urlencoded` or JSON (GitLab accepts both), every parameter at
//! most once (RFC 6749 §3.1, §3.2).

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::web::{Bytes, BytesMut, Payload};
use futures::StreamExt;

use crate::error::OAuthError;

/// Largest body accepted (the issue's 64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most parameters a request may carry (SEC-DS-01).
pub const MAX_PARAMS: usize = 100;
/// Largest single parameter value accepted.
pub const MAX_PARAM_BYTES: usize = 4 * 1024;

/// How much of an oversized body is read and thrown away before answering 413, so that a
/// client still sending gets the answer instead of a reset connection.
const MAX_DRAINED_BYTES: usize = 2 * 1024 * 1024;

/// Reads the whole body, refusing it with 413 when it passes `MAX_BODY_BYTES`.
pub async fn read_body(mut payload: Payload) -> Result<Bytes, OAuthError> {
    let mut body = BytesMut::new();
    let mut received = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|_| OAuthError::invalid_request("The request body could not be read."))?;
        received += chunk.len();
        if received > MAX_BODY_BYTES {
            if received > MAX_DRAINED_BYTES {
                break;
            }
            continue;
        }
        body.extend_from_slice(&chunk);
    }
    if received > MAX_BODY_BYTES {
        return Err(OAuthError::invalid_request(format!(
            "The request body is larger than {MAX_BODY_BYTES} bytes."
        ))
        .status(StatusCode::PAYLOAD_TOO_LARGE));
    }
    Ok(body.freeze())
}

/// The members of a JSON object in document order, duplicates included.
struct JsonMembers(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for JsonMembers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = JsonMembers;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JsonMembers, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, serde_json::Value>()? {
                    if members.len() >= MAX_PARAMS {
                        return Err(serde::de::Error::custom("too many members"));
                    }
                    members.push(member);
                }
                Ok(JsonMembers(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// Parameters of a request body.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `body` according to the request's `Content-Type`.
    pub fn parse(req: &HttpRequest, body: &[u8]) -> Result<Self, OAuthError> {
        let content_type = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let text = std::str::from_utf8(body)
            .map_err(|_| OAuthError::invalid_request("The request body is not valid UTF-8."))?;
        let pairs = match content_type.as_str() {
            "application/json" => Self::json_pairs(text)?,
            "application/x-www-form-urlencoded" | "" => serde_urlencoded::from_str::<
                Vec<(String, String)>,
            >(text)
            .map_err(|_| OAuthError::invalid_request("The request body is not a valid form."))?,
            _ => {
                return Err(OAuthError::invalid_request(
                    "The request body must be application/x-www-form-urlencoded or application/json.",
                ));
            }
        };
        Self::from_pairs(pairs)
    }

    /// Parses a query string with the same rules.
    pub fn parse_query(query: &str) -> Result<Self, OAuthError> {
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .map_err(|_| OAuthError::invalid_request("The query string is malformed."))?;
        Self::from_pairs(pairs)
    }

    fn json_pairs(text: &str) -> Result<Vec<(String, String)>, OAuthError> {
        let bad =
            || OAuthError::invalid_request("The request body is not a JSON object of parameters.");
        // Deserialised as a list of members, so that a repeated key is seen (serde_json's
        // maps keep the last value silently) and refused like a repeated form field.
        let members = serde_json::from_str::<JsonMembers>(text).map_err(|_| bad())?;
        let mut pairs = Vec::with_capacity(members.0.len());
        for (key, value) in members.0 {
            let value = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Null => continue,
                _ => return Err(bad()),
            };
            pairs.push((key, value));
        }
        Ok(pairs)
    }

    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, OAuthError> {
        if pairs.len() > MAX_PARAMS {
            return Err(OAuthError::invalid_request(format!(
                "The request has more than {MAX_PARAMS} parameters."
            )));
        }
        let shown = |name: &str| crate::error::quoted(&name.chars().take(64).collect::<String>());
        let mut seen = std::collections::HashSet::with_capacity(pairs.len());
        for (name, value) in &pairs {
            if !seen.insert(name.as_str()) {
                return Err(OAuthError::invalid_request(format!(
                    "The parameter {} is included more than once.",
                    shown(name)
                )));
            }
            if value.len() > MAX_PARAM_BYTES {
                return Err(OAuthError::invalid_request(format!(
                    "The parameter {} is too long.",
                    shown(name)
                )));
            }
            // NUL is never part of a legitimate value, and PostgreSQL text cannot hold it.
            if name.contains('\0') || value.contains('\0') {
                return Err(OAuthError::invalid_request(format!(
                    "The parameter {} contains a NUL character.",
                    shown(name)
                )));
            }
        }
        Ok(Self(pairs))
    }

    /// The value of `name`, if present (an empty value counts as absent, as in doorkeeper).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// An owned copy of `get`.
    pub fn owned(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    /// Whether any parameter is present under `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn repeated_parameters_are_refused() {
        let err = Params::parse_query("client_id=a&client_id=b").unwrap_err();
        assert_eq!(err.code, doorward_shared::ErrorCode::InvalidRequest);
    }

    #[test]
    fn repeated_json_members_and_nul_bytes_are_refused() {
        let pairs = Params::json_pairs(r#"{"client_id":"a","client_id":"b"}"#).unwrap();
        assert!(Params::from_pairs(pairs).is_err());
        assert!(Params::parse_query("client_id=a%00b").is_err());
        let many = (0..101)
            .map(|i| format!("p{i}=x"))
            .collect::<Vec<_>>()
            .join("&");
        assert!(Params::parse_query(&many).is_err());
    }

    #[test]
    fn json_objects_of_scalars_are_parameters() {
        let pairs = Params::json_pairs(r#"{"grant_type":"password","n":1,"x":null}"#).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("grant_type".into(), "password".into()),
                ("n".into(), "1".into())
            ]
        );
        assert!(Params::json_pairs("[1,2]").is_err());
        assert!(Params::json_pairs(r#"{"a":{"b":1}}"#).is_err());
    }

    proptest! {
        #[test]
        fn query_parsing_never_panics(input in ".{0,300}") {
            let _ = Params::parse_query(&input);
        }
    }
}
