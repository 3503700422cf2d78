//! SQLite's WAL checkpoints, on a thread of their own.
//!
//! In WAL mode a commit appends pages to the `-wal` file; a checkpoint copies them back into
//! the database file and syncs both. By default the connection whose commit takes the WAL
//! past 1,000 pages runs that checkpoint inside its COMMIT: with group commit that is the
//! writer thread (`db::writer`), so every grant of the batch, and every grant queued behind
//! it, waited for the copy and its fsyncs (about 40% of the writer's time under refresh
//! load, with the processor mostly idle).
//!
//! So the writer's connection does not checkpoint in its commits (`writing`), and this thread
//! runs a PASSIVE checkpoint, which never blocks the writer or readers, shortly after the
//! writer commits: at most one per `PAUSE` while writes go on, none while the service is
//! idle. Other connections (the few writes outside the writer: sign-ins, codes, revocations)
//! checkpoint on commit only past `INLINE_FRAMES`, which the writer keeps the WAL below.
//!
//! SQLite starts the WAL over (writes from its beginning again) only when a writer begins
//! a transaction with every frame copied and no reader still reading from the WAL, which
//! under load almost never happens by itself: the writer has committed again meanwhile, and
//! some reader is always in the middle of a lookup. So once the WAL holds `RESTART_FRAMES`,
//! the writer runs a RESTART checkpoint itself right after a commit (after answering that
//! batch's callers): only the last frames are left to copy, and it waits (SQLite's busy
//! handler, a millisecond or two) until the readers of older snapshots are done, so that
//! its next transaction starts the WAL over. The file stops growing: at that size plus what
//! the writer commits during one pause and one checkpoint (40-60 MiB in the test below,
//! which writes 32 KiB rows without a break).
//!
//! A process without this thread (the operator CLI) still checkpoints when its last
//! connection to the database closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::sql_types::Integer;
use diesel::{QueryableByName, RunQueryDsl};

use super::{DbConnection, DbPool};

/// The least time between two checkpoints: the commits of that span are copied together.
const PAUSE: Duration = Duration::from_millis(100);

/// The WAL's length (in pages) from which the writer finishes a checkpoint itself, so that
/// the WAL starts over: 4,096 pages of 4 KiB, 16 MiB.
const RESTART_FRAMES: i32 = 4_096;

/// `PRAGMA wal_autocheckpoint` of every other connection (SQLite's default is 1,000): above
/// what the writer leaves, so that they checkpoint only when the writer is not running.
pub const INLINE_FRAMES: i32 = 2 * RESTART_FRAMES;

/// Tells the checkpoint thread that something was committed.
#[derive(Clone)]
pub struct Checkpointer {
    nudge: SyncSender<()>,
    /// Set when the WAL is long enough that the writer should finish a checkpoint.
    restart: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Starts the checkpoint thread on `pool` (a SQLite pool). It stops once every
    /// `Checkpointer` is dropped.
    pub fn start(pool: DbPool) -> std::io::Result<Self> {
        let (nudge, nudged) = mpsc::sync_channel(1);
        let restart = Arc::new(AtomicBool::new(false));
        let wanted = restart.clone();
        std::thread::Builder::new()
            .name("db-checkpoint".into())
            .spawn(move || run(&pool, &nudged, &wanted))?;
        Ok(Self { nudge, restart })
    }

    /// Called by the writer when it takes a connection: no checkpoint in its commits.
    pub fn writing(&self, conn: &mut DbConnection) -> diesel::QueryResult<()> {
        conn.batch_execute("PRAGMA wal_autocheckpoint = 0")
    }

    /// Called by the writer before it gives its connection back to the pool: the setting
    /// of every other connection.
    pub fn written(&self, conn: &mut DbConnection) -> diesel::QueryResult<()> {
        conn.batch_execute(&format!("PRAGMA wal_autocheckpoint = {INLINE_FRAMES}"))
    }

    /// Called by the writer after a commit, with its connection: asks the thread for a
    /// checkpoint soon (never blocking; a request already pending covers this one), and
    /// finishes one here when the WAL should start over.
    pub fn committed(&self, conn: &mut DbConnection) {
        match self.nudge.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
        if self.restart.swap(false, Ordering::AcqRel)
            && let Err(e) = conn.batch_execute("PRAGMA wal_checkpoint(RESTART)")
        {
            tracing::debug!(error = %e, "WAL checkpoint by the writer skipped");
        }
    }
}

/// A row of `PRAGMA wal_checkpoint`.
#[derive(QueryableByName)]
struct Progress {
    /// Pages in the WAL.
    #[diesel(sql_type = Integer)]
    log: i32,
}

fn run(pool: &DbPool, nudged: &Receiver<()>, restart: &AtomicBool) {
    while nudged.recv().is_ok() {
        // Let the commits of the next moment gather; then copy them all at once.
        std::thread::sleep(PAUSE);
        while nudged.try_recv().is_ok() {}
        let outcome = pool.get().map_err(|e| e.to_string()).and_then(|mut conn| {
            diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
                .get_result::<Progress>(&mut *conn)
                .map_err(|e| e.to_string())
        });
        match outcome {
            Ok(progress) if progress.log >= RESTART_FRAMES => {
                restart.store(true, Ordering::Release);
            }
            Ok(_) => {}
            // Another process may be checkpointing (SQLITE_BUSY); the next commit asks again.
            Err(why) => tracing::debug!(error = %why, "WAL checkpoint skipped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    use super::*;
    use crate::db::connect_and_migrate;
    use crate::db::writer::Writer;
    use crate::error::ServiceError;

    fn scratch() -> (DbPool, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "doorward-checkpoint-{}",
            doorward_shared::secret::random_id()
        ));
        let db = dir.join("c.db");
        let url = format!("sqlite://{}", db.display());
        let pool = connect_and_migrate(&url, 4, Duration::from_secs(5)).unwrap();
        (pool, db)
    }

    fn size(path: &Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    fn wal(db: &Path) -> PathBuf {
        db.with_extension("db-wal")
    }

    /// Writes `jobs` rows of `bytes` bytes each through `writer`, 32 jobs at a time.
    async fn write_rows(writer: &Writer, jobs: usize, bytes: usize) {
        for chunk in (0..jobs).collect::<Vec<_>>().chunks(32) {
            let pending: Vec<_> = chunk
                .iter()
                .map(|i| {
                    let name = format!("row-{i}-{}", doorward_shared::secret::random_id());
                    writer.write(move |conn| {
                        diesel::sql_query(
                            "INSERT INTO server_secrets (name, value, created_at) VALUES (?, randomblob(?), 0)",
                        )
                        .bind::<diesel::sql_types::Text, _>(name)
                        .bind::<Integer, _>(bytes as i32)
                        .execute(conn)
                        .map_err(ServiceError::from)
                    })
                })
                .collect();
            for done in futures::future::join_all(pending).await {
                done.unwrap();
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writers_commits_reach_the_database_file_without_a_checkpoint_in_its_commits() {
        let (pool, db) = scratch();
        let writer =
            Writer::start(pool.clone(), 1, Some(Checkpointer::start(pool).unwrap())).unwrap();
        let before = size(&db);
        write_rows(&writer, 256, 4_096).await;
        // About 1 MiB went to the WAL; the checkpoint thread copies it into the file.
        let deadline = Instant::now() + Duration::from_secs(10);
        while size(&db) < before + 1_000_000 {
            assert!(
                Instant::now() < deadline,
                "no checkpoint: {} -> {} bytes",
                before,
                size(&db)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_instead_of_growing_with_every_write() {
        let (pool, db) = scratch();
        let writer = Writer::start(
            pool.clone(),
            1,
            Some(Checkpointer::start(pool.clone()).unwrap()),
        )
        .unwrap();
        // Lookups never stop, as under load: some reader always holds an older snapshot.
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (pool, stop) = (pool.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut conn = pool.get().unwrap();
                    while !stop.load(Ordering::Relaxed) {
                        conn.batch_execute("SELECT count(*) FROM server_secrets")
                            .unwrap();
                    }
                })
            })
            .collect();
        // 192 MiB through the WAL without a pause, twelve times what makes the writer
        // restart it. How far the WAL runs past that mark before a restart depends on how
        // fast this machine writes (one pause and one checkpoint's worth of writes), so
        // the bound is half of what was written: a WAL that never starts over holds all.
        write_rows(&writer, 6_144, 32_768).await;
        stop.store(true, Ordering::Relaxed);
        for reader in readers {
            reader.join().unwrap();
        }
        let wal = size(&wal(&db));
        drop(writer);
        let _ = std::fs::remove_dir_all(db.parent().unwrap());
        assert!(
            wal < 96 * 1024 * 1024,
            "the WAL grew to {wal} bytes for 192 MiB written"
        );
    }
}
