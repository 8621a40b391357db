//! The control array: a table of slots whose index is the mio token and the VB `Index`.
//!
//! Why not the `slab` crate: slab hands back the most recently freed key, but the
//! manager's slot index is visible on the wire (`<offset>`) and the article's
//! `For a = 1 To p2p.UBound ... If istate = 0 Or istate = 8` reuses the *lowest*
//! free index. A min-heap of free indices keeps that order at O(log n) per insert
//! instead of the article's O(n) scan, and the table grows like `Load p2p(i + 1)`
//! only when no slot is free. Like a VB control array it never shrinks.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Slots indexed from 0, reusing the lowest free index first.
#[derive(Debug)]
pub struct SlotTable<T> {
    slots: Vec<Option<T>>,
    /// Exactly the indices of the `None` entries in `slots`.
    free: BinaryHeap<Reverse<usize>>,
    len: usize,
}

impl<T> Default for SlotTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> SlotTable<T> {
    pub fn new() -> Self {
        SlotTable {
            slots: Vec::new(),
            free: BinaryHeap::new(),
            len: 0,
        }
    }

    /// The index the next `insert` will use.
    pub fn next_index(&self) -> usize {
        match self.free.peek() {
            Some(Reverse(i)) => *i,
            None => self.slots.len(),
        }
    }

    /// Puts `value` in the lowest free slot (VB: `Accept` into the first control
    /// in state 0 or 8, else `Load p2p(UBound + 1)`) and returns its index.
    pub fn insert(&mut self, value: T) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(Reverse(i)) => {
                debug_assert!(self.slots[i].is_none());
                self.slots[i] = Some(value);
                i
            }
            None => {
                self.slots.push(Some(value));
                self.slots.len() - 1
            }
        }
    }

    /// Empties slot `i`, returning what it held.
    pub fn remove(&mut self, i: usize) -> Option<T> {
        let value = self.slots.get_mut(i)?.take()?;
        self.free.push(Reverse(i));
        self.len -= 1;
        Some(value)
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.slots.get(i)?.as_ref()
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.slots.get_mut(i)?.as_mut()
    }

    pub fn contains(&self, i: usize) -> bool {
        self.get(i).is_some()
    }

    /// Occupied slots.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// VB's `UBound + 1`: how many slots have ever been loaded.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Occupied slots in index order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|v| (i, v)))
    }

    /// Occupied slots in index order, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut T)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.as_mut().map(|v| (i, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table holding `n` entries named after their index.
    fn table_with(n: usize) -> SlotTable<String> {
        let mut t = SlotTable::new();
        for i in 0..n {
            assert_eq!(t.insert(format!("s{i}")), i);
        }
        t
    }

    #[test]
    fn grows_like_load_when_nothing_is_free() {
        let t = table_with(4);
        assert_eq!(t.len(), 4);
        assert_eq!(t.capacity(), 4);
        assert_eq!(t.next_index(), 4);
    }

    #[test]
    fn reuses_the_lowest_free_index_not_the_latest() {
        let mut t = table_with(6);
        t.remove(2);
        t.remove(4);
        t.remove(1);
        // slab would hand back 1 (last freed), then 4, then 2; VB scans from 1 upwards.
        assert_eq!(t.insert("a".into()), 1);
        assert_eq!(t.insert("b".into()), 2);
        assert_eq!(t.insert("c".into()), 4);
        assert_eq!(t.insert("d".into()), 6);
        assert_eq!(t.capacity(), 7);
    }

    #[test]
    fn remove_twice_and_out_of_range_are_harmless() {
        let mut t = table_with(2);
        assert_eq!(t.remove(1).as_deref(), Some("s1"));
        assert_eq!(t.remove(1), None);
        assert_eq!(t.remove(99), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.insert("x".into()), 1);
        assert_eq!(t.next_index(), 2);
    }

    #[test]
    fn iterates_occupied_slots_in_index_order() {
        let mut t = table_with(5);
        t.remove(0);
        t.remove(3);
        let keys: Vec<usize> = t.iter().map(|(i, _)| i).collect();
        assert_eq!(keys, vec![1, 2, 4]);
        for (_, v) in t.iter_mut() {
            v.push('!');
        }
        assert_eq!(t.get(4).map(String::as_str), Some("s4!"));
        assert!(!t.contains(3));
    }
}
