//! The password hashing pool: a fixed set of OS threads (one per core by default), each owning one
//! Argon2 memory block that it reuses for every hash and verify, fed through a bounded queue.
//!
//! Why not `spawn_blocking` and the `argon2` crate's own allocation: every hash then allocated and
//! freed its 19 MiB on whichever blocking thread ran it, and glibc kept the freed memory in that
//! thread's arena: 100 logins, 10 at a time, left parleyd at 712 MB where it had started at 11 MB.
//! With one block per worker, what hashing costs in memory is `workers` blocks, for good.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::Arc;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use parking_lot::Mutex;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// Jobs waiting or running, per worker: enough to keep the workers busy between one job and the
/// next, few enough that a flood of logins queues in the semaphore, which costs nothing.
const QUEUED_PER_WORKER: usize = 2;

type Job = Box<dyn FnOnce(&mut HashMemory) + Send>;

/// Why a job did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("the password hashing pool has stopped")]
    Stopped,
    #[error("a password hashing job panicked")]
    Panicked,
}

/// A worker's Argon2 memory: allocated at its first hash, then reused by every hash after.
#[derive(Default)]
pub struct HashMemory {
    blocks: Vec<Block>,
}

impl HashMemory {
    /// Hash a password for storage: Argon2id with the crate's (OWASP-recommended) defaults and a
    /// fresh random 16-byte salt, as a PHC string.
    pub fn hash(&mut self, password: &str) -> Result<String, String> {
        let salt = argon2::password_hash::try_generate_salt()
            .map_err(|error| format!("no OS random source: {error}"))?;
        let params = Params::default();
        let mut output = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        self.with_blocks(params.block_count(), |blocks| {
            argon2.hash_password_into_with_memory(password.as_bytes(), &salt, &mut output, blocks)
        })
        .map_err(|error| error.to_string())?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|error| error.to_string())?,
            salt: Some(Salt::new(&salt).map_err(|error| error.to_string())?),
            hash: Some(Output::new(&output).map_err(|error| error.to_string())?),
        };
        Ok(hash.to_string())
    }

    /// Whether `password` matches the PHC string `hash`, with the parameters the string names; the
    /// outputs are compared in constant time. An unparseable hash is an error, and matches nothing.
    pub fn verify(&mut self, password: &str, hash: &str) -> Result<bool, String> {
        let parsed = PasswordHash::new(hash).map_err(|error| error.to_string())?;
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return Err("the hash has no salt or no output".to_owned());
        };
        let algorithm =
            Algorithm::try_from(parsed.algorithm.as_str()).map_err(|error| error.to_string())?;
        let version = match parsed.version {
            Some(version) => Version::try_from(version).map_err(|error| error.to_string())?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).map_err(|error| error.to_string())?;
        let mut output = vec![0u8; expected.len()];
        let argon2 = Argon2::new(algorithm, version, params.clone());
        self.with_blocks(params.block_count(), |blocks| {
            argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut output, blocks)
        })
        .map_err(|error| error.to_string())?;
        let computed = Output::new(&output).map_err(|error| error.to_string())?;
        // `Output`'s equality is constant time.
        Ok(computed == *expected)
    }

    /// Run `hash` over `count` blocks: this worker's own, or, for a stored hash that asks for more
    /// memory than the defaults, a block of its own freed right after, so the worker stays small.
    fn with_blocks<T>(&mut self, count: usize, hash: impl FnOnce(&mut [Block]) -> T) -> T {
        let default_count = Params::default().block_count();
        if count > default_count {
            let mut larger = vec![Block::new(); count];
            return hash(&mut larger);
        }
        if self.blocks.len() < default_count {
            self.blocks = vec![Block::new(); default_count];
        }
        hash(&mut self.blocks[..count])
    }

    /// Where the blocks live, for tests that check they are reused.
    #[cfg(test)]
    fn address(&self) -> usize {
        self.blocks.as_ptr() as usize
    }
}

/// The pool. Cheap to share (`Arc`); the workers stop when the last handle is dropped.
pub struct HashPool {
    jobs: mpsc::Sender<Job>,
    /// One permit per job queued or running; a job carries its permit until it ends, so at most
    /// `workers * QUEUED_PER_WORKER` jobs (and their passwords) ever wait in the queue.
    slots: Arc<Semaphore>,
    workers: usize,
}

impl HashPool {
    /// Start `workers` threads (at least one).
    pub fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..workers {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("parley-hash-{index}"))
                .spawn(move || work(&queue));
            if let Err(error) = spawned {
                // Fewer workers is slower, not wrong; with none, jobs fail with `Stopped`.
                tracing::error!(%error, index, "password hashing worker not started");
            }
        }
        Self {
            jobs,
            slots: Arc::new(Semaphore::new(workers * QUEUED_PER_WORKER)),
            workers,
        }
    }

    /// One worker per core, as `std::thread::available_parallelism` counts them.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Run `job` on a worker with its memory, waiting for a place in the queue first. If the
    /// caller goes away meanwhile, a job that has not started yet is skipped.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut HashMemory) -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Stopped)?;
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |memory: &mut HashMemory| {
            let permit: OwnedSemaphorePermit = permit;
            if reply.is_closed() {
                return;
            }
            let answer = job(memory);
            drop(permit);
            let _ = reply.send(answer);
        });
        self.jobs.send(job).map_err(|_| PoolError::Stopped)?;
        answer.await.map_err(|_| PoolError::Panicked)
    }
}

fn work(queue: &Mutex<mpsc::Receiver<Job>>) {
    let mut memory = HashMemory::default();
    loop {
        // Only the waiting worker holds the lock; the others wait for it, not for a job.
        let job = queue.lock().recv();
        let Ok(job) = job else {
            return; // the pool is gone
        };
        // A job that panics drops its reply (its caller sees `Panicked`); the worker goes on.
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut memory))).is_err() {
            tracing::error!("a password hashing job panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn hashes_and_verifies_like_the_argon2_crate() {
        let mut memory = HashMemory::default();
        let ours = memory.hash("correct horse").expect("hash");
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        assert!(Argon2::default()
            .verify_password(b"correct horse", ours.as_str())
            .is_ok());
        let theirs = Argon2::default()
            .hash_password(b"battery staple")
            .expect("hash")
            .to_string();
        assert_eq!(memory.verify("battery staple", &theirs), Ok(true));
        assert_eq!(memory.verify("battery stapler", &theirs), Ok(false));
        assert!(memory.verify("x", "not a phc string").is_err());
        // Other parameters than the defaults, read from the string: fewer blocks and more.
        for m in [8192, 32768] {
            let params = Params::new(m, 1, 1, None).expect("params");
            let other = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(b"pw-pw-pw")
                .expect("hash")
                .to_string();
            assert_eq!(memory.verify("pw-pw-pw", &other), Ok(true), "m={m}");
            assert_eq!(memory.verify("pw-pw-pX", &other), Ok(false), "m={m}");
        }
        assert_eq!(memory.blocks.len(), Params::default().block_count());
    }

    #[tokio::test]
    async fn each_worker_reuses_one_block() {
        let pool = HashPool::new(1);
        let mut addresses = Vec::new();
        for _ in 0..3 {
            let address = pool
                .run(|memory| {
                    memory.hash("some password").expect("hash");
                    memory.address()
                })
                .await
                .expect("job");
            addresses.push(address);
        }
        assert!(
            addresses.iter().all(|&a| a == addresses[0]),
            "{addresses:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_jobs_run_at_once_than_there_are_workers() {
        let pool = Arc::new(HashPool::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(move |_| {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        for task in tasks {
            task.await.expect("task").expect("job");
        }
        let most = most.load(Ordering::SeqCst);
        assert!(
            (1..=2).contains(&most),
            "{most} jobs ran at once on 2 workers"
        );
        // Every job gave its place in the queue back.
        assert_eq!(pool.slots.available_permits(), 2 * QUEUED_PER_WORKER);
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone() {
        let pool = HashPool::new(1);
        let failed = pool.run(|_| -> u8 { panic!("boom") }).await;
        assert!(matches!(failed, Err(PoolError::Panicked)), "{failed:?}");
        assert_eq!(pool.run(|_| 7u8).await.expect("the worker lives on"), 7);
    }
}
