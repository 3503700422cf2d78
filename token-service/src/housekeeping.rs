//! Housekeeping: deletes the rows that can no longer be used, so that the token tables do not
//! grow without bound (doorkeeper's `doorkeeper:db:cleanup`, doorkeeper #1462). It runs as
//! `tokens cleanup` and as a periodic task in every token-service (`[housekeeping]`).
//!
//! What goes, and nothing else:
//!
//! - access tokens without a refresh token (client_credentials) once they have expired;
//! - refresh families of which no member can still be used: every member's access token has
//!   expired (so introspection of a live one still works), and no member holds a refresh
//!   token that could still be presented with effect (unrevoked, inside the family's absolute
//!   age, and either unrotated inside its idle lifetime or rotated inside the grace window).
//!   Rotated predecessors of a live family stay: presenting one again is how reuse is
//!   detected (SEC-RT-02). A dead family cannot come back to life (nothing un-revokes,
//!   un-rotates or un-expires a row, and only a usable member can gain a successor), so a
//!   large family may safely go over several batches;
//! - authorization codes once expired (a used one stays until then, so that a replay within
//!   its lifetime still revokes what it produced; tokens point at codes with
//!   `ON DELETE SET NULL`);
//! - device grants once expired, whatever their status.
//!
//! Each batch is one set-based `DELETE ... WHERE key IN (SELECT key ... LIMIT n)` in its own
//! short write transaction, and the loop pauses between batches, so that the token endpoint
//! is never held up for long (SQLite serialises writers).

use std::fmt;
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use diesel::sql_types::BigInt;
use doorward_shared::config::Config;

use crate::db::{self, DbConnection};
use crate::error::ServiceError;
use crate::state::AppState;

/// How many rows one run removed, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Authorization codes.
    pub access_grants: u64,
    /// Device authorization grants.
    pub device_grants: u64,
    /// Access-token rows (with their refresh tokens).
    pub access_tokens: u64,
}

impl CleanupReport {
    /// Rows removed in all.
    pub fn total(&self) -> u64 {
        self.access_grants + self.device_grants + self.access_tokens
    }

    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// `{"access_grants":N,"device_grants":N,"access_tokens":N,"total":N}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "access_grants": self.access_grants,
            "device_grants": self.device_grants,
            "access_tokens": self.access_tokens,
            "total": self.total(),
        })
    }
}

impl fmt::Display for CleanupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: u64| if n == 1 { "" } else { "s" };
        write!(
            f,
            "Removed {} row{}: {} access token{}, {} authorization code{}, {} device grant{}",
            self.total(),
            plural(self.total()),
            self.access_tokens,
            plural(self.access_tokens),
            self.access_grants,
            plural(self.access_grants),
            self.device_grants,
            plural(self.device_grants),
        )
    }
}

/// Expired access tokens that never had a refresh token. `$1` now, `$2` batch size.
const EXPIRED_TOKENS_WITHOUT_REFRESH: &str = "DELETE FROM access_tokens WHERE jti IN (\
    SELECT jti FROM access_tokens \
    WHERE refresh_token_hash IS NULL AND family_id IS NULL AND expires_at <= $1 \
    LIMIT $2)";

/// Rows of refresh families with no member that can still be used. `$1` now, `$2` batch
/// size, `$3` refresh_max_age_seconds, `$4` refresh_idle_ttl_seconds, `$5`
/// refresh_grace_seconds. The conditions mirror `grants::refresh_token::rotate` (and
/// `lifecycle::introspect` for the access tokens): a member keeps its family while its
/// access token is live, or while its refresh token is unrevoked, the family is younger than
/// its absolute age, and the token is either unrotated and inside its idle lifetime, or was
/// rotated inside the grace window. `t.expires_at <= $1` is implied by the `NOT EXISTS`; it
/// lets the expiry index narrow the scan.
const DEAD_FAMILY_ROWS: &str = "DELETE FROM access_tokens WHERE jti IN (\
    SELECT t.jti FROM access_tokens t \
    WHERE t.family_id IS NOT NULL AND t.expires_at <= $1 \
    AND NOT EXISTS (\
        SELECT 1 FROM access_tokens m \
        WHERE m.family_id = t.family_id \
        AND (m.expires_at > $1 \
            OR (m.revoked_at IS NULL \
                AND m.family_created_at + $3 > $1 \
                AND ((m.refresh_rotated_at IS NULL AND m.created_at + $4 > $1) \
                    OR m.refresh_rotated_at + $5 >= $1)))) \
    LIMIT $2)";

/// Expired authorization codes, used or not. `$1` now, `$2` batch size.
const EXPIRED_CODES: &str = "DELETE FROM access_grants WHERE id IN (\
    SELECT id FROM access_grants WHERE expires_at <= $1 LIMIT $2)";

/// Expired device grants, whatever their status. `$1` now, `$2` batch size.
const EXPIRED_DEVICE_GRANTS: &str = "DELETE FROM device_grants WHERE id IN (\
    SELECT id FROM device_grants WHERE expires_at <= $1 LIMIT $2)";

/// The shortest and longest pause between two batches.
const MIN_PAUSE: Duration = Duration::from_millis(1);
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// Runs `sql` (written with PostgreSQL's `$n` placeholders, each bound as a BIGINT) on the
/// connection's backend. SQLite reads `?n` the same way, so one text serves both.
macro_rules! execute {
    ($conn:expr, $sql:expr, $($bind:expr),+ $(,)?) => {
        match $conn {
            DbConnection::Pg(pg) => diesel::sql_query($sql)
                $(.bind::<BigInt, _>($bind))+
                .execute(pg),
            DbConnection::Sqlite(sqlite) => diesel::sql_query($sql.replace('$', "?"))
                $(.bind::<BigInt, _>($bind))+
                .execute(sqlite),
        }
    };
}

/// Deletes every row that can no longer be used at `now`, `housekeeping.batch_size` rows per
/// statement, each statement in its own transaction, until a batch comes back short.
pub fn cleanup(
    conn: &mut DbConnection,
    now: i64,
    config: &Config,
) -> Result<CleanupReport, ServiceError> {
    let batch = i64::from(config.housekeeping.batch_size.max(1));
    let tokens = &config.tokens;
    let without_refresh = drain(conn, batch, |conn| {
        execute!(conn, EXPIRED_TOKENS_WITHOUT_REFRESH, now, batch)
    })?;
    let families = drain(conn, batch, |conn| {
        execute!(
            conn,
            DEAD_FAMILY_ROWS,
            now,
            batch,
            tokens.refresh_max_age_seconds,
            tokens.refresh_idle_ttl_seconds,
            tokens.refresh_grace_seconds,
        )
    })?;
    // Codes after tokens: fewer token rows are left to set `grant_id = NULL` on.
    let access_grants = drain(conn, batch, |conn| {
        execute!(conn, EXPIRED_CODES, now, batch)
    })?;
    let device_grants = drain(conn, batch, |conn| {
        execute!(conn, EXPIRED_DEVICE_GRANTS, now, batch)
    })?;
    Ok(CleanupReport {
        access_grants,
        device_grants,
        access_tokens: without_refresh + families,
    })
}

/// Repeats `statement` (one bounded DELETE) in short write transactions until it deletes
/// fewer than `batch` rows. Between batches the thread sleeps as long as the batch took
/// (within `MIN_PAUSE..=MAX_PAUSE`), so that waiting writers get at least half the time.
fn drain(
    conn: &mut DbConnection,
    batch: i64,
    mut statement: impl FnMut(&mut DbConnection) -> diesel::QueryResult<usize>,
) -> Result<u64, ServiceError> {
    let mut removed = 0u64;
    loop {
        let started = Instant::now();
        let deleted =
            db::write_transaction(conn, |conn| statement(conn).map_err(ServiceError::from))?;
        removed += deleted as u64;
        if (deleted as i64) < batch {
            return Ok(removed);
        }
        std::thread::sleep(started.elapsed().clamp(MIN_PAUSE, MAX_PAUSE));
    }
}

/// One cleanup on a pooled connection, at the state's clock.
pub async fn run(state: &AppState) -> Result<CleanupReport, ServiceError> {
    let now = state.now();
    let config = state.config.clone();
    let report = state.db(move |conn| cleanup(conn, now, &config)).await?;
    let deleted = &crate::metrics::METRICS.housekeeping_deleted;
    for (kind, rows) in [
        ("authorization_codes", report.access_grants),
        ("device_grants", report.device_grants),
        ("access_tokens", report.access_tokens),
    ] {
        deleted.with_label_values(&[kind]).inc_by(rows);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_counts_per_table_and_in_all() {
        let report = CleanupReport {
            access_grants: 2,
            device_grants: 1,
            access_tokens: 40,
        };
        assert_eq!(report.total(), 43);
        assert!(!report.is_empty());
        assert_eq!(
            report.to_json(),
            serde_json::json!({"access_grants": 2, "device_grants": 1, "access_tokens": 40, "total": 43})
        );
        assert_eq!(
            report.to_string(),
            "Removed 43 rows: 40 access tokens, 2 authorization codes, 1 device grant"
        );
        let nothing = CleanupReport::default();
        assert!(nothing.is_empty());
        assert_eq!(nothing.to_json()["total"], 0);
    }

    #[test]
    fn every_statement_is_one_bounded_delete_with_numbered_parameters() {
        for sql in [
            EXPIRED_TOKENS_WITHOUT_REFRESH,
            DEAD_FAMILY_ROWS,
            EXPIRED_CODES,
            EXPIRED_DEVICE_GRANTS,
        ] {
            assert!(sql.starts_with("DELETE FROM "), "{sql}");
            assert!(sql.ends_with("LIMIT $2)"), "{sql}");
            assert_eq!(sql.matches("DELETE").count(), 1, "{sql}");
            assert!(!sql.contains('?'), "{sql}");
        }
    }
}
