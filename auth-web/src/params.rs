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
/// Largest single parameter value accepted.
pub const MAX_PARAM_BYTES: usize = 4 * 1024;

/// Reads the whole body, refusing it with 413 as soon as it passes `MAX_BODY_BYTES`.
pub async fn read_body(mut payload: Payload) -> Result<Bytes, OAuthError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|_| OAuthError::invalid_request("The request body could not be read."))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(OAuthError::invalid_request(format!(
                "The request body is larger than {MAX_BODY_BYTES} bytes."
            ))
            .status(StatusCode::PAYLOAD_TOO_LARGE));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
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
        let value: serde_json::Value = serde_json::from_str(text).map_err(|_| bad())?;
        let object = value.as_object().ok_or_else(bad)?;
        let mut pairs = Vec::with_capacity(object.len());
        for (key, value) in object {
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Null => continue,
                _ => return Err(bad()),
            };
            pairs.push((key.clone(), value));
        }
        Ok(pairs)
    }

    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, OAuthError> {
        for (i, (name, value)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(other, _)| other == name) {
                return Err(OAuthError::invalid_request(format!(
                    "The parameter {} is included more than once.",
                    crate::error::quoted(&name.chars().take(64).collect::<String>())
                )));
            }
            if value.len() > MAX_PARAM_BYTES {
                return Err(OAuthError::invalid_request(format!(
                    "The parameter {} is too long.",
                    crate::error::quoted(&name.chars().take(64).collect::<String>())
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
        assert_eq!(err.code, "invalid_request");
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
