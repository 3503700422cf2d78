//! `keys rotate`, `keys revoke` and `keys list`: the signing keys in the database, which
//! every token-service re-reads within `tokens.key_reload_seconds`. `keys list` also shows
//! when each purpose is next rotated on schedule (`tokens.key_rotation_days`).

use serde_json::json;

use super::KeysCommand;
use crate::db;
use crate::error::ServiceError;
use crate::keys::{RotationPolicy, current_key};
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
    let policy = RotationPolicy::from_days(state.config.tokens.key_rotation_days);
    let keys = state
        .db(|conn| Ok::<_, ServiceError>(db::signing_keys::list(conn)?))
        .await?;
    let states = crate::keys::key_states(&keys, now, times);
    if json {
        let list: Vec<_> = keys
            .iter()
            .zip(&states)
            .map(|(k, s)| {
                let mut key = json!({"kid": k.kid, "algorithm": k.algorithm, "purpose": k.purpose,
                       "created_at": k.created_at, "retired_at": k.retired_at,
                       "revoked_at": k.revoked_at, "state": s.as_str()});
                // The schedule counts from one key per purpose; it carries the next rotation.
                if current_key(&keys, &k.purpose).is_some_and(|c| c.kid == k.kid) {
                    key["next_rotation_at"] = json!(policy.next_rotation(&keys, &k.purpose));
                }
                key
            })
            .collect();
        println!("{}", json!(list));
    } else {
        for (k, s) in keys.iter().zip(&states) {
            println!("{}  {}  {}  {}", k.kid, k.algorithm, k.purpose, s.as_str());
        }
        for purpose in crate::keys::PURPOSES {
            let next = describe_next_rotation(policy.next_rotation(&keys, purpose), now);
            println!("next rotation of {purpose} keys: {next}");
        }
    }
    Ok(())
}

/// `2027-03-03T18:55:00Z (in 90 days)`, or why there is no date.
fn describe_next_rotation(at: Option<i64>, now: i64) -> String {
    let Some(at) = at else {
        return "manual (tokens.key_rotation_days = 0: only `keys rotate`)".into();
    };
    let date = time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{at} (Unix time)"));
    if at <= now {
        return format!("{date} (due: at the next key reload of a running token-service)");
    }
    let seconds = at - now;
    let left = match seconds {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 2 * 3_600 => format!("{} hours", s / 3_600),
        s => format!("{s} s"),
    };
    format!("{date} (in {left})")
}
