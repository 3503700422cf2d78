//! Redirect URIs: validation at registration (RFC 6749 §3.1.2, RFC 8252, RFC 9700 §2.1 and
//! §4.1.3; SEC-RU-03/04/06) and matching at the authorization endpoint (SEC-RU-01/02/05).
//!
//! Matching is plain string equality. The one exception is RFC 8252 §7.3: for an `http`
//! loopback URI (`127.0.0.0/8`, `[::1]`, `localhost`) the port may differ, and nothing else.

use url::Url;

/// Schemes refused at registration (GitLab's `forbid_redirect_uri`).
const FORBIDDEN_SCHEMES: &[&str] = &["javascript", "data", "vbscript", "file"];
/// Query keys that the authorization response itself sets (SEC-RU-06).
const RESERVED_QUERY_KEYS: &[&str] = &["code", "state", "iss", "error", "session_state"];
/// Longest redirect URI accepted (SEC-DS-01).
pub const MAX_REDIRECT_URI_LEN: usize = 2048;

/// A registrable redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// Validates a URI for registration; the error is the message the form shows.
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
        if value.contains('*') || value.contains('\\') || value.chars().any(char::is_whitespace) {
            return Err("must be a valid URI.");
        }
        let url = Url::parse(value).map_err(|e| match e {
            url::ParseError::RelativeUrlWithoutBase => "must be an absolute URI.",
            _ => "must be a valid URI.",
        })?;
        let scheme = url.scheme();
        if FORBIDDEN_SCHEMES.contains(&scheme) {
            return Err("is forbidden by the server.");
        }
        match scheme {
            "https" | "http" => {
                // The WHATWG parser repairs `https:///host` and `https:host`; a registered
                // URI must be written out: scheme, `://`, a non-empty authority.
                let rest = &value[scheme.len()..];
                let authority_ok = rest.starts_with("://") && !rest[3..].starts_with('/');
                if !authority_ok || url.host_str().is_none_or(str::is_empty) {
                    return Err("must be a valid URI.");
                }
                if !url.username().is_empty()
                    || url.password().is_some()
                    || authority(value).contains('@')
                {
                    return Err("cannot contain user information.");
                }
                // RFC 9700 §2.6: plain http only to the device itself (RFC 8252 §7.3).
                if scheme == "http" && strip_loopback_port(value).is_none() {
                    return Err("must be an HTTPS/SSL URI.");
                }
            }
            // RFC 8252 §7.1: private-use schemes in reverse-DNS form (com.example.app:/cb).
            _ if scheme.contains('.') => {}
            _ => {
                return Err(
                    "must use https, http on a loopback address, or a reverse-DNS app scheme.",
                );
            }
        }
        let path = path_of(value);
        if path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
            || path.contains(';')
        {
            return Err("cannot contain dot segments or path parameters.");
        }
        if url
            .query_pairs()
            .any(|(key, _)| RESERVED_QUERY_KEYS.contains(&key.as_ref()))
        {
            return Err(
                "cannot contain the query parameters code, state, iss, error or session_state.",
            );
        }
        Ok(Self(value.to_owned()))
    }

    /// The URI as registered.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The authority part of an `scheme://authority/...` string, as written.
fn authority(value: &str) -> &str {
    let Some((_, rest)) = value.split_once("://") else {
        return "";
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    &rest[..end]
}

/// The path part of a URI string, as written.
fn path_of(value: &str) -> &str {
    let after_scheme = match value.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => value.split_once(':').map_or("", |(_, rest)| rest),
    };
    after_scheme.split('?').next().unwrap_or("")
}

/// `http://HOST:PORT/rest` with the port removed, if HOST is a loopback address.
fn strip_loopback_port(value: &str) -> Option<String> {
    let rest = value.strip_prefix("http://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.ends_with(':') => {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            host
        }
        _ => authority,
    };
    let loopback = host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback.then(|| format!("http://{host}{tail}"))
}

/// Whether `requested` matches the registered `registered` (SEC-RU-01/02/05).
pub fn matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    match (
        strip_loopback_port(registered),
        strip_loopback_port(requested),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The registered URI that `requested` matches, if any.
pub fn find_match<'a>(
    registered: impl IntoIterator<Item = &'a str>,
    requested: &str,
) -> Option<&'a str> {
    registered.into_iter().find(|r| matches(r, requested))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_web_native_and_loopback_uris() {
        for ok in [
            "https://app.example/callback",
            "https://app.example/cb?x=1",
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb",
            "http://[::1]/cb",
            "com.example.app:/oauth2redirect",
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

    #[test]
    fn sec_ru_03_userinfo_and_backslash_tricks_are_refused_at_registration() {
        for bad in [
            "https://app.example@evil.example/cb",
            "https://app.example%2F@evil.example",
            "https://app.example\\@evil.example",
            "https://user:pw@app.example/cb",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sec_ru_04_dot_segments_and_path_parameters_are_refused_at_registration() {
        for bad in [
            "https://app.example/cb/../evil",
            "https://app.example/cb/..;/evil",
            "https://app.example/./cb",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sec_ru_06_registration_allows_only_safe_schemes_and_no_response_parameters() {
        for bad in [
            "http://app.example/cb",
            "myapp:/cb",
            "https://app.example/*",
            "https://app.example/cb?code=1",
            "https://app.example/cb?state=x",
            "https://app.example/cb?iss=x",
            "urn:ietf:wg:oauth:2.0:oob",
            "file:///etc/passwd",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sec_ru_01_matching_is_exact() {
        let registered = "https://app.example/cb";
        assert!(matches(registered, registered));
        for variant in [
            "https://app.example/cb/",
            "https://app.example/CB",
            "https://app.example:443/cb",
            "https://app.example/c%62",
            "HTTPS://app.example/cb",
            "https://app.example@evil.example/cb",
            "https://app.example.evil.example/cb",
            "https://app.example/cb/../evil",
        ] {
            assert!(!matches(registered, variant), "{variant}");
        }
    }

    #[test]
    fn sec_ru_02_extra_missing_or_reordered_query_parameters_do_not_match() {
        let registered = "https://app.example/cb?x=1";
        for variant in [
            "https://app.example/cb?x=1&y=2",
            "https://app.example/cb?y=2&x=1",
            "https://app.example/cb",
        ] {
            assert!(!matches(registered, variant), "{variant}");
        }
    }

    #[test]
    fn sec_ru_05_loopback_uris_may_vary_only_their_port() {
        let registered = "http://127.0.0.1/cb";
        assert!(matches(registered, "http://127.0.0.1:5123/cb"));
        assert!(matches(
            "http://127.0.0.1:8080/cb",
            "http://127.0.0.1:5123/cb"
        ));
        assert!(matches("http://[::1]/cb", "http://[::1]:4000/cb"));
        assert!(matches("http://localhost/cb", "http://localhost:4000/cb"));
        for variant in [
            "http://127.0.0.1:5123/cb?x=1",
            "http://127.0.0.1:5123/cb2",
            "http://app.example/cb",
            "http://127.0.0.2:5123/cb",
            "http://127.0.0.1:x/cb",
            "https://127.0.0.1:5123/cb",
        ] {
            assert!(!matches(registered, variant), "{variant}");
        }
        // No exception for other hosts, even on another port.
        assert!(!matches(
            "https://app.example/cb",
            "https://app.example:8443/cb"
        ));
    }
}
