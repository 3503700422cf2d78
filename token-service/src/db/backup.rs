//! `backup --to FILE`: an online, consistent copy of the SQLite database, taken with
//! `VACUUM INTO` while token-service keeps serving (in WAL mode a reader never blocks the
//! writer, and the copy is one read transaction's snapshot). PostgreSQL has its own tools
//! (`pg_dump`), and the command says so.
//!
//! It opens one plain connection and never the pool: opening the state would apply pending
//! migrations, and a backup taken before an upgrade must be of the schema as it was.

use std::path::{Path, PathBuf};

use diesel::{Connection, RunQueryDsl, SqliteConnection};

use super::{DatabaseTarget, DatabaseUrlError};

/// A backup written.
#[derive(Debug)]
pub struct Backup {
    /// The database copied.
    pub database: PathBuf,
    /// The new file (absolute).
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Why no backup was written.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// `DATABASE_URL` is not one we know.
    #[error(transparent)]
    Url(#[from] DatabaseUrlError),
    /// PostgreSQL is backed up with its own tools.
    #[error(
        "backup --to copies an SQLite database; back up PostgreSQL with pg_dump (for example: pg_dump --format=custom --file=doorward.dump \"$DATABASE_URL\")"
    )]
    Postgres,
    /// No database file where `DATABASE_URL` points.
    #[error("there is no SQLite database at {0} (check DATABASE_URL or DATA_DIR)")]
    NoDatabase(PathBuf),
    /// The backup file exists already: a backup never overwrites.
    #[error("{0} already exists; backup never overwrites a file: choose a new name")]
    Exists(PathBuf),
    /// SQLite takes the file name as text.
    #[error("the backup path {0} is not valid UTF-8")]
    NotUtf8(PathBuf),
    /// The backup file could not be created or read back.
    #[error("could not create {path}: {source}")]
    Io {
        /// The backup file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// SQLite refused to open or copy the database.
    #[error("could not copy {database}: {message}")]
    Sqlite {
        /// The database.
        database: PathBuf,
        /// SQLite's message.
        message: String,
    },
}

/// Copies the SQLite database `database_url` names into the new file `to` (mode 0600).
pub fn backup(database_url: &str, to: &Path) -> Result<Backup, BackupError> {
    let DatabaseTarget::Sqlite(database) = DatabaseTarget::parse(database_url)? else {
        return Err(BackupError::Postgres);
    };
    let database = PathBuf::from(database);
    // Opening a missing file would create an empty database and back that up.
    if !database.is_file() {
        return Err(BackupError::NoDatabase(database));
    }
    let target = to
        .to_str()
        .ok_or_else(|| BackupError::NotUtf8(to.to_owned()))?;
    create_private(to)?;
    if let Err(err) = vacuum_into(&database, target) {
        // The empty file this command created is no backup.
        let _ = std::fs::remove_file(to);
        return Err(err);
    }
    let io = |source| BackupError::Io {
        path: to.to_owned(),
        source,
    };
    let bytes = std::fs::metadata(to).map_err(io)?.len();
    let path = to.canonicalize().map_err(io)?;
    Ok(Backup {
        database,
        path,
        bytes,
    })
}

/// Creates `path` empty, readable by its owner only (the copy holds the signing keys), and
/// refuses an existing file in the same step. `VACUUM INTO` writes into an empty file.
fn create_private(path: &Path) -> Result<(), BackupError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(BackupError::Exists(path.to_owned()))
        }
        Err(source) => Err(BackupError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn vacuum_into(database: &Path, target: &str) -> Result<(), BackupError> {
    let failed = |message: String| BackupError::Sqlite {
        database: database.to_owned(),
        message,
    };
    let source = database
        .to_str()
        .ok_or_else(|| BackupError::NotUtf8(database.to_owned()))?;
    let mut conn = SqliteConnection::establish(source).map_err(|e| failed(e.to_string()))?;
    // A checkpoint or a migration may hold the file for a moment: wait rather than fail.
    diesel::sql_query("PRAGMA busy_timeout = 10000")
        .execute(&mut conn)
        .map_err(|e| failed(e.to_string()))?;
    diesel::sql_query("VACUUM INTO ?")
        .bind::<diesel::sql_types::Text, _>(target)
        .execute(&mut conn)
        .map_err(|e| failed(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "doorward-backup-{}",
            doorward_shared::secret::random_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn postgres_is_sent_to_pg_dump() {
        let dir = scratch_dir();
        let to = dir.join("copy.db");
        let err = backup("postgres://localhost/doorward", &to).unwrap_err();
        assert!(err.to_string().contains("pg_dump"), "{err}");
        assert!(!to.exists(), "no file is left behind");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_database_is_not_backed_up_as_an_empty_one() {
        let dir = scratch_dir();
        let url = format!("sqlite://{}", dir.join("none.db").display());
        let err = backup(&url, &dir.join("copy.db")).unwrap_err();
        assert!(matches!(err, BackupError::NoDatabase(_)), "{err}");
        assert!(!dir.join("none.db").exists() && !dir.join("copy.db").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
