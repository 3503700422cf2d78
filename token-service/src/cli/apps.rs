//! `apps create`, `list`, `show`, `delete` and `rotate-secret`: applications (OAuth clients)
//! in the database. A secret is printed once, when it is made.

use anyhow::bail;
use doorward_shared::Secret;
use serde_json::json;

use super::{AppsCommand, CreateApp, field_errors};
use crate::apps::{self, ApplicationFields, SaveError};
use crate::db;
use crate::db::models::ApplicationRow;
use crate::error::ServiceError;
use crate::state::AppState;

/// Runs an `apps` command.
pub async fn run(state: &AppState, command: AppsCommand) -> anyhow::Result<()> {
    match command {
        AppsCommand::Create(app) => create(state, app).await,
        AppsCommand::List(flag) => list(state, flag.json).await,
        AppsCommand::Show { uid, json: flag } => show(state, uid, flag.json).await,
        AppsCommand::Delete { uid, json: flag } => delete(state, uid, flag.json).await,
        AppsCommand::RotateSecret {
            uid,
            grace,
            json: flag,
        } => rotate_secret(state, uid, grace, flag.json).await,
    }
}

async fn create(state: &AppState, command: CreateApp) -> anyhow::Result<()> {
    let CreateApp {
        name,
        redirect_uris,
        scopes,
        public,
        trusted,
        grant_types,
        no_password_grant,
        owner,
        json: flag,
    } = command;
    let now = state.now();
    let result = state
        .db(move |conn| {
            let owner_id = match owner {
                Some(login) => match db::users::find_by_login(conn, &login)? {
                    Some(user) => Some(user.id),
                    None => return Ok(Err(format!("no user named {login:?}"))),
                },
                None => None,
            };
            let fields = ApplicationFields {
                name,
                redirect_uris,
                scopes: vec![scopes],
                confidential: !public,
                trusted,
                grant_types: match (grant_types, no_password_grant) {
                    (Some(named), _) => vec![named],
                    (None, true) => apps::default_grant_types(!public)
                        .into_iter()
                        .filter(|g| g != "password")
                        .collect(),
                    (None, false) => Vec::new(),
                },
                owner_id,
            };
            match apps::create(conn, &fields, now) {
                Ok(created) => Ok(Ok(created)),
                Err(SaveError::Invalid(errors)) => Ok(Err(format!(
                    "invalid application: {}",
                    field_errors(&errors)
                ))),
                Err(SaveError::Service(e)) => Err(e),
            }
        })
        .await?;
    match result {
        Ok((app, secret)) => print_app(&app, secret.as_ref(), flag.json),
        Err(message) => bail!(message),
    }
    Ok(())
}

async fn list(state: &AppState, json: bool) -> anyhow::Result<()> {
    let list = state
        .db(|conn| Ok::<_, ServiceError>(db::applications::list(conn, None)?))
        .await?;
    if json {
        println!("{}", json!(list.iter().map(app_json).collect::<Vec<_>>()));
    } else if list.is_empty() {
        println!("No applications.");
    } else {
        for app in list {
            let kind = if app.confidential {
                "confidential"
            } else {
                "public"
            };
            println!("{}  {}  {}  [{}]", app.uid, kind, app.name, app.scopes);
        }
    }
    Ok(())
}

async fn show(state: &AppState, uid: String, json: bool) -> anyhow::Result<()> {
    let found = state
        .db(move |conn| Ok::<_, ServiceError>(db::applications::find_by_uid(conn, &uid)?))
        .await?;
    match found {
        Some(app) => print_app(&app, None, json),
        None => bail!("no application with that client id"),
    }
    Ok(())
}

async fn delete(state: &AppState, uid: String, json: bool) -> anyhow::Result<()> {
    let forgotten = uid.clone();
    let changes = state.token_changes.clone();
    let deleted = state
        .db(move |conn| apps::delete(conn, &changes, &uid))
        .await?;
    state.clients.forget(&forgotten);
    if !deleted {
        bail!("no application with that client id");
    }
    if json {
        println!("{}", json!({"deleted": true}));
    } else {
        println!("Deleted the application, its grants and its tokens.");
    }
    Ok(())
}

async fn rotate_secret(
    state: &AppState,
    uid: String,
    grace: u32,
    json: bool,
) -> anyhow::Result<()> {
    let now = state.now();
    let forgotten = uid.clone();
    let rotated = state
        .db(move |conn| apps::rotate_secret(conn, &uid, i64::from(grace), now))
        .await?;
    state.clients.forget(&forgotten);
    let Some(apps::RotatedSecret {
        secret,
        previous_valid_until,
    }) = rotated
    else {
        bail!("no confidential application with that client id");
    };
    if json {
        println!(
            "{}",
            json!({
                "secret": secret.expose(),
                "previous_secret_valid_for": grace,
                "previous_secret_expires_at": previous_valid_until,
            })
        );
    } else {
        println!("New secret (shown once): {}", secret.expose());
        if grace > 0 {
            println!("The previous secret keeps working for {grace} seconds.");
        }
    }
    Ok(())
}

fn app_json(app: &ApplicationRow) -> serde_json::Value {
    json!({
        "id": app.id,
        "uid": app.uid,
        "name": app.name,
        "redirect_uris": apps::redirect_uris(app),
        "scopes": app.scopes,
        "confidential": app.confidential,
        "trusted": app.trusted,
        "grant_types": app.grant_types.names(),
        "owner_id": app.owner_id,
        "created_at": app.created_at,
    })
}

fn print_app(app: &ApplicationRow, secret: Option<&Secret>, json: bool) {
    if json {
        let mut value = app_json(app);
        if let Some(secret) = secret {
            value["secret"] = json!(secret.expose());
        }
        println!("{value}");
        return;
    }
    println!("Application: {}", app.name);
    println!("  client_id (uid): {}", app.uid);
    if let Some(secret) = secret {
        println!(
            "  secret:          {}   (shown once; store it now)",
            secret.expose()
        );
    }
    println!("  confidential:    {}", app.confidential);
    println!("  trusted:         {}", app.trusted);
    println!("  grant types:     {}", app.grant_types);
    println!("  scopes:          {}", app.scopes);
    for uri in apps::redirect_uris(app) {
        println!("  redirect_uri:    {uri}");
    }
}
