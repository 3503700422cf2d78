//! Cookie sessions: signed and encrypted (actix-session's private cookies), so that auth-web
//! keeps no state and replicas sharing the key share sessions. `HttpOnly`, `SameSite=Lax`,
//! `Secure` when the public URL is https; idle and absolute lifetimes are enforced here.
//! The session also holds the CSRF token of every form (synchroniser-token pattern).

use actix_session::config::{CookieContentSecurity, PersistentSession};
use actix_session::storage::CookieSessionStore;
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::{Key, SameSite};
use base64::Engine;
use doorward_shared::Secret;
use doorward_shared::config::Config;
use doorward_shared::secret::{base64url, constant_time_eq, random_bytes};
use serde::{Deserialize, Serialize};

/// The session cookie's name over plain HTTP.
pub const COOKIE_NAME: &str = "doorward_session";
/// Its name over HTTPS: the `__Host-` prefix makes browsers refuse it unless it is `Secure`,
/// has `Path=/` and no `Domain`, so no other host or plaintext page can plant or shadow it.
pub const SECURE_COOKIE_NAME: &str = "__Host-doorward_session";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "authenticity_token";

/// The signed-in user, as the session remembers them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionUser {
    /// User id.
    pub id: i64,
    /// User name, for display.
    pub username: String,
    /// When the user last entered their password (OIDC `auth_time`).
    pub auth_time: i64,
    /// Administrator?
    pub admin: bool,
}

/// Parses a configured key (64 bytes in base64) or explains what is wrong.
pub fn parse_key(secret: &Secret) -> Result<Key, String> {
    let text = secret.expose().trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
        .map_err(|_| "web.session_key must be base64".to_owned())?;
    Key::try_from(bytes.as_slice()).map_err(|_| "web.session_key must be 64 bytes".to_owned())
}

/// A new random key, in the form `parse_key` reads.
pub fn generate_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(random_bytes::<64>())
}

/// The session middleware for `config`.
pub fn middleware(config: &Config, key: Key) -> SessionMiddleware<CookieSessionStore> {
    let secure = config.public_url.starts_with("https://");
    let name = if secure {
        SECURE_COOKIE_NAME
    } else {
        COOKIE_NAME
    };
    SessionMiddleware::builder(CookieSessionStore::default(), key)
        .cookie_name(name.to_owned())
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_secure(secure)
        .cookie_path("/".to_owned())
        .cookie_content_security(CookieContentSecurity::Private)
        .session_lifecycle(PersistentSession::default().session_ttl(
            actix_web::cookie::time::Duration::seconds(config.web.session_absolute_seconds),
        ))
        .build()
}

const USER: &str = "user";
const CREATED: &str = "created_at";
const SEEN: &str = "seen_at";
const CSRF: &str = "csrf";

/// The signed-in user, if the session is within its idle and absolute lifetimes; an expired
/// session is cleared.
pub fn current_user(session: &Session, config: &Config, now: i64) -> Option<SessionUser> {
    let user = session.get::<SessionUser>(USER).ok().flatten()?;
    let created = session.get::<i64>(CREATED).ok().flatten().unwrap_or(0);
    let seen = session.get::<i64>(SEEN).ok().flatten().unwrap_or(0);
    if now - created > config.web.session_absolute_seconds
        || now - seen > config.web.session_idle_seconds
    {
        session.purge();
        return None;
    }
    // Refresh the idle clock at most once a minute, to keep cookie churn low.
    if now - seen > 60 {
        let _ = session.insert(SEEN, now);
    }
    Some(user)
}

const PENDING: &str = "pending_authorization";

/// An authorization request waiting for the user's decision, kept in the (encrypted)
/// session so that the consent form carries only its id (SEC-SC-02).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingAuthorization {
    id: String,
    query: String,
}

/// Remembers the request shown on a consent page; returns the id the form carries.
pub fn remember_pending(session: &Session, query: String) -> String {
    let id = base64url(&random_bytes::<16>());
    let _ = session.insert(
        PENDING,
        PendingAuthorization {
            id: id.clone(),
            query,
        },
    );
    id
}

/// The query string of the pending request `id`, removed from the session (one answer per
/// consent page).
pub fn take_pending(session: &Session, id: Option<&str>) -> Option<String> {
    let pending = session
        .get::<PendingAuthorization>(PENDING)
        .ok()
        .flatten()?;
    session.remove(PENDING);
    (Some(pending.id.as_str()) == id).then_some(pending.query)
}

/// Signs `user` in: a new session (no fixation), with a new CSRF token.
pub fn sign_in(session: &Session, user: SessionUser, now: i64) {
    // `purge` would also drop the inserts below; clear + renew starts a new session.
    session.clear();
    session.renew();
    let _ = session.insert(USER, user);
    let _ = session.insert(CREATED, now);
    let _ = session.insert(SEEN, now);
    let _ = session.insert(CSRF, base64url(&random_bytes::<32>()));
}

/// Signs out.
pub fn sign_out(session: &Session) {
    session.purge();
}

/// The session's CSRF token, created on first use.
pub fn csrf_token(session: &Session) -> String {
    if let Ok(Some(token)) = session.get::<String>(CSRF) {
        return token;
    }
    let token = base64url(&random_bytes::<32>());
    let _ = session.insert(CSRF, &token);
    token
}

/// Replaces the CSRF token, so that the form just answered cannot be sent again (a reload
/// of the page that shows a new secret must not register a second application).
pub fn rotate_csrf(session: &Session) -> String {
    let token = base64url(&random_bytes::<32>());
    let _ = session.insert(CSRF, &token);
    token
}

/// Whether `presented` is this session's CSRF token (constant time).
pub fn csrf_valid(session: &Session, presented: Option<&str>) -> bool {
    match (session.get::<String>(CSRF).ok().flatten(), presented) {
        (Some(expected), Some(presented)) => {
            constant_time_eq(expected.as_bytes(), presented.as_bytes())
        }
        _ => false,
    }
}

/// A return address after sign-in: a local path only, never another origin (no open
/// redirect): it starts with one `/`, and holds no backslash or control character.
pub fn safe_return_path(candidate: Option<&str>) -> Option<String> {
    let path = candidate?;
    let local = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
        && path.len() <= 4096;
    local.then(|| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_return_addresses() {
        assert_eq!(
            safe_return_path(Some("/oauth/authorize?x=1")).as_deref(),
            Some("/oauth/authorize?x=1")
        );
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "evil",
            "/\nx",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_return_path(Some(bad)), None, "{bad}");
        }
    }

    #[test]
    fn keys_must_be_64_bytes_of_base64() {
        assert!(parse_key(&Secret::new(generate_key())).is_ok());
        assert!(parse_key(&Secret::new("c2hvcnQ=")).is_err());
        assert!(parse_key(&Secret::new("!!!")).is_err());
    }
}
