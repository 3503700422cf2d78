//! What can go wrong with keys: the database, a stored key that does not parse, a key that
//! could not be made, or a `kid` that names no key.

/// Errors loading or creating keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Database failure.
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
    /// A stored key could not be read.
    #[error("stored key {kid} is unreadable: {reason}")]
    Corrupt {
        /// Key id.
        kid: String,
        /// Why.
        reason: String,
    },
    /// Key generation failed.
    #[error("could not generate a key: {0}")]
    Generate(String),
    /// `keys revoke` named no such key.
    #[error("no signing key has the kid {0}")]
    UnknownKid(String),
}
