//! Signing keys: generated on first start and stored in the database, parsed once and
//! kept in memory, so that no request parses a key (one of the invariants in
//! ARCHITECTURE.md: hot paths do no slow work).
//!
//! Access tokens are RFC 9068 JWTs signed with Ed25519 (`EdDSA`); id_tokens are signed
//! with RSA (`RS256`, OpenID Connect's mandatory algorithm) by keys of their own. The `kid`
//! of every key is its RFC 7638 JWK thumbprint. Each purpose has its own rotation: a new
//! key is published `publish_ahead` seconds before it signs (so that every replica and
//! every cached key set knows it first, SEC-JW-08), the key it replaces stays published
//! until the tokens it signed have expired, and a revoked (compromised) key leaves at once.
//!
//! By concern, from the ground up: `claims.rs` (what tokens say), `error.rs` (`KeyError`),
//! `generate.rs` (new keys of each purpose and their thumbprints), `rotation.rs` (where a
//! key stands, which one signs, `keys rotate` and `keys revoke`), `schedule.rs` (rotation
//! on `tokens.key_rotation_days`, once across replicas), `ring.rs` (`KeyRing`: the
//! keys in memory, loaded and reloaded), `sign.rs` and `verify.rs` (a token signed and
//! checked with them).

mod claims;
mod error;
mod generate;
mod ring;
mod rotation;
mod schedule;
mod sign;
mod verify;

pub use claims::{ACCESS_TOKEN_TYP, AccessClaims, ID_TOKEN_TTL_SECONDS, IdTokenClaims, at_hash};
pub use error::KeyError;
pub use generate::{
    PURPOSE_ACCESS_TOKEN, PURPOSE_ID_TOKEN, PURPOSES, RSA_BITS, generate, generate_ed25519,
    generate_rsa,
};
pub use ring::KeyRing;
pub use rotation::{KeyState, KeyTimes, key_states, revoke, rotate};
pub use schedule::{RotationPolicy, current_key, rotate_due};
pub use verify::{JwtRejection, MAX_TOKEN_LEN, NBF_LEEWAY_SECONDS};
