//! Redirect URIs as registered (RFC 6749 §3.1.2, doorkeeper's checks, GitLab's forbidden
//! schemes). Once parsed, a `RedirectUri` is absolute, has no fragment and no forbidden
//! scheme. Matching at the authorization endpoint arrives with the code flow.

use url::Url;

/// Schemes refused at registration (GitLab's `forbid_redirect_uri`).
const FORBIDDEN_SCHEMES: &[&str] = &["javascript", "data", "vbscript"];
/// Longest redirect URI accepted (SEC-DS-01).
pub const MAX_REDIRECT_URI_LEN: usize = 2048;

/// A registrable redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// Validates a URI for registration; the error is the message doorkeeper shows.
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let value = value.trim();
        if value.is_empty() {
            return Err("must be a valid URI.");
        }
        if value.len() > MAX_REDIRECT_URI_LEN {
            return Err("is too long.");
        }
        if value.contains('#') {
            return Err("cannot contain a fragment.");
        }
        let url = Url::parse(value).map_err(|e| match e {
            url::ParseError::RelativeUrlWithoutBase => "must be an absolute URI.",
            _ => "must be a valid URI.",
        })?;
        if FORBIDDEN_SCHEMES.contains(&url.scheme()) {
            return Err("is forbidden by the server.");
        }
        if matches!(url.scheme(), "http" | "https") {
            // The WHATWG parser repairs `https:///host` and `https:host`; a registered URI
            // must be written out properly: scheme, `://`, a non-empty authority.
            let rest = &value[url.scheme().len()..];
            let authority_ok = rest.starts_with("://") && !rest[3..].starts_with('/');
            if !authority_ok || url.host_str().is_none_or(str::is_empty) {
                return Err("must be a valid URI.");
            }
        }
        if url.cannot_be_a_base() && !value.starts_with("urn:ietf:wg:oauth:2.0:oob") {
            return Err("must be an absolute URI.");
        }
        Ok(Self(value.to_owned()))
    }

    /// The URI as registered.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_web_native_and_loopback_uris() {
        for ok in [
            "https://app.example/callback",
            "http://127.0.0.1:8080/cb",
            "com.example.app:/oauth2redirect",
            "urn:ietf:wg:oauth:2.0:oob",
        ] {
            assert!(RedirectUri::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_fragments_forbidden_schemes_and_relative_uris() {
        assert_eq!(
            RedirectUri::parse("https://a.example/cb#x"),
            Err("cannot contain a fragment.")
        );
        assert_eq!(
            RedirectUri::parse("javascript:alert(1)"),
            Err("is forbidden by the server.")
        );
        assert_eq!(
            RedirectUri::parse("data:text/html,hi"),
            Err("is forbidden by the server.")
        );
        assert_eq!(
            RedirectUri::parse("VBScript:x"),
            Err("is forbidden by the server.")
        );
        assert_eq!(
            RedirectUri::parse("/callback"),
            Err("must be an absolute URI.")
        );
        assert_eq!(
            RedirectUri::parse("https:///nohost"),
            Err("must be a valid URI.")
        );
    }
}
