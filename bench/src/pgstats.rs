//! What Doorward asks of PostgreSQL per request, read from the server's own counters
//! without touching Doorward: `pg_stat_database` for the scratch database (transactions
//! and rows), and `pg_stat_statements` (statements) when the server has it loaded. Read
//! through `psql`, so that the harness needs no database driver of its own.
//!
//! PostgreSQL's counters are not exact to the millisecond: each backend flushes its own
//! counts at most once a second while it is busy. Sampled at the start and at the end of a
//! timed phase under steady load, the unflushed second at each end roughly cancels out; on
//! a phase of a few seconds, read the figures as ±10%.

use std::process::Stdio;

use serde::Serialize;

/// Reads the counters of one database of a PostgreSQL server through `psql`.
#[derive(Debug, Clone)]
pub struct PgProbe {
    /// A URL `psql` connects with (a database other than the measured one, so that the
    /// probe's own queries are not counted).
    admin_url: String,
    /// The measured database's name.
    database: String,
    /// Whether `pg_stat_statements` can be read.
    statements: bool,
}

/// Cumulative counters of one database.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PgCounters {
    /// `xact_commit + xact_rollback`.
    pub transactions: u64,
    /// `tup_returned`: rows read by sequential and index scans.
    pub rows_returned: u64,
    /// `tup_fetched`: rows fetched by index scans.
    pub rows_fetched: u64,
    /// `tup_inserted`.
    pub rows_inserted: u64,
    /// `tup_updated`.
    pub rows_updated: u64,
    /// `tup_deleted`.
    pub rows_deleted: u64,
    /// `sum(calls)` of `pg_stat_statements` for the database (BEGIN and COMMIT included).
    pub statements: Option<u64>,
}

/// Counters of a timed phase divided by its requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DbPerRequest {
    /// Transactions (committed or rolled back).
    pub transactions: f64,
    /// Statements, when `pg_stat_statements` is loaded.
    pub statements: Option<f64>,
    /// Rows inserted.
    pub rows_inserted: f64,
    /// Rows updated.
    pub rows_updated: f64,
    /// Rows deleted.
    pub rows_deleted: f64,
    /// Rows read by scans (`tup_returned`).
    pub rows_returned: f64,
    /// Rows fetched through indexes (`tup_fetched`).
    pub rows_fetched: f64,
}

impl PgCounters {
    /// Parses `psql -At` output of [`PgProbe::QUERY`]: one line, `|`-separated.
    pub fn parse(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.trim().split('|').collect();
        let number = |i: usize| -> Option<u64> { fields.get(i)?.trim().parse().ok() };
        if fields.len() < 7 {
            return None;
        }
        Some(Self {
            transactions: number(0)? + number(1)?,
            rows_returned: number(2)?,
            rows_fetched: number(3)?,
            rows_inserted: number(4)?,
            rows_updated: number(5)?,
            rows_deleted: number(6)?,
            statements: number(7),
        })
    }

    /// The counts between `earlier` and `self`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            transactions: self.transactions.saturating_sub(earlier.transactions),
            rows_returned: self.rows_returned.saturating_sub(earlier.rows_returned),
            rows_fetched: self.rows_fetched.saturating_sub(earlier.rows_fetched),
            rows_inserted: self.rows_inserted.saturating_sub(earlier.rows_inserted),
            rows_updated: self.rows_updated.saturating_sub(earlier.rows_updated),
            rows_deleted: self.rows_deleted.saturating_sub(earlier.rows_deleted),
            statements: match (self.statements, earlier.statements) {
                (Some(a), Some(b)) => Some(a.saturating_sub(b)),
                _ => None,
            },
        }
    }

    /// Per request; `None` when there were no requests.
    pub fn per_request(&self, requests: u64) -> Option<DbPerRequest> {
        if requests == 0 {
            return None;
        }
        let per = |n: u64| n as f64 / requests as f64;
        Some(DbPerRequest {
            transactions: per(self.transactions),
            statements: self.statements.map(per),
            rows_inserted: per(self.rows_inserted),
            rows_updated: per(self.rows_updated),
            rows_deleted: per(self.rows_deleted),
            rows_returned: per(self.rows_returned),
            rows_fetched: per(self.rows_fetched),
        })
    }
}

/// Quotes a string as an SQL literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Runs one statement with `psql -At` and returns its output, or the error it printed.
pub async fn psql(url: &str, sql: &str) -> Result<String, String> {
    let output = tokio::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("could not run psql: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

impl PgProbe {
    /// A probe of `database` through `admin_url`, or why there is none (no `psql`, no
    /// connection).
    pub async fn new(admin_url: &str, database: &str) -> Result<Self, String> {
        psql(admin_url, "select 1").await?;
        // Loaded only through shared_preload_libraries (a server restart); the harness
        // never changes the server, it only looks.
        let statements = psql(admin_url, "select count(*) from pg_stat_statements")
            .await
            .is_ok();
        Ok(Self {
            admin_url: admin_url.to_owned(),
            database: database.to_owned(),
            statements,
        })
    }

    /// What the figures are, for `db_statements_note`.
    pub fn note(&self) -> String {
        if self.statements {
            "PostgreSQL: pg_stat_statements calls in the timed phase per request; see db_per_request for transactions and rows".into()
        } else {
            "statements not measured: pg_stat_statements is not loaded in this PostgreSQL server (it needs shared_preload_libraries); db_per_request holds pg_stat_database's transactions and rows per request instead".into()
        }
    }

    /// The database's counters now; `None` when they could not be read.
    pub async fn sample(&self) -> Option<PgCounters> {
        let db = literal(&self.database);
        let statements = if self.statements {
            format!(
                ", (select sum(calls)::bigint from pg_stat_statements s join pg_database d on d.oid = s.dbid where d.datname = {db})"
            )
        } else {
            String::new()
        };
        // A fresh connection each time reads fresh statistics (no cached snapshot).
        let sql = format!(
            "select xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted{statements} from pg_stat_database where datname = {db}"
        );
        let out = psql(&self.admin_url, &sql).await.ok()?;
        PgCounters::parse(out.lines().next()?)
    }
}

/// `url` with its database replaced by `database` (`postgres://u@h:5432/x?sslmode=y` ->
/// `postgres://u@h:5432/<database>?sslmode=y`).
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Drops `database` (after its connections are closed), through `admin_url`.
pub fn drop_database(admin_url: &str, database: &str) -> Result<(), String> {
    let sql = format!(
        "drop database if exists \"{}\" with (force)",
        database.replace('"', "\"\"")
    );
    let output = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            admin_url,
            "-c",
            &sql,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run psql: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "b1"),
            "postgres://postgres@127.0.0.1:5432/b1"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/x?sslmode=disable", "b2"),
            "postgresql://u:p@h/b2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "b3"),
            "postgres://h:5432/b3"
        );
    }

    #[test]
    fn counters_are_parsed_and_divided() {
        let before = PgCounters::parse("10|1|100|50|20|5|0\n").expect("parses");
        assert_eq!(before.transactions, 11);
        assert_eq!(before.statements, None);
        let after = PgCounters::parse("30|1|160|80|40|15|2").expect("parses");
        let per = after.since(&before).per_request(10).expect("requests");
        assert_eq!(per.transactions, 2.0);
        assert_eq!(per.rows_inserted, 2.0);
        assert_eq!(per.rows_updated, 1.0);
        assert_eq!(per.rows_deleted, 0.2);
        assert_eq!(per.statements, None);
        let with = PgCounters::parse("1|0|0|0|0|0|0|42").expect("parses");
        assert_eq!(with.statements, Some(42));
        assert!(PgCounters::parse("").is_none());
        assert!(after.since(&before).per_request(0).is_none());
    }
}
