//! Queries on `users`.

use diesel::prelude::*;

use super::models::{NewUser, UserRow};
use super::schema::users;
use super::{DbConnection, TokenChanges};

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// Inserts a user and returns the stored row.
pub fn insert(conn: &mut DbConnection, user: &NewUser<'_>) -> QueryResult<UserRow> {
    diesel::insert_into(users::table)
        .values(user)
        .execute(conn)?;
    find_by_login(conn, user.username)?.ok_or(diesel::result::Error::NotFound)
}

/// The user whose username or e-mail is `login`, case-insensitively.
pub fn find_by_login(conn: &mut DbConnection, login: &str) -> QueryResult<Option<UserRow>> {
    let login = login.to_lowercase();
    users::table
        .filter(
            lower(users::username)
                .eq(&login)
                .or(lower(users::email).eq(&login)),
        )
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

/// The user with this id.
pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()
}

/// Whether any user exists (first start creates the administrator).
pub fn any_exist(conn: &mut DbConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(users::table.select(users::id))).get_result(conn)
}

/// Whether the username or e-mail is taken.
pub fn username_or_email_taken(
    conn: &mut DbConnection,
    username: &str,
    email: &str,
) -> QueryResult<(bool, bool)> {
    let username_taken = diesel::select(diesel::dsl::exists(
        users::table.filter(lower(users::username).eq(username.to_lowercase())),
    ))
    .get_result(conn)?;
    let email_taken = diesel::select(diesel::dsl::exists(
        users::table.filter(lower(users::email).eq(email.to_lowercase())),
    ))
    .get_result(conn)?;
    Ok((username_taken, email_taken))
}

/// Replaces the password hash (re-hash on sign-in when parameters changed).
pub fn update_password_hash(
    conn: &mut DbConnection,
    id: i64,
    hash: &str,
    now: i64,
) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set((users::password_hash.eq(hash), users::updated_at.eq(now)))
        .execute(conn)?;
    Ok(())
}

/// Sets the account state ("active" or "blocked").
pub fn set_state(
    conn: &mut DbConnection,
    changes: &TokenChanges,
    id: i64,
    state: &str,
    now: i64,
) -> QueryResult<usize> {
    changes.changed();
    diesel::update(users::table.find(id))
        .set((users::state.eq(state), users::updated_at.eq(now)))
        .execute(conn)
}

/// Devise's trackable fields: a web sign-in moves `current_sign_in_at` to
/// `last_sign_in_at` and sets it to `now` (`auth_time` of later id_tokens, GitLab's
/// `current_sign_in_at` on `/api/v4/user`).
pub fn record_sign_in(
    conn: &mut DbConnection,
    changes: &TokenChanges,
    id: i64,
    now: i64,
) -> QueryResult<usize> {
    changes.changed();
    diesel::update(users::table.find(id))
        .set((
            users::last_sign_in_at.eq(users::current_sign_in_at),
            users::current_sign_in_at.eq(now),
        ))
        .execute(conn)
}

/// Whether user `id` exists and is active: one probe, no row read.
pub fn is_active(conn: &mut DbConnection, id: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        users::table
            .filter(users::id.eq(id))
            .filter(users::state.eq("active")),
    ))
    .get_result(conn)
}
