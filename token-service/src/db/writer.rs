//! Group commit: the grants' write transactions, batched.
//!
//! Every grant writes (a token row, a claimed code, a rotated refresh token) and SQLite
//! has one writer at a time, so concurrent grants queue anyway; what each one pays on its
//! own is the commit (the WAL frames of every page it touched, or a PostgreSQL WAL flush).
//! Here the grants' work is sent to a writer thread, which takes every job waiting (up to
//! `MAX_BATCH`), runs each in a savepoint of one transaction and commits once; each caller
//! hears back only after that commit, so a token is never returned before it is stored
//! (the kill -9 test in `tests/cli.rs`).
//!
//! A job that fails rolls back its own savepoint and nothing else; a commit that fails
//! fails every job of the batch (nothing of it was stored). Jobs see the writes of the jobs
//! before them in the batch, exactly as if they had committed one after the other.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use diesel::Connection;

use super::checkpoint::Checkpointer;
use super::{DbConnection, DbPool, PooledDb};
use crate::error::ServiceError;

/// The most jobs one commit carries.
const MAX_BATCH: usize = 128;

/// What a job leaves after its savepoint: it is told how the commit went and answers its
/// caller.
type Finish = Box<dyn FnOnce(Result<(), &str>) + Send>;
type Job = Box<dyn FnOnce(&mut DbConnection) -> Finish + Send>;

/// The queue to this process's writer threads.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts `threads` writer threads on `pool` (one for SQLite, which has one writer);
    /// each commit nudges `checkpoints` (SQLite's WAL checkpoints, `db::checkpoint`).
    pub fn start(
        pool: DbPool,
        threads: usize,
        checkpoints: Option<Checkpointer>,
    ) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        for n in 0..threads.max(1) {
            let jobs = jobs.clone();
            let pool = pool.clone();
            let checkpoints = checkpoints.clone();
            std::thread::Builder::new()
                .name(format!("db-writer-{n}"))
                .spawn(move || {
                    let mut held = None;
                    while let Some(batch) = next_batch(&jobs) {
                        held = run_batch(&pool, held, batch, checkpoints.as_ref());
                    }
                    if let Some(conn) = held {
                        release(conn, checkpoints.as_ref());
                    }
                })?;
        }
        Ok(Self { queue })
    }

    /// Runs `work` in a write transaction shared with other callers' work and answers once
    /// it is committed. `work` runs in a savepoint: its `Err` undoes its own writes only.
    pub async fn write<T, E>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<ServiceError> + From<diesel::result::Error> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel::<Result<T, E>>();
        // What the job logs (an audit event) belongs to the request that sent it.
        let span = tracing::Span::current();
        let job: Job = Box::new(move |conn| {
            let result = span.in_scope(|| conn.transaction(work));
            Box::new(move |commit| {
                let outcome = match (result, commit) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Ok(_), Err(why)) => Err(E::from(ServiceError::Commit(why.to_owned()))),
                    (Err(err), _) => Err(err),
                };
                let _ = answer.send(outcome);
            })
        });
        self.queue
            .send(job)
            .map_err(|_| ServiceError::Commit("the database writer has stopped".into()))?;
        answered.await.map_err(|_| {
            E::from(ServiceError::Commit(
                "the database writer dropped the request".into(),
            ))
        })?
    }
}

/// Waits for a job, then takes every other job already waiting. `None` when every `Writer`
/// is gone.
fn next_batch(jobs: &Mutex<mpsc::Receiver<Job>>) -> Option<Vec<Job>> {
    let jobs = jobs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let first = jobs.recv().ok()?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    Some(batch)
}

fn fail_all(batch: Vec<Job>, why: &str) {
    tracing::error!(error = %why, jobs = batch.len(), "a batch of writes failed");
    // Each job's answer goes out unrun: dropping it tells its caller.
    drop(batch);
}

/// Runs and commits `batch` on `held` (or a connection from the pool) and returns the
/// connection to keep for the next batch, if any.
///
/// On SQLite (`checkpoints` is set) the writer keeps its connection while it works: it is
/// the only writer, so its page cache stays valid from one batch to the next, whereas any
/// connection that another one wrote through since its last use starts with an empty cache.
/// The kept connection does not checkpoint in its commits (`Checkpointer::writing`) until it
/// goes back to the pool after a failure. On PostgreSQL each batch takes a connection the
/// pool has just checked, so that a server restart costs no batch.
fn run_batch(
    pool: &DbPool,
    held: Option<PooledDb>,
    batch: Vec<Job>,
    checkpoints: Option<&Checkpointer>,
) -> Option<PooledDb> {
    let mut conn = match held {
        Some(conn) => conn,
        None => {
            let acquired = super::checkout(pool)
                .map_err(|e| e.to_string())
                .and_then(|mut conn| match checkpoints.map(|c| c.writing(&mut conn)) {
                    Some(Err(e)) => Err(e.to_string()),
                    _ => Ok(conn),
                });
            match acquired {
                Ok(conn) => conn,
                Err(why) => {
                    fail_all(batch, &why);
                    return None;
                }
            }
        }
    };
    let (finishers, commit) = {
        let _writer = match super::begin_write(&mut conn) {
            Ok(guard) => guard,
            Err(e) => {
                fail_all(batch, &e.to_string());
                return release(conn, checkpoints);
            }
        };
        crate::metrics::METRICS
            .writer_batch_size
            .observe(batch.len() as f64);
        let mut finishers = Vec::with_capacity(batch.len());
        let mut panicked = false;
        for job in batch {
            match std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut conn))) {
                Ok(finish) => finishers.push(finish),
                Err(_) => {
                    panicked = true;
                    break;
                }
            }
        }
        let commit = if panicked {
            let _ = super::rollback_all(&mut conn);
            Err("a write job panicked; the batch was rolled back".to_owned())
        } else {
            let timer = crate::metrics::METRICS.writer_commit.start_timer();
            let committed = super::commit(&mut conn);
            timer.observe_duration();
            match committed {
                Ok(()) => Ok(()),
                Err(e) => {
                    let _ = super::rollback(&mut conn);
                    Err(e.to_string())
                }
            }
        };
        (finishers, commit)
    };
    if let Err(why) = &commit {
        tracing::error!(error = %why, jobs = finishers.len(), "a batch of writes was not committed");
    }
    for finish in finishers {
        finish(commit.as_ref().map(|_| ()).map_err(String::as_str));
    }
    match (checkpoints, commit) {
        // After the answers: a checkpoint here delays the next batch, not this one.
        (Some(checkpoints), Ok(())) => {
            checkpoints.committed(&mut conn);
            Some(conn)
        }
        (checkpoints, _) => release(conn, checkpoints),
    }
}

/// Gives the writer's connection back to the pool, with the settings of every other
/// connection.
fn release(mut conn: PooledDb, checkpoints: Option<&Checkpointer>) -> Option<PooledDb> {
    if let Some(checkpoints) = checkpoints
        && let Err(e) = checkpoints.written(&mut conn)
    {
        tracing::warn!(error = %e, "could not reset the writer connection's checkpoint setting");
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use diesel::RunQueryDsl;

    use super::*;
    use crate::db::connect_and_migrate;

    fn scratch_pool(name: &str) -> DbPool {
        let dir = std::env::temp_dir().join(format!(
            "doorward-writer-{name}-{}",
            doorward_shared::secret::random_id()
        ));
        let url = format!("sqlite://{}/w.db", dir.display());
        connect_and_migrate(&url, 4, Duration::from_secs(5)).unwrap()
    }

    fn insert_secret(conn: &mut DbConnection, name: &str) -> diesel::QueryResult<usize> {
        diesel::sql_query(
            "INSERT INTO server_secrets (name, value, created_at) VALUES (?, x'00', 0)",
        )
        .bind::<diesel::sql_types::Text, _>(name)
        .execute(conn)
    }

    fn names(pool: &DbPool) -> Vec<String> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
        }
        let mut conn = pool.get().unwrap();
        let mut rows: Vec<String> =
            diesel::sql_query("SELECT name FROM server_secrets WHERE name LIKE 'job-%'")
                .load::<Row>(&mut *conn)
                .unwrap()
                .into_iter()
                .map(|r| r.name)
                .collect();
        rows.sort();
        rows
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_undoes_only_its_own_writes() {
        let pool = scratch_pool("savepoints");
        let writer = Writer::start(pool.clone(), 1, None).unwrap();
        // Many at once, so that batches form; every third job writes, then fails.
        let jobs = (0..60).map(|i| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(move |conn| {
                        insert_secret(conn, &format!("job-{i:02}"))?;
                        if i % 3 == 0 {
                            return Err(ServiceError::Commit("refused".into()));
                        }
                        Ok(i)
                    })
                    .await
            })
        });
        let mut answered = Vec::new();
        for job in jobs.collect::<Vec<_>>() {
            if let Ok(i) = job.await.unwrap() {
                answered.push(format!("job-{i:02}"));
            }
        }
        answered.sort();
        assert_eq!(answered.len(), 40);
        assert_eq!(
            names(&pool),
            answered,
            "exactly the successful jobs are stored"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_job_fails_its_batch_and_the_writer_goes_on() {
        let pool = scratch_pool("panic");
        let writer = Writer::start(pool.clone(), 1, None).unwrap();
        let panicked = writer
            .write(|conn| -> Result<(), ServiceError> {
                insert_secret(conn, "job-lost")?;
                panic!("a bug in a job");
            })
            .await;
        assert!(panicked.is_err());
        writer
            .write(|conn| Ok::<_, ServiceError>(insert_secret(conn, "job-kept")?))
            .await
            .unwrap();
        assert_eq!(names(&pool), vec!["job-kept".to_owned()]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_is_answered_after_its_commit() {
        let pool = scratch_pool("commit");
        let writer = Writer::start(pool.clone(), 1, None).unwrap();
        writer
            .write(|conn| Ok::<_, ServiceError>(insert_secret(conn, "job-1")?))
            .await
            .unwrap();
        // Another connection sees the row: it was committed before the answer.
        assert_eq!(names(&pool), vec!["job-1".to_owned()]);
    }
}
