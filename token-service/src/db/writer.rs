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

use super::{DbConnection, DbPool};
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
    /// Starts `threads` writer threads on `pool` (one for SQLite, which has one writer).
    pub fn start(pool: DbPool, threads: usize) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        for n in 0..threads.max(1) {
            let jobs = jobs.clone();
            let pool = pool.clone();
            std::thread::Builder::new()
                .name(format!("db-writer-{n}"))
                .spawn(move || {
                    while let Some(batch) = next_batch(&jobs) {
                        run_batch(&pool, batch);
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
        let job: Job = Box::new(move |conn| {
            let result = conn.transaction(work);
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

fn run_batch(pool: &DbPool, batch: Vec<Job>) {
    let fail_all = |batch: Vec<Job>, why: &str| {
        tracing::error!(error = %why, jobs = batch.len(), "a batch of writes failed");
        // Each job's answer goes out unrun: dropping it tells its caller.
        drop(batch);
    };
    let mut conn = match pool.get() {
        Ok(conn) => conn,
        Err(e) => return fail_all(batch, &e.to_string()),
    };
    let (finishers, commit) = {
        let transaction = super::begin_write(&mut conn);
        let _writer = match transaction {
            Ok(guard) => guard,
            Err(e) => return fail_all(batch, &e.to_string()),
        };
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
            match super::commit(&mut conn) {
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
}
