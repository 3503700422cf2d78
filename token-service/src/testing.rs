//! A scratch token service for the crate's unit tests: the real state (`open_state`) on a
//! migrated SQLite file in a temporary folder, with one active user and one confidential
//! application allowed every grant. For tests that must stop a request between two of its
//! steps, which the end-to-end suite (`tests/`) cannot reach.

use std::path::PathBuf;
use std::sync::Arc;

use doorward_shared::clock::ManualClock;
use doorward_shared::config::Config;
use doorward_shared::secret::random_id;

use crate::db::models::{ApplicationRow, NewApplication, NewUser, UserRow};
use crate::db::{self, DbConnection};
use crate::error::ServiceError;
use crate::state::AppState;

pub struct Scratch {
    pub state: AppState,
    pub app: ApplicationRow,
    pub user: UserRow,
    dir: PathBuf,
}

impl Scratch {
    pub async fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("doorward-unit-{}", random_id()));
        let config = Config {
            database_url: format!("sqlite://{}", dir.join("doorward.db").display()),
            ..Config::default()
        };
        let state = crate::open_state(config, Arc::new(ManualClock::new()))
            .await
            .expect("the scratch service opens");
        let now = state.now();
        let (app, user) = state
            .db(move |conn| -> Result<_, ServiceError> {
                let user = db::users::insert(
                    conn,
                    &NewUser {
                        username: "alice",
                        email: "alice@example.com",
                        name: "Alice",
                        password_hash: "unused",
                        admin: false,
                        state: "active",
                        created_at: now,
                        updated_at: now,
                    },
                )?;
                let app = db::applications::insert(
                    conn,
                    &NewApplication {
                        uid: &random_id(),
                        name: "App",
                        secret_hash: None,
                        redirect_uris: "https://app.example/cb",
                        scopes: "api read_user openid",
                        confidential: true,
                        trusted: false,
                        owner_id: None,
                        created_at: now,
                        updated_at: now,
                        grant_types: "authorization_code refresh_token client_credentials password",
                    },
                )?;
                Ok((app, user))
            })
            .await
            .unwrap();
        Self {
            state,
            app,
            user,
            dir,
        }
    }

    /// Runs `work` on a pooled connection, outside the writer (another request's change).
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
    ) -> T {
        self.state
            .db(move |conn| work(conn).map_err(ServiceError::from))
            .await
            .unwrap()
    }

    /// Blocks the user, as the administrator's CLI does.
    pub async fn block_user(&self) {
        let (id, now) = (self.user.id, self.state.now());
        let changes = self.state.token_changes.clone();
        self.run(move |conn| db::users::set_state(conn, &changes, id, "blocked", now))
            .await;
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
