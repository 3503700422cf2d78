//! `users create`: an account with a password from standard input or a generated one,
//! printed once.

use std::io::BufRead;

use anyhow::{Context, bail};
use doorward_shared::Secret;
use doorward_shared::secret::random_token;
use serde_json::json;

use super::{UsersCommand, field_errors};
use crate::accounts::{self, CreateError, NewAccount};
use crate::state::AppState;

/// Runs a `users` command.
pub async fn run(state: &AppState, command: UsersCommand) -> anyhow::Result<()> {
    let UsersCommand::Create {
        username,
        email,
        name,
        password_stdin,
        admin,
        json: flag,
    } = command;
    let (password, generated) = if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("could not read the password from standard input")?;
        (Secret::new(line.trim_end_matches(['\r', '\n'])), false)
    } else {
        (random_token(), true)
    };
    let account = NewAccount {
        username,
        email,
        name,
        password: password.clone(),
        admin,
    };
    let user = match accounts::create(state, account).await {
        Ok(user) => user,
        Err(CreateError::Invalid(errors)) => {
            bail!("invalid user: {}", field_errors(&errors))
        }
        Err(CreateError::Service(e)) => return Err(e.into()),
    };
    if flag.json {
        let mut value = json!({
            "id": user.id, "username": user.username, "email": user.email,
            "name": user.name, "admin": user.admin,
        });
        if generated {
            value["password"] = json!(password.expose());
        }
        println!("{value}");
    } else {
        println!("Created user {} (id {}).", user.username, user.id);
        if generated {
            println!("Password (shown once): {}", password.expose());
        }
    }
    Ok(())
}
