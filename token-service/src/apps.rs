//! Applications (OAuth clients): registration with validated fields, secrets shown once and
//! stored as SHA-256, rotation with an optional grace period.

use doorward_shared::GrantType;
use doorward_shared::ScopeSet;
use doorward_shared::Secret;
use doorward_shared::secret::random_bytes;

use crate::accounts::FieldError;
use crate::db::models::{ApplicationRow, NewApplication};
use crate::db::{self, DbConnection};
use crate::error::ServiceError;
use crate::redirect_uri::RedirectUri;

/// The editable fields of an application.
#[derive(Debug, Clone)]
pub struct ApplicationFields {
    /// Display name.
    pub name: String,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Registered scopes (names); empty means the default scope.
    pub scopes: Vec<String>,
    /// Confidential (has a secret) or public.
    pub confidential: bool,
    /// Trusted applications skip the consent screen.
    pub trusted: bool,
    /// Allowed grant types; empty means every one the client kind may use.
    pub grant_types: Vec<String>,
    /// Owning user.
    pub owner_id: Option<i64>,
}

/// The grant types a new application gets when none are named (by their registration
/// names): all of them, less those that need a secret for a public client.
pub fn default_grant_types(confidential: bool) -> Vec<String> {
    GrantType::ALL
        .into_iter()
        .filter(|g| confidential || !g.needs_client_secret())
        .map(|g| g.registration_name().to_owned())
        .collect()
}

/// Validated fields, ready to store.
struct Validated {
    grant_types: String,
    redirect_uris: String,
    scopes: String,
}

fn field(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

fn validate(fields: &ApplicationFields, confidential: bool) -> Result<Validated, Vec<FieldError>> {
    let mut errors = Vec::new();
    let named: Vec<&str> = fields
        .grant_types
        .iter()
        .flat_map(|g| g.split_whitespace())
        .collect();
    let mut grant_types: Vec<String> = Vec::new();
    if named.is_empty() {
        grant_types = default_grant_types(confidential);
    }
    for name in named {
        let Some(grant) = GrantType::from_registration(name) else {
            let known: Vec<&str> = GrantType::ALL.map(GrantType::registration_name).to_vec();
            errors.push(field(
                "grant_types",
                format!("{name:?} is not one of {}", known.join(", ")),
            ));
            continue;
        };
        if !confidential && grant.needs_client_secret() {
            errors.push(field(
                "grant_types",
                format!("{grant} needs a confidential application"),
            ));
        } else if !grant_types.iter().any(|g| g == name) {
            grant_types.push(name.to_owned());
        }
    }
    if fields.name.trim().is_empty() {
        errors.push(field("name", "can't be blank"));
    } else if fields.name.len() > 255 {
        errors.push(field("name", "must be at most 255 characters"));
    }
    let uris: Vec<&str> = fields
        .redirect_uris
        .iter()
        .flat_map(|u| u.split_whitespace())
        .collect();
    if uris.is_empty() {
        errors.push(field("redirect_uri", "can't be blank"));
    }
    let mut parsed = Vec::new();
    for uri in uris {
        match RedirectUri::parse(uri) {
            Ok(uri) => parsed.push(uri.as_str().to_owned()),
            Err(message) => errors.push(field("redirect_uri", format!("{uri} {message}"))),
        }
    }
    let scopes = if fields.scopes.iter().all(|s| s.trim().is_empty()) {
        Ok(ScopeSet::default_scope())
    } else {
        ScopeSet::parse(&fields.scopes.join(" "))
    };
    let scopes = match scopes {
        Ok(scopes) => scopes.to_string(),
        Err(e) => {
            errors.push(field(
                "scopes",
                format!("doesn't match configured on the server ({e})"),
            ));
            String::new()
        }
    };
    if errors.is_empty() {
        Ok(Validated {
            grant_types: grant_types.join(" "),
            redirect_uris: parsed.join("\n"),
            scopes,
        })
    } else {
        Err(errors)
    }
}

/// A new client secret: 32 random bytes, hex, with a prefix that secret scanners can spot.
pub fn new_secret() -> Secret {
    Secret::new(format!("dwcs-{}", hex::encode(random_bytes::<32>())))
}

/// A new client id: 32 random bytes, hex (GitLab's format).
fn new_uid() -> String {
    hex::encode(random_bytes::<32>())
}

/// Why an application was not saved.
#[derive(Debug)]
pub enum SaveError {
    /// Bad fields.
    Invalid(Vec<FieldError>),
    /// Infrastructure.
    Service(ServiceError),
}

impl<E: Into<ServiceError>> From<E> for SaveError {
    fn from(e: E) -> Self {
        Self::Service(e.into())
    }
}

/// Registers an application; returns it with its secret (shown this once; `None` for a
/// public application).
pub fn create(
    conn: &mut DbConnection,
    fields: &ApplicationFields,
    now: i64,
) -> Result<(ApplicationRow, Option<Secret>), SaveError> {
    let valid = validate(fields, fields.confidential).map_err(SaveError::Invalid)?;
    if let Some(owner) = fields.owner_id
        && db::users::find(conn, owner)?.is_none()
    {
        return Err(SaveError::Invalid(vec![field("owner", "is not a user")]));
    }
    let secret = fields.confidential.then(new_secret);
    let uid = new_uid();
    let row = db::applications::insert(
        conn,
        &NewApplication {
            uid: &uid,
            name: fields.name.trim(),
            secret_hash: secret.as_ref().map(|s| s.sha256().to_vec()),
            redirect_uris: &valid.redirect_uris,
            scopes: &valid.scopes,
            confidential: fields.confidential,
            trusted: fields.trusted,
            grant_types: &valid.grant_types,
            owner_id: fields.owner_id,
            created_at: now,
            updated_at: now,
        },
    )?;
    tracing::info!(target: "audit", event = "application_created", client_id = %row.uid, confidential = row.confidential, trusted = row.trusted, "an application was registered");
    Ok((row, secret))
}

/// Deletes an application with its grants and tokens; returns whether it existed.
pub fn delete(
    conn: &mut DbConnection,
    changes: &db::TokenChanges,
    uid: &str,
) -> Result<bool, ServiceError> {
    let deleted = db::applications::delete(conn, changes, uid)? > 0;
    if deleted {
        tracing::info!(target: "audit", event = "application_deleted", client_id = %uid, "an application was deleted with its grants and tokens");
    }
    Ok(deleted)
}

/// Updates name, redirect URIs, scopes and flags (not confidentiality or owner).
pub fn update(
    conn: &mut DbConnection,
    uid: &str,
    fields: &ApplicationFields,
    now: i64,
) -> Result<Option<ApplicationRow>, SaveError> {
    // Confidentiality is fixed at creation; the grant types are checked against it.
    let Some(existing) = db::applications::find_by_uid(conn, uid)? else {
        return Ok(None);
    };
    let valid = validate(fields, existing.confidential).map_err(SaveError::Invalid)?;
    let updated = db::applications::update_fields(
        conn,
        uid,
        fields.name.trim(),
        &valid.redirect_uris,
        &valid.scopes,
        fields.trusted,
        &valid.grant_types,
        now,
    )?;
    if updated == 0 {
        return Ok(None);
    }
    tracing::info!(target: "audit", event = "application_updated", client_id = %uid, trusted = fields.trusted, "an application was changed");
    Ok(db::applications::find_by_uid(conn, uid)?)
}

/// A secret issued by [`rotate_secret`].
#[derive(Debug)]
pub struct RotatedSecret {
    /// The new secret (shown this once; only its hash is stored).
    pub secret: Secret,
    /// Until when (seconds since the epoch, exclusive) the replaced secret keeps working;
    /// `None` when it stopped at once.
    pub previous_valid_until: Option<i64>,
}

/// Issues a new secret. With `grace_seconds > 0` the current one keeps working that long,
/// so that clients can be redeployed without downtime; with 0 it stops at once.
///
/// An application keeps at most one previous secret. A rotation during the grace of an
/// earlier one makes the secret it replaces the previous one (with the new grace), and the
/// secret before that stops working at once: whoever rotates twice has already replaced
/// the oldest secret, and it must not outlive a rotation that was meant to retire it.
pub fn rotate_secret(
    conn: &mut DbConnection,
    uid: &str,
    grace_seconds: i64,
    now: i64,
) -> Result<Option<RotatedSecret>, ServiceError> {
    db::write_transaction(conn, |conn| {
        let Some(app) = db::applications::find_by_uid(conn, uid)? else {
            return Ok(None);
        };
        if !app.confidential {
            return Ok(None);
        }
        let secret = new_secret();
        let (previous, until) = match app.secret_hash.clone() {
            Some(current) if grace_seconds > 0 => (Some(current), Some(now + grace_seconds)),
            _ => (None, None),
        };
        db::applications::rotate_secret(conn, uid, secret.sha256().to_vec(), previous, until, now)?;
        tracing::info!(target: "audit", event = "client_secret_rotated", client_id = %uid, grace_seconds = until.map_or(0, |u| u - now), "an application's secret was replaced");
        Ok(Some(RotatedSecret {
            secret,
            previous_valid_until: until,
        }))
    })
}

/// The redirect URIs of a row, one per entry.
pub fn redirect_uris(app: &ApplicationRow) -> Vec<String> {
    app.redirect_uris.lines().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> ApplicationFields {
        ApplicationFields {
            name: "App".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            scopes: vec!["api read_user".into()],
            confidential: true,
            trusted: false,
            grant_types: Vec::new(),
            owner_id: None,
        }
    }

    #[test]
    fn valid_fields_are_normalised() {
        let valid = validate(&fields(), true).unwrap();
        assert_eq!(
            valid.grant_types,
            "authorization_code refresh_token client_credentials password device_code"
        );
        assert_eq!(valid.scopes, "api read_user");
        assert_eq!(valid.redirect_uris, "https://app.example/cb");
    }

    #[test]
    fn bad_fields_are_all_reported() {
        let bad = ApplicationFields {
            name: " ".into(),
            redirect_uris: vec!["javascript:alert(1)".into()],
            scopes: vec!["bogus".into()],
            ..fields()
        };
        let errors = validate(&bad, true).err().unwrap();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "redirect_uri", "scopes"]);
    }

    #[test]
    fn sec_tk_06_public_clients_cannot_hold_secret_only_grants() {
        let public = ApplicationFields {
            grant_types: vec!["authorization_code password".into()],
            ..fields()
        };
        let errors = validate(&public, false).err().unwrap();
        assert_eq!(
            errors[0].message,
            "password needs a confidential application"
        );
        assert_eq!(
            validate(&fields(), false).unwrap().grant_types,
            "authorization_code refresh_token device_code"
        );
        let unknown = ApplicationFields {
            grant_types: vec!["implicit".into()],
            ..fields()
        };
        assert!(validate(&unknown, true).is_err());
    }

    #[test]
    fn secrets_are_prefixed_and_long() {
        let secret = new_secret();
        assert!(secret.expose().starts_with("dwcs-"));
        assert_eq!(secret.expose().len(), 5 + 64);
    }
}
