//! Segment memory handed back for the next segments.
//!
//! A segment is several MiB, above the size at which the allocator gives a block its own
//! mapping: without reuse, every stored segment's memory goes back to the kernel and the next
//! segment starts in fresh pages, each mapped and cleared on its first write (a quarter of a
//! million page faults per GiB backed up). The reader takes its segments' buffers from here,
//! the encoder takes the buffer it compresses into and gives back the one it no longer needs,
//! and the store gives back the stored bytes' buffer once the object is written.

use std::sync::{Arc, Mutex};

/// Spare buffers, at most `max` kept at once (the others are freed as before).
#[derive(Debug, Clone)]
pub(crate) struct SegmentBuffers {
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
    max: usize,
}

impl SegmentBuffers {
    /// A pool keeping at most `max` spare buffers.
    pub(crate) fn new(max: usize) -> Self {
        SegmentBuffers {
            spare: Arc::new(Mutex::new(Vec::with_capacity(max))),
            max,
        }
    }

    /// A spare buffer (empty, with whatever capacity it had), or a new empty one.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.lock().pop().unwrap_or_default()
    }

    /// Keeps `buffer` for a later [`take`](Self::take) unless `max` are kept already or it
    /// holds no memory.
    pub(crate) fn give(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() == 0 {
            return;
        }
        buffer.clear();
        let mut spare = self.lock();
        if spare.len() < self.max {
            spare.push(buffer);
        }
    }

    /// Spare buffers kept now.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // A panic while holding the lock leaves only a list of spare buffers: still usable.
        self.spare
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_empty_with_their_memory_and_no_more_than_max_are_kept() {
        let pool = SegmentBuffers::new(2);
        assert_eq!(
            pool.take().capacity(),
            0,
            "an empty pool gives a new buffer"
        );
        let mut b = Vec::with_capacity(1 << 20);
        b.extend_from_slice(b"records");
        let at = b.as_ptr();
        pool.give(b);
        pool.give(Vec::with_capacity(10));
        pool.give(Vec::with_capacity(10));
        pool.give(Vec::new());
        assert_eq!(pool.kept(), 2, "at most max are kept");
        let _ = pool.take();
        let again = pool.take();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), at, "the same memory comes back");
        assert!(again.capacity() >= 1 << 20);
    }
}
