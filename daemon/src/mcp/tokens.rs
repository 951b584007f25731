//! Who a bearer token is, remembered: every MCP request names its session by token, and asking
//! the database each time put a round trip to the writer thread (queued behind its commits)
//! before every tool call. A token the database accepted is remembered with its caller and
//! expiry; a lookup that misses, or a token nobody knows, asks the database as before.
//!
//! **Invariant:** a revoked token is never accepted from memory. Revoking (ending a session)
//! commits, then calls [`Tokens::revoked`], which forgets every token and starts a new
//! generation; an answer read from the database is remembered only if no revocation happened
//! since the read began, so a read that raced a revocation is not kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use crate::board::Caller;

/// Tokens remembered at most; past it the memory starts again (a token is then read once
/// more).
const MAX: usize = 4096;

/// The remembered tokens (cloned handles share them).
#[derive(Clone, Default)]
pub struct Tokens {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Bumped by every revocation.
    generation: AtomicU64,
    known: Mutex<Known>,
}

/// By token hash: the caller and its expiry.
type Known = HashMap<Vec<u8>, (Caller, Option<OffsetDateTime>)>;

/// Says how many tokens are remembered, never which.
impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("generation", &self.generation())
            .field("known", &self.known().len())
            .finish()
    }
}

impl Tokens {
    /// Where a database read starts: pass it to [`Tokens::remember`] with its answer.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.inner
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The caller a remembered token names, unless it expired by `now`.
    pub fn get(&self, hash: &[u8], now: OffsetDateTime) -> Option<Caller> {
        let known = self.known();
        let (caller, expires) = known.get(hash)?;
        expires.is_none_or(|t| now < t).then(|| caller.clone())
    }

    /// Remembers what the database said of a token, read since `generation`.
    pub fn remember(
        &self,
        hash: Vec<u8>,
        caller: Caller,
        expires: Option<OffsetDateTime>,
        generation: u64,
    ) {
        let mut known = self.known();
        // Checked under the lock that `revoked` clears under: no revocation slips between.
        if self.generation() != generation {
            return;
        }
        if known.len() >= MAX {
            known.clear();
        }
        known.insert(hash, (caller, expires));
    }

    /// A session's token was revoked (committed): nothing remembered is trusted any more.
    pub fn revoked(&self) {
        let mut known = self.known();
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        known.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::Role;

    fn caller() -> Caller {
        Caller {
            session: "s-1".into(),
            run: "r-1".into(),
            role: Role::Worker,
            dispatched: None,
        }
    }

    #[test]
    fn a_revocation_forgets_every_token_and_a_read_that_raced_it_is_not_kept() {
        let tokens = Tokens::default();
        let now = OffsetDateTime::now_utc();
        let g = tokens.generation();
        tokens.remember(b"a".to_vec(), caller(), None, g);
        assert_eq!(tokens.get(b"a", now), Some(caller()));
        // A read begins, the token is revoked, the read answers "active".
        let read_from = tokens.generation();
        tokens.revoked();
        assert_eq!(tokens.get(b"a", now), None, "forgotten");
        tokens.remember(b"a".to_vec(), caller(), None, read_from);
        assert_eq!(tokens.get(b"a", now), None, "a raced read is not kept");
        // Expiry is still checked from memory.
        let g = tokens.generation();
        let soon = now + time::Duration::seconds(1);
        tokens.remember(b"b".to_vec(), caller(), Some(soon), g);
        assert_eq!(tokens.get(b"b", now), Some(caller()));
        assert_eq!(tokens.get(b"b", soon), None, "expired");
    }
}
