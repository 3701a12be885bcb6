//! Sessions: a client's keys (collected over one or more uploads, then inside its own
//! evaluation [`Context`]) and its encrypted state, under an unguessable id, with the memory of
//! all sessions accounted against a budget. A session's keys and ciphertexts are reachable
//! only through its own id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use crate::api::SessionMode;
use crate::workload::{Context, EncryptedState, KeySet};
use crate::{Result, ServiceError};

/// A session's keys: still being uploaded, or complete and built into a context.
pub enum Keys {
    /// Keys received so far.
    Collecting(KeySet),
    /// The evaluation context (shared by the session's running jobs).
    Ready(Arc<Context>),
}

/// One client's session.
pub struct Session {
    id: String,
    mode: SessionMode,
    keys: Mutex<Keys>,
    /// Bytes of keys and context held, as accounted in the store.
    held: AtomicU64,
    /// Set (under the keys' lock) when the session is removed: uploads still in flight then
    /// return their reservation instead of holding it.
    closed: AtomicBool,
    state: Mutex<EncryptedState>,
    last_used: Mutex<Instant>,
    jobs: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking job cannot leave these in a state worse than "as the job left it"; the
    // encrypted state is only ever pushed to or popped as a whole.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Session {
    /// The id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What the session is for.
    pub fn mode(&self) -> SessionMode {
        self.mode
    }

    /// The session's keys, locked (uploads and the first job's context build hold them).
    pub fn keys(&self) -> MutexGuard<'_, Keys> {
        lock(&self.keys)
    }

    /// Whether the session was removed (check under [`Self::keys`]).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Bytes of keys and context held.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }

    /// Records `bytes` more held (already reserved in the store).
    pub fn hold(&self, bytes: u64) {
        self.held.fetch_add(bytes, Ordering::SeqCst);
    }

    /// Records `bytes` no longer held (the caller releases them in the store).
    pub fn unhold(&self, bytes: u64) {
        let _ = self
            .held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |h| {
                Some(h.saturating_sub(bytes))
            });
    }

    /// The encrypted state, if no other job holds it.
    ///
    /// # Errors
    /// [`ServiceError::SessionBusy`].
    pub fn try_state(&self) -> Result<MutexGuard<'_, EncryptedState>> {
        match self.state.try_lock() {
            Ok(g) => Ok(g),
            Err(TryLockError::Poisoned(e)) => Ok(e.into_inner()),
            Err(TryLockError::WouldBlock) => Err(ServiceError::SessionBusy {
                id: short_id(&self.id),
            }),
        }
    }

    /// Steps in the encrypted state and bytes held (keys plus state); waits for a running
    /// job.
    pub fn usage(&self) -> (usize, u64) {
        let s = lock(&self.state);
        (s.steps(), self.held() + s.bytes())
    }

    /// Jobs completed.
    pub fn jobs(&self) -> u64 {
        self.jobs.load(Ordering::Relaxed)
    }

    /// Counts a completed job.
    pub fn job_done(&self) {
        self.jobs.fetch_add(1, Ordering::Relaxed);
    }

    fn touch(&self) {
        *lock(&self.last_used) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        lock(&self.last_used).elapsed()
    }
}

/// The first 8 characters of an id: what logs and error messages show (the full id is a
/// bearer capability).
pub fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

struct Inner {
    sessions: HashMap<String, Arc<Session>>,
    /// Bytes accounted: keys and state of every session plus reservations.
    used: u64,
}

/// All sessions, with their memory accounting.
pub struct SessionStore {
    inner: Mutex<Inner>,
    max_sessions: usize,
    budget: u64,
}

impl SessionStore {
    /// An empty store for at most `max_sessions` sessions and `budget` bytes.
    pub fn new(max_sessions: usize, budget: u64) -> Self {
        Self {
            inner: Mutex::new(Inner {
                sessions: HashMap::new(),
                used: 0,
            }),
            max_sessions,
            budget,
        }
    }

    /// Reserves `bytes` of the budget (released by [`Self::release`] or kept by a session).
    ///
    /// # Errors
    /// [`ServiceError::MemoryBudget`].
    pub fn reserve(&self, bytes: u64) -> Result<()> {
        let mut inner = lock(&self.inner);
        let available = self.budget.saturating_sub(inner.used);
        if bytes > available {
            return Err(ServiceError::MemoryBudget {
                needed: bytes,
                available,
                budget: self.budget,
            });
        }
        inner.used += bytes;
        Ok(())
    }

    /// Returns `bytes` to the budget.
    pub fn release(&self, bytes: u64) {
        let mut inner = lock(&self.inner);
        inner.used = inner.used.saturating_sub(bytes);
    }

    /// Replaces a reservation of `reserved` bytes by what a session's state really changed by
    /// (`before` to `after` bytes).
    pub fn settle(&self, reserved: u64, before: u64, after: u64) {
        let mut inner = lock(&self.inner);
        inner.used = inner.used.saturating_sub(reserved).saturating_sub(before) + after;
    }

    /// Bytes accounted now.
    pub fn used(&self) -> u64 {
        lock(&self.inner).used
    }

    /// The budget.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Open sessions.
    pub fn len(&self) -> usize {
        lock(&self.inner).sessions.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fails when no further session may be opened (checked before an upload is read).
    ///
    /// # Errors
    /// [`ServiceError::TooManySessions`].
    pub fn check_capacity(&self) -> Result<()> {
        if self.len() >= self.max_sessions {
            return Err(ServiceError::TooManySessions {
                limit: self.max_sessions,
            });
        }
        Ok(())
    }

    /// Opens a `mode` session holding `keys` whose `key_bytes` are already reserved; on error
    /// the reservation is released.
    ///
    /// # Errors
    /// [`ServiceError::TooManySessions`].
    pub fn insert(&self, mode: SessionMode, keys: KeySet, key_bytes: u64) -> Result<Arc<Session>> {
        let mut inner = lock(&self.inner);
        if inner.sessions.len() >= self.max_sessions {
            inner.used = inner.used.saturating_sub(key_bytes);
            return Err(ServiceError::TooManySessions {
                limit: self.max_sessions,
            });
        }
        let id = loop {
            let id = format!("{:032x}", rand::random::<u128>());
            if !inner.sessions.contains_key(&id) {
                break id;
            }
        };
        let session = Arc::new(Session {
            id: id.clone(),
            mode,
            keys: Mutex::new(Keys::Collecting(keys)),
            held: AtomicU64::new(key_bytes),
            closed: AtomicBool::new(false),
            state: Mutex::new(EncryptedState::default()),
            last_used: Mutex::new(Instant::now()),
            jobs: Default::default(),
        });
        inner.sessions.insert(id, session.clone());
        Ok(session)
    }

    /// The session `id`, marked as used now.
    ///
    /// # Errors
    /// [`ServiceError::UnknownSession`].
    pub fn get(&self, id: &str) -> Result<Arc<Session>> {
        let session = lock(&self.inner).sessions.get(id).cloned();
        let session = session.ok_or_else(|| ServiceError::UnknownSession { id: short_id(id) })?;
        session.touch();
        Ok(session)
    }

    /// Closes the session `id` and returns its memory to the budget.
    ///
    /// # Errors
    /// [`ServiceError::UnknownSession`].
    pub fn remove(&self, id: &str) -> Result<()> {
        let session = lock(&self.inner).sessions.remove(id);
        let session = session.ok_or_else(|| ServiceError::UnknownSession { id: short_id(id) })?;
        // Uploads and context builds hold the keys' lock while they change `held`; steps hold
        // the state's while they grow it: after both, the usage is final.
        let _keys = session.keys();
        session.closed.store(true, Ordering::SeqCst);
        let (_, bytes) = session.usage();
        self.release(bytes);
        Ok(())
    }

    /// Closes the sessions unused for longer than `idle`; returns how many.
    pub fn expire(&self, idle: Duration) -> usize {
        let expired: Vec<String> = lock(&self.inner)
            .sessions
            .values()
            .filter(|s| s.idle_for() > idle)
            .map(|s| s.id.clone())
            .collect();
        expired.iter().filter(|id| self.remove(id).is_ok()).count()
    }
}
