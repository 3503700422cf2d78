//! `keys rotate`, `keys revoke` and `keys list`: the signing keys in the database, which
//! every token-service re-reads within `tokens.key_reload_seconds`.

use serde_json::json;

use super::KeysCommand;
use crate::db;
use crate::error::ServiceError;
use crate::state::AppState;

/// Runs a `keys` command.
pub async fn run(state: &AppState, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Rotate { purpose, json } => rotate(state, purpose, json).await,
        KeysCommand::Revoke { kid, json } => revoke(state, kid, json).await,
        KeysCommand::List(flag) => list(state, flag.json).await,
    }
}

async fn rotate(state: &AppState, purpose: Option<String>, json: bool) -> anyhow::Result<()> {
    let now = state.now();
    let ahead = state.keys.times().publish_ahead;
    let purposes: Vec<&'static str> = crate::keys::PURPOSES
        .into_iter()
        .filter(|p| purpose.as_deref().is_none_or(|wanted| wanted == *p))
        .collect();
    let rows = state
        .db(move |conn| Ok::<_, ServiceError>(crate::keys::rotate(conn, &purposes, ahead, now)?))
        .await?;
    if json {
        let keys: Vec<_> = rows
            .iter()
            .map(|k| json!({"kid": k.kid, "algorithm": k.algorithm, "purpose": k.purpose, "signs_from": now + ahead}))
            .collect();
        println!("{}", json!({"keys": keys}));
    } else {
        for k in rows {
            println!(
                "New {} key {} ({}) is published and signs in {ahead} s.",
                k.purpose, k.kid, k.algorithm
            );
        }
    }
    Ok(())
}

async fn revoke(state: &AppState, kid: String, json: bool) -> anyhow::Result<()> {
    let now = state.now();
    let revoked = kid.clone();
    let replacement = state
        .db(move |conn| Ok::<_, ServiceError>(crate::keys::revoke(conn, &revoked, now)?))
        .await?;
    if json {
        println!(
            "{}",
            json!({"revoked": kid, "replacement": replacement.as_ref().map(|k| &k.kid)})
        );
    } else {
        println!("Key {kid} is revoked.");
        if let Some(k) = replacement {
            println!("New {} key {} signs from now on.", k.purpose, k.kid);
        }
    }
    Ok(())
}

async fn list(state: &AppState, json: bool) -> anyhow::Result<()> {
    let now = state.now();
    let times = state.keys.times();
    let keys = state
        .db(|conn| Ok::<_, ServiceError>(db::signing_keys::list(conn)?))
        .await?;
    let states = crate::keys::key_states(&keys, now, times);
    if json {
        let list: Vec<_> = keys
            .iter()
            .zip(&states)
            .map(|(k, s)| {
                json!({"kid": k.kid, "algorithm": k.algorithm, "purpose": k.purpose,
                       "created_at": k.created_at, "retired_at": k.retired_at,
                       "revoked_at": k.revoked_at, "state": s.as_str()})
            })
            .collect();
        println!("{}", json!(list));
    } else {
        for (k, s) in keys.iter().zip(&states) {
            println!("{}  {}  {}  {}", k.kid, k.algorithm, k.purpose, s.as_str());
        }
    }
    Ok(())
}
