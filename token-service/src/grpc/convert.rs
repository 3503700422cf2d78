//! Rows to proto messages and back. Generated types stop here.

use doorward_proto::v1 as pb;

use crate::accounts::FieldError;
use crate::apps;
use crate::db::models::{ApplicationRow, UserRow};

/// A user row as a proto `User` (no password hash).
pub fn user(row: &UserRow) -> pb::User {
    pb::User {
        id: row.id,
        username: row.username.clone(),
        email: row.email.clone(),
        name: row.name.clone(),
        state: row.state.clone(),
        admin: row.admin,
        created_at: row.created_at,
        current_sign_in_at: row.current_sign_in_at,
        last_sign_in_at: row.last_sign_in_at,
    }
}

/// An application row as a proto `Application` (no secret hash).
pub fn application(row: &ApplicationRow) -> pb::Application {
    pb::Application {
        id: row.id,
        uid: row.uid.clone(),
        name: row.name.clone(),
        redirect_uris: apps::redirect_uris(row),
        scopes: row.scopes.split_whitespace().map(str::to_owned).collect(),
        confidential: row.confidential,
        trusted: row.trusted,
        grant_types: row
            .grant_types
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        owner_id: row.owner_id,
        created_at: row.created_at,
    }
}

/// Proto fields to domain fields.
pub fn application_fields(fields: pb::ApplicationFields) -> apps::ApplicationFields {
    apps::ApplicationFields {
        name: fields.name,
        redirect_uris: fields.redirect_uris,
        scopes: fields.scopes,
        confidential: fields.confidential,
        trusted: fields.trusted,
        grant_types: fields.grant_types,
        owner_id: fields.owner_id,
    }
}

/// Field errors as proto.
pub fn validation_errors(errors: Vec<FieldError>) -> pb::ValidationErrors {
    pb::ValidationErrors {
        errors: errors
            .into_iter()
            .map(|e| pb::FieldError {
                field: e.field.to_owned(),
                message: e.message,
            })
            .collect(),
    }
}
