//! A small pool of reusable `u64` buffers, so that the large temporaries of key switching
//! (tens of MB at N=2^16) are not allocated, zeroed and page-faulted on every operation.

use std::sync::Mutex;

/// Most buffers kept; extra buffers are freed.
const MAX_POOLED: usize = 48;

/// A thread-safe free list of `Vec<u64>` buffers.
#[derive(Debug, Default)]
pub struct BufferPool {
    free: Mutex<Vec<Vec<u64>>>,
}

impl BufferPool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// A buffer of exactly `len` elements whose contents are unspecified (zero if newly
    /// allocated, stale data if reused): callers overwrite every element.
    pub fn take(&self, len: usize) -> Vec<u64> {
        let reused = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            let pos = free.iter().position(|v| v.capacity() >= len);
            pos.map(|p| free.swap_remove(p))
        };
        match reused {
            Some(mut v) => {
                v.resize(len, 0);
                v.truncate(len);
                v
            }
            None => vec![0; len],
        }
    }

    /// Returns a buffer to the pool.
    pub fn put(&self, v: Vec<u64>) {
        if v.capacity() == 0 {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < MAX_POOLED {
            free.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_buffers_of_sufficient_capacity() {
        let pool = BufferPool::new();
        let mut v = pool.take(100);
        v[3] = 7;
        let ptr = v.as_ptr();
        pool.put(v);
        let w = pool.take(80);
        assert_eq!(w.len(), 80);
        assert_eq!(w.as_ptr(), ptr);
        let big = pool.take(1000);
        assert_eq!(big.len(), 1000);
    }
}
