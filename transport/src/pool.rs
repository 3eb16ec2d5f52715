//! Reused buffers for bulk bytes handed to quinn without copying.
//!
//! A [`BufPool`] keeps buffers of one size. [`BufPool::take`] gives one out
//! (allocating only when none is free), the caller fills it, and
//! [`PooledBuf::freeze`] turns it into [`Bytes`] that quinn sends as they
//! are; when quinn (and everyone else) drops the last reference, the buffer
//! goes back to the pool instead of to the allocator. So a stream moving
//! gigabytes touches the same few megabytes of memory over and over, with
//! no page faults and no zeroing after the first use.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Buffers of `size` bytes, at most `keep` of them idle.
#[derive(Clone)]
pub struct BufPool {
    inner: Arc<Inner>,
}

struct Inner {
    size: usize,
    keep: usize,
    free: Mutex<Vec<Vec<u8>>>,
}

/// A buffer taken from a [`BufPool`], `len` bytes of it in use.
pub struct PooledBuf {
    buf: Vec<u8>,
    len: usize,
    pool: Arc<Inner>,
}

impl BufPool {
    /// A pool of buffers of `size` bytes keeping up to `keep` idle ones.
    pub fn new(size: usize, keep: usize) -> BufPool {
        BufPool {
            inner: Arc::new(Inner {
                size,
                keep,
                free: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The size of every buffer.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// A buffer with `len` (≤ [`BufPool::size`]) bytes in use; their
    /// contents are whatever the buffer held before.
    pub fn take(&self, len: usize) -> PooledBuf {
        let reused = self.inner.free.lock().ok().and_then(|mut f| f.pop());
        let buf = reused.unwrap_or_else(|| vec![0u8; self.inner.size]);
        PooledBuf {
            len: len.min(buf.len()),
            buf,
            pool: self.inner.clone(),
        }
    }

    /// Idle buffers in the pool.
    pub fn idle(&self) -> usize {
        self.inner.free.lock().map(|f| f.len()).unwrap_or(0)
    }
}

impl PooledBuf {
    /// The bytes in use.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// Hand the bytes in use over as [`Bytes`]; the buffer returns to its
    /// pool when the last clone is dropped.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if let Ok(mut free) = self.pool.free.lock() {
            if free.len() < self.pool.keep {
                free.push(buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_when_the_last_bytes_are_dropped() {
        let pool = BufPool::new(16, 2);
        let mut a = pool.take(5);
        a.as_mut_slice().copy_from_slice(b"hello");
        let ptr = a.as_ref().as_ptr();
        let bytes = a.freeze();
        let part = bytes.slice(1..3);
        drop(bytes);
        assert_eq!(pool.idle(), 0, "still referenced by a slice");
        assert_eq!(&part[..], b"el");
        drop(part);
        assert_eq!(pool.idle(), 1);
        // The same memory is handed out again, with its old contents.
        let b = pool.take(16);
        assert_eq!(b.as_ref().as_ptr(), ptr);
        assert_eq!(&b.as_ref()[..5], b"hello");
        // At most `keep` idle buffers are kept.
        let (c, d, e) = (pool.take(1), pool.take(1), pool.take(1));
        drop((b, c, d, e));
        assert_eq!(pool.idle(), 2);
        assert_eq!(pool.take(100).as_ref().len(), 16, "len is capped at the size");
    }
}
