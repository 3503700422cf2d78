//! Secrets (client secrets, refresh tokens, codes, passwords) live in a wrapper whose
//! `Debug` and `Display` print `[redacted]`, so that no log line can carry one by accident.
//! Only their SHA-256 is ever stored, and comparisons are constant-time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret value that never prints itself.
#[derive(Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plaintext, for the one place that must hash or send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the value, the only form in which it is stored.
    pub fn sha256(&self) -> [u8; 32] {
        sha256(self.0.as_bytes())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Constant-time equality of two byte strings (SEC-TK-02). Lengths are not secret.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// `n` random bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// 32 random bytes as URL-safe base64 without padding: refresh tokens, codes, device codes
/// (256 bits of entropy: docs/security-model.md, "Ground rules").
pub fn random_token() -> Secret {
    Secret(URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// A random identifier (128 bits, hex) for things that are not secret.
pub fn random_id() -> String {
    hex::encode(random_bytes::<16>())
}

/// An identifier that sorts by creation time, for rows that are inserted at a high rate and
/// indexed by it (`jti`, refresh-family ids): 48 bits of milliseconds since the Unix epoch,
/// then 80 random bits, as 32 hex digits (the layout of a UUIDv7, without its version bits).
/// New keys land on the last page of their index instead of on a random one, so a group of
/// inserts dirties (and writes to the WAL) one leaf page, not one page per row. Not secret:
/// the time is the token's `iat` anyway, and a signed token is only ever trusted for its
/// signature.
pub fn time_ordered_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    rand::rng().fill_bytes(&mut bytes[6..]);
    hex::encode(bytes)
}

/// URL-safe base64 without padding.
pub fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
    }

    #[test]
    fn random_tokens_are_43_chars_of_urlsafe_base64() {
        let token = random_token();
        assert_eq!(token.expose().len(), 43);
        assert!(
            token
                .expose()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(token, random_token());
    }

    #[test]
    fn time_ordered_ids_sort_by_creation_time_and_differ_within_a_millisecond() {
        let first = time_ordered_id();
        let same_millisecond: Vec<String> = (0..1000).map(|_| time_ordered_id()).collect();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = time_ordered_id();
        assert_eq!(first.len(), 32);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(first < later, "{first} sorts before {later}");
        let mut distinct = same_millisecond.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), same_millisecond.len());
        // The time is in the first 12 digits.
        let millis = u64::from_str_radix(&later[..12], 16).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(now - millis < 60_000);
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
