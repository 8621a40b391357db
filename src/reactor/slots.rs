//! The control array: a table of [`Socket`] slots whose index is the mio token and
//! the VB `Index`.
//!
//! Like a VB control array, a slot once loaded stays loaded: when its connection
//! is reaped it goes back to `sckClosed`, without a socket or data, and the next
//! connection takes the lowest-index slot that is reusable (state 0 or 8, as the
//! article's `For a = 1 To p2p.UBound ... If istate = 0 Or istate = 8` scan). The
//! table grows, like `Load p2p(i + 1)`, only when none is, and never shrinks.
//!
//! Why not the `slab` crate: slab hands back the most recently freed key, but the
//! manager's slot index is visible on the wire (`<offset>`) and the article reuses
//! the *lowest* free index. A min-heap of the reusable indices keeps that order at
//! O(log n) per connection instead of the article's O(n) scan.
//!
//! A slot's socket is what lets its index go back on the heap: [`SlotTable::vacate`]
//! offers an index only when it takes the slot's socket out, and only
//! [`SlotTable::take`], which the caller then fills with a new socket, takes the
//! index off again. So an index is offered once per connection, however often a
//! daemon closes, aborts or fails a slot that is already in `sckClosed`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::sockets::Socket;
use super::{Index, State};

/// Every slot ever loaded, in use or in `sckClosed`.
pub struct SlotTable<T> {
    slots: Vec<Socket<T>>,
    /// The reusable slots, lowest index on top: exactly those without a socket,
    /// each once. Only [`SlotTable::vacate`] adds to it, and only [`SlotTable::take`]
    /// takes from it.
    reusable: BinaryHeap<Reverse<Index>>,
}

impl<T> SlotTable<T> {
    pub(super) fn new() -> Self {
        SlotTable {
            slots: Vec::new(),
            reusable: BinaryHeap::new(),
        }
    }

    /// The index the next [`SlotTable::take`] will return.
    pub(super) fn next_index(&self) -> Index {
        match self.reusable.peek() {
            Some(&Reverse(i)) => i,
            None => self.slots.len(),
        }
    }

    /// Takes the lowest reusable slot, or loads a new one after the last (VB:
    /// `Load p2p(p2p.UBound + 1)`). It is still in `sckClosed`: the caller fills it
    /// and moves it on through the state transition.
    pub(super) fn take(&mut self, now: Instant) -> (Index, &mut Socket<T>) {
        let i = match self.reusable.pop() {
            Some(Reverse(i)) => i,
            None => {
                self.slots.push(Socket::unloaded(now));
                self.slots.len() - 1
            }
        };
        let s = &mut self.slots[i];
        debug_assert!(
            s.state.is_reusable() && !s.has_socket(),
            "slot {i} was in use"
        );
        (i, s)
    }

    /// Empties slot `i` for reuse: drops its socket (which closes the fd and so
    /// takes it out of the epoll set) and queued output, offers the index, and
    /// returns the daemon's data. `None`, and nothing offered, when the slot has no
    /// socket: it is already free, or never existed. The caller moves the slot to
    /// `sckClosed`.
    pub(super) fn vacate(&mut self, i: Index) -> Option<Option<T>> {
        let s = self.slots.get_mut(i)?;
        drop(s.io.take()?);
        s.out = Default::default();
        // A pending handshake gives its place back here (its ticket drops).
        s.secure = None;
        self.reusable.push(Reverse(i));
        Some(s.data.take())
    }

    /// Slot `i`, in use or in `sckClosed`; `None` past the last one loaded.
    pub(super) fn get(&self, i: Index) -> Option<&Socket<T>> {
        self.slots.get(i)
    }

    pub(super) fn get_mut(&mut self, i: Index) -> Option<&mut Socket<T>> {
        self.slots.get_mut(i)
    }

    /// VB's `UBound + 1`: how many slots have ever been loaded.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Slots in use, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (Index, &Socket<T>)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state != State::Closed)
    }

    /// The free list, lowest first, duplicates kept, for the tests that hold its
    /// invariant.
    #[cfg(test)]
    pub(super) fn reusable(&self) -> Vec<Index> {
        let mut free: Vec<Index> = self.reusable.iter().map(|&Reverse(i)| i).collect();
        free.sort_unstable();
        free
    }
}
