//! The keys in memory: `KeyRing` loads them (making the first key of each purpose), holds
//! them parsed with their headers encoded, and swaps them whole when keys change. Tokens
//! are signed in `sign.rs` and verified in `verify.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ed25519_dalek::pkcs8::DecodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, Header};
use rsa::pkcs1::DecodeRsaPrivateKey;

use super::claims::ACCESS_TOKEN_TYP;
use super::error::KeyError;
use super::generate::{PURPOSE_ACCESS_TOKEN, PURPOSE_ID_TOKEN, PURPOSES, generate};
use super::rotation::{KeyTimes, published, signer};
use crate::db::models::SigningKeyRow;
use crate::db::{self, DbConnection};
use doorward_shared::secret::base64url;

/// A parsed private key with its JWS header already encoded: signing a token is one JSON
/// encoding of the claims and one signature.
pub(super) struct Signer<K> {
    pub(super) kid: String,
    pub(super) key: K,
    pub(super) encoded_header: String,
}

pub(super) type RsaSigningKey = rsa::pkcs1v15::SigningKey<rsa::sha2::Sha256>;

pub(super) struct LoadedKeys {
    pub(super) access: Signer<ed25519_dalek::SigningKey>,
    pub(super) id: Signer<RsaSigningKey>,
    /// Ed25519 keys only: nothing but an `EdDSA` access token ever verifies (SEC-JW-01).
    pub(super) verifying: HashMap<String, DecodingKey>,
    pub(super) jwks_json: String,
}

/// The keys in memory; swapped whole when keys change.
pub struct KeyRing {
    keys: RwLock<Arc<LoadedKeys>>,
    issuer: String,
    audience: String,
    times: KeyTimes,
    /// Counts changes of the published key set: caches of verified tokens are valid for
    /// one generation.
    generation: AtomicU64,
}

impl KeyRing {
    /// Loads the keys, generating the first one of each purpose if the database has none.
    pub fn load_or_create(
        conn: &mut DbConnection,
        issuer: &str,
        audience: &str,
        times: KeyTimes,
        now: i64,
    ) -> Result<Self, KeyError> {
        // Replicas starting together on an empty database must agree on one first key: the
        // check and the insert run in one write transaction, serialised by the table lock.
        let rows = db::write_transaction(conn, |conn| -> Result<_, KeyError> {
            db::signing_keys::lock_for_first_key(conn)?;
            let rows = db::signing_keys::list(conn)?;
            let mut generated = false;
            for purpose in PURPOSES {
                if signer(&rows, purpose, now, times).is_none() {
                    let row = generate(purpose, now)?;
                    db::signing_keys::insert(conn, &row)?;
                    tracing::info!(kid = %row.kid, purpose, "generated a first signing key");
                    generated = true;
                }
            }
            Ok(if generated {
                db::signing_keys::list(conn)?
            } else {
                rows
            })
        })?;
        let keys = build(&rows, now, times)?;
        Ok(Self {
            keys: RwLock::new(Arc::new(keys)),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            times,
            generation: AtomicU64::new(0),
        })
    }

    /// Reads the keys again, so that a `keys rotate` run anywhere reaches this process
    /// (called periodically by the token service). Returns whether a signing key changed.
    pub fn reload(&self, conn: &mut DbConnection, now: i64) -> Result<bool, KeyError> {
        let rows = db::signing_keys::list(conn)?;
        let loaded = build(&rows, now, self.times)?;
        let current = self.current();
        let changed = loaded.access.kid != current.access.kid || loaded.id.kid != current.id.kid;
        let republished = loaded.jwks_json != current.jwks_json;
        match self.keys.write() {
            Ok(mut keys) => *keys = Arc::new(loaded),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(loaded),
        }
        if republished {
            self.generation.fetch_add(1, Ordering::Release);
        }
        Ok(changed)
    }

    /// The generation of the published key set (see `validation`).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(super) fn current(&self) -> Arc<LoadedKeys> {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The issuer written into tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audience written into access tokens.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// How long keys are published around their signing life.
    pub fn times(&self) -> KeyTimes {
        self.times
    }

    /// The `kid` that signs new access tokens.
    pub fn signing_kid(&self) -> String {
        self.current().access.kid.clone()
    }

    /// The `kid` that signs new id_tokens.
    pub fn id_token_kid(&self) -> String {
        self.current().id.kid.clone()
    }

    /// The JWK Set of every published key, as served at `/oauth/discovery/keys`.
    pub fn jwks_json(&self) -> String {
        self.current().jwks_json.clone()
    }
}

fn build(rows: &[SigningKeyRow], now: i64, times: KeyTimes) -> Result<LoadedKeys, KeyError> {
    let mut verifying = HashMap::new();
    let mut jwks = Vec::new();
    for row in rows.iter().filter(|r| published(r, now, times)) {
        let corrupt = |reason: &str| KeyError::Corrupt {
            kid: row.kid.clone(),
            reason: reason.to_owned(),
        };
        let jwk: serde_json::Value =
            serde_json::from_str(&row.public_jwk).map_err(|_| corrupt("public JWK is not JSON"))?;
        if row.purpose == PURPOSE_ACCESS_TOKEN {
            let x = jwk
                .get("x")
                .and_then(|x| x.as_str())
                .ok_or_else(|| corrupt("public JWK has no x"))?;
            let decoding = DecodingKey::from_ed_components(x).map_err(|_| corrupt("bad x"))?;
            verifying.insert(row.kid.clone(), decoding);
        }
        jwks.push(jwk);
    }
    let missing = |purpose: &str| KeyError::Corrupt {
        kid: String::new(),
        reason: format!("no live {purpose} signing key"),
    };
    let access_row =
        signer(rows, PURPOSE_ACCESS_TOKEN, now, times).ok_or_else(|| missing("access-token"))?;
    let id_row = signer(rows, PURPOSE_ID_TOKEN, now, times).ok_or_else(|| missing("id_token"))?;
    let corrupt = |row: &SigningKeyRow, reason: &str| KeyError::Corrupt {
        kid: row.kid.clone(),
        reason: reason.to_owned(),
    };
    let access_key = ed25519_dalek::SigningKey::from_pkcs8_der(&access_row.private_key)
        .map_err(|_| corrupt(access_row, "private key is not PKCS#8 Ed25519"))?;
    let rsa_key = rsa::PrivateKey::from_pkcs1_der(&id_row.private_key)
        .map_err(|_| corrupt(id_row, "private key is not PKCS#1 RSA"))?;
    Ok(LoadedKeys {
        access: Signer {
            kid: access_row.kid.clone(),
            key: access_key,
            encoded_header: encoded_header(Algorithm::EdDSA, ACCESS_TOKEN_TYP, &access_row.kid)?,
        },
        id: Signer {
            kid: id_row.kid.clone(),
            key: RsaSigningKey::new(rsa_key),
            encoded_header: encoded_header(Algorithm::RS256, "JWT", &id_row.kid)?,
        },
        verifying,
        jwks_json: serde_json::json!({ "keys": jwks }).to_string(),
    })
}

fn encoded_header(alg: Algorithm, typ: &str, kid: &str) -> Result<String, KeyError> {
    let mut header = Header::new(alg);
    header.typ = Some(typ.to_owned());
    header.kid = Some(kid.to_owned());
    let json = serde_json::to_vec(&header).map_err(|e| KeyError::Corrupt {
        kid: kid.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(base64url(&json))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::keys::generate::{generate_ed25519, generate_rsa};
    use crate::keys::rotation::{KeyState, key_states};

    const TIMES: KeyTimes = KeyTimes {
        published_for: 7_500,
        publish_ahead: 0,
    };

    fn rsa_row() -> SigningKeyRow {
        static RSA: std::sync::OnceLock<SigningKeyRow> = std::sync::OnceLock::new();
        RSA.get_or_init(|| generate_rsa(1_000).expect("rsa key"))
            .clone()
    }

    /// A ring of a fresh Ed25519 key and the shared RSA key, as loaded at 1_000.
    pub(in crate::keys) fn ring() -> KeyRing {
        let rows = [generate_ed25519(1_000).expect("key"), rsa_row()];
        KeyRing {
            keys: RwLock::new(Arc::new(build(&rows, 1_000, TIMES).expect("build"))),
            issuer: "http://issuer".into(),
            audience: "http://issuer".into(),
            times: TIMES,
            generation: AtomicU64::new(0),
        }
    }

    #[test]
    fn retired_keys_stay_published_until_their_tokens_expire() {
        let old = SigningKeyRow {
            retired_at: Some(2_000),
            ..generate_ed25519(1_000).unwrap()
        };
        let new = generate_ed25519(2_000).unwrap();
        let rows = [new.clone(), rsa_row(), old.clone()];
        let keys = build(&rows, 2_100, TIMES).unwrap();
        assert_eq!(keys.access.kid, new.kid, "the newest live key signs");
        assert!(
            keys.verifying.contains_key(&old.kid),
            "the retired key still verifies"
        );
        assert!(keys.jwks_json.contains(&old.kid));
        let later = build(&rows, 2_000 + 7_500, TIMES).unwrap();
        assert!(!later.verifying.contains_key(&old.kid) && !later.jwks_json.contains(&old.kid));
    }

    #[test]
    fn a_new_key_is_published_before_it_signs() {
        let times = KeyTimes {
            published_for: 7_500,
            publish_ahead: 60,
        };
        // `keys rotate` at 2_000: the old key signs until 2_060, the new one from then on.
        let old = SigningKeyRow {
            retired_at: Some(2_060),
            ..generate_ed25519(1_000).unwrap()
        };
        let new = generate_ed25519(2_000).unwrap();
        let rows = [new.clone(), rsa_row(), old.clone()];
        let during = build(&rows, 2_030, times).unwrap();
        assert_eq!(during.access.kid, old.kid, "the old key still signs");
        assert!(
            during.jwks_json.contains(&new.kid),
            "the new key is published"
        );
        assert!(during.verifying.contains_key(&new.kid));
        let after = build(&rows, 2_060, times).unwrap();
        assert_eq!(after.access.kid, new.kid, "the new key signs");
        assert!(
            after.jwks_json.contains(&old.kid),
            "the old key stays published"
        );
        let states = key_states(&rows, 2_030, times);
        assert_eq!(
            states,
            [KeyState::Published, KeyState::Signing, KeyState::Signing]
        );
        let states = key_states(&rows, 2_060 + 7_500, times);
        assert_eq!(
            states,
            [KeyState::Signing, KeyState::Signing, KeyState::Expired]
        );
    }

    #[test]
    fn a_rotation_right_after_the_first_start_still_publishes_first() {
        let times = KeyTimes {
            published_for: 7_500,
            publish_ahead: 10,
        };
        // First key and its replacement made in the same second.
        let first = SigningKeyRow {
            retired_at: Some(1_010),
            ..generate_ed25519(1_000).unwrap()
        };
        let next = generate_ed25519(1_000).unwrap();
        let rows = [next.clone(), rsa_row(), first.clone()];
        assert_eq!(build(&rows, 1_005, times).unwrap().access.kid, first.kid);
        assert_eq!(build(&rows, 1_010, times).unwrap().access.kid, next.kid);
    }

    #[test]
    fn a_revoked_key_is_neither_published_nor_trusted() {
        let revoked = SigningKeyRow {
            revoked_at: Some(1_500),
            ..generate_ed25519(1_000).unwrap()
        };
        let live = generate_ed25519(1_500).unwrap();
        let rows = [live.clone(), rsa_row(), revoked.clone()];
        let keys = build(&rows, 1_600, TIMES).unwrap();
        assert!(!keys.jwks_json.contains(&revoked.kid));
        assert!(!keys.verifying.contains_key(&revoked.kid));
        assert_eq!(key_states(&rows, 1_600, TIMES)[2], KeyState::Revoked);
    }
}
