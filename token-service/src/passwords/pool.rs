//! The threads that run argon2id. There are exactly as many as hashes may run at once, and
//! each keeps one argon2 memory buffer while it has work and hashes into it.
//!
//! Why not `spawn_blocking`: its hashes land on whichever of tokio's (up to 512) blocking
//! threads is free, each allocating and freeing ~19 MiB. glibc keeps freed memory in the
//! arena of the thread that freed it, and after the first free of a large mmapped chunk it
//! raises its mmap threshold, so later buffers come from those arenas and stay there: the
//! benchmark saw 1.2 GiB RSS with only two hashes running at once. Here memory is the
//! buffers, allocated once: threads × m_cost.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use argon2::{Argon2, Block};

use super::HashError;

/// How long a hashing thread keeps its buffer with no work: an idle service gives the
/// memory back (about 19 MiB per thread), a busy one allocates it once.
const KEEP_IDLE_BUFFER: Duration = Duration::from_secs(10);

/// One piece of work for a hashing thread.
pub(super) type Job = Box<dyn FnOnce(&mut Workspace) + Send>;

/// A hashing thread's memory, reused from one hash to the next.
pub(super) struct Workspace {
    blocks: Vec<Block>,
    /// The size the buffer is kept at: the configured parameters' block count.
    kept_blocks: usize,
}

impl Workspace {
    /// Runs argon2 with `argon2`'s parameters into `out`, in the kept buffer when it is big
    /// enough. A stored hash with a larger memory cost than today's (rare: parameters are
    /// seldom lowered) gets a buffer of its own for that one hash, so the kept buffer never
    /// grows past the configured size.
    pub(super) fn hash_into(
        &mut self,
        argon2: &Argon2<'_>,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), argon2::Error> {
        let needed = argon2.params().block_count();
        if needed > self.kept_blocks {
            let mut blocks = vec![Block::default(); needed];
            return argon2.hash_password_into_with_memory(password, salt, out, &mut blocks);
        }
        if self.blocks.len() < needed {
            // Allocated on first use, so that idle threads (and tests) hold no memory.
            self.blocks.resize(self.kept_blocks, Block::default());
        }
        // No need to clear it: argon2 writes every block before it reads it.
        argon2.hash_password_into_with_memory(password, salt, out, &mut self.blocks[..needed])
    }
}

/// A fixed set of hashing threads fed through a channel. Callers bound what they send (the
/// slots in `PasswordHasher`), so the channel never holds more jobs than there are threads.
/// The threads end when the last `HashPool` clone is dropped.
#[derive(Clone)]
pub(super) struct HashPool {
    jobs: Sender<Job>,
}

impl HashPool {
    /// Starts `threads` threads, each keeping a buffer of `kept_blocks` argon2 blocks.
    pub(super) fn start(threads: usize, kept_blocks: usize) -> Result<Self, HashError> {
        let (jobs, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..threads {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || work(&receiver, kept_blocks))
                .map_err(|e| {
                    HashError::Internal(format!("could not start a hashing thread: {e}"))
                })?;
        }
        Ok(Self { jobs })
    }

    /// Hands `job` to the next free thread.
    pub(super) fn submit(&self, job: Job) -> Result<(), HashError> {
        self.jobs
            .send(job)
            .map_err(|_| HashError::Internal("the hashing threads are gone".to_owned()))
    }
}

fn work(receiver: &Mutex<Receiver<Job>>, kept_blocks: usize) {
    let mut workspace = Workspace {
        blocks: Vec::new(),
        kept_blocks,
    };
    loop {
        // The lock is held only while waiting for a job, never while hashing.
        let next = {
            let receiver = receiver.lock().unwrap_or_else(PoisonError::into_inner);
            if workspace.blocks.is_empty() {
                receiver.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                receiver.recv_timeout(KEEP_IDLE_BUFFER)
            }
        };
        let job = match next {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                workspace.blocks = Vec::new();
                continue;
            }
            // Every sender is gone: the hasher was dropped.
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // A panicking job drops its reply sender (its caller sees an error); the thread
        // lives on, so the pool never shrinks.
        if catch_unwind(AssertUnwindSafe(|| job(&mut workspace))).is_err() {
            tracing::error!("a password hashing job panicked");
        }
    }
}
