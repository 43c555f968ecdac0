//! The index of keys: a set of 128-bit key hashes in one flat table.
//!
//! Open addressing with linear probing in a `Vec<u128>`, sized exactly for a known number of
//! keys (the cache's line count, an estimate of the input's), filled to at most 85%: about 19
//! bytes a key. A general-purpose hash map would add a control byte a slot and round its size
//! up to a power of two, up to twice the memory.

use crate::base::key::Key;

/// The most a table is filled before it grows.
const MAX_LOAD: f64 = 0.85;

/// A set of key hashes. Hash 0 marks an empty slot, so a key hashing to 0 is stored as 1: with
/// 128-bit hashes that merges two keys with probability 2^-127, which is none.
#[derive(Debug, Default)]
pub struct KeyIndex {
    slots: Vec<u128>,
    len: usize,
}

impl KeyIndex {
    /// A set with room for `keys` keys before it has to grow.
    pub fn with_capacity(keys: usize) -> KeyIndex {
        KeyIndex {
            slots: table(slots_for(keys)),
            len: 0,
        }
    }

    /// Whether the key is in the set.
    pub fn contains(&self, key: &Key) -> bool {
        self.contains_hash(key.hash)
    }

    /// Whether a key is in the set, by its hash ([`Key::hash`]).
    pub fn contains_hash(&self, hash: u128) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let hash = stored(hash);
        let mut i = self.home(hash);
        loop {
            match self.slots[i] {
                0 => return false,
                h if h == hash => return true,
                _ => i = (i + 1) % self.slots.len(),
            }
        }
    }

    /// Adds the key; false if it was there already.
    pub fn insert(&mut self, key: &Key) -> bool {
        self.insert_hash(key.hash)
    }

    /// Adds a key by its hash ([`Key::hash`]); false if it was there already.
    pub fn insert_hash(&mut self, hash: u128) -> bool {
        if (self.len + 1) as f64 > self.slots.len() as f64 * MAX_LOAD {
            self.grow();
        }
        let inserted = self.put(stored(hash));
        self.len += usize::from(inserted);
        inserted
    }

    /// Adds keys by their hashes. A large table misses the CPU's caches on nearly every
    /// insert, so each slot is fetched a few inserts ahead, and the waits for memory overlap.
    pub fn insert_hashes(&mut self, hashes: &[u128]) {
        const AHEAD: usize = 16;
        for &hash in hashes.iter().take(AHEAD) {
            self.prefetch(hash);
        }
        for (i, &hash) in hashes.iter().enumerate() {
            if let Some(&ahead) = hashes.get(i + AHEAD) {
                self.prefetch(ahead);
            }
            self.insert_hash(hash);
        }
    }

    /// Asks the CPU to fetch the slot where `hash` would go.
    fn prefetch(&self, hash: u128) {
        #[cfg(target_arch = "x86_64")]
        if let Some(slot) = self.slots.get(self.home(stored(hash))) {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: a prefetch only hints the cache and never faults (the address is in the
            // table anyway); SSE, which it needs, is part of x86_64.
            unsafe { _mm_prefetch::<_MM_HINT_T0>((slot as *const u128).cast()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = hash;
    }

    /// How many keys are in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The slot a hash starts probing at: a multiply-shift of its low half onto the table,
    /// which needs no power-of-two size.
    fn home(&self, hash: u128) -> usize {
        ((u128::from(hash as u64) * self.slots.len() as u128) >> 64) as usize
    }

    fn put(&mut self, hash: u128) -> bool {
        let mut i = self.home(hash);
        loop {
            match self.slots[i] {
                0 => {
                    self.slots[i] = hash;
                    return true;
                }
                h if h == hash => return false,
                _ => i = (i + 1) % self.slots.len(),
            }
        }
    }

    fn grow(&mut self) {
        let old = std::mem::replace(&mut self.slots, table(slots_for((self.len + 1) * 2)));
        for hash in old.into_iter().filter(|&h| h != 0) {
            self.put(hash);
        }
    }
}

/// A table of empty slots. Each insert lands on a random page of it, and a big table on 4 KiB
/// pages misses the TLB nearly every time (dearer still in a VM, where a miss walks two page
/// tables); with transparent huge pages in `madvise` mode (a common default) the kernel backs
/// it with 2 MiB pages only if asked. Fresh zeroed memory is not touched before that, so the
/// pages are huge from their first fault. The advice changes no contents: at worst it is
/// ignored.
fn table(slots: usize) -> Vec<u128> {
    let table = vec![0; slots];
    const HUGE: usize = 2 << 20;
    let start = table.as_ptr() as usize;
    let end = start + std::mem::size_of_val(&table[..]);
    let (from, to) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
    if to > from {
        // SAFETY: the range lies within the table's own allocation, and MADV_HUGEPAGE only
        // changes how the kernel backs it, never what it holds.
        unsafe { libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE) };
    }
    table
}

fn slots_for(keys: usize) -> usize {
    ((keys as f64 / MAX_LOAD).ceil() as usize).max(16)
}

fn stored(hash: u128) -> u128 {
    hash.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn insert_contains_and_grow() {
        let mut index = KeyIndex::default();
        let keys: Vec<Key> = (0..10_000).map(|i| Key::new(Value::from(i))).collect();
        for key in &keys {
            assert!(index.insert(key));
        }
        for key in &keys {
            assert!(!index.insert(key), "inserted twice");
            assert!(index.contains(key));
        }
        assert_eq!(index.len(), 10_000);
        assert!(!index.contains(&Key::new(Value::from("0"))));
    }

    #[test]
    fn exact_capacity_does_not_grow() {
        let mut index = KeyIndex::with_capacity(1000);
        let slots = index.slots.len();
        for i in 0..1000 {
            index.insert(&Key::new(Value::from(i)));
        }
        assert_eq!(index.slots.len(), slots);
        assert!(slots * 16 <= 1000 * 19 + 16 * 16);
    }

    #[test]
    fn hash_zero_is_kept() {
        let mut index = KeyIndex::default();
        let zero = Key {
            value: Value::Null,
            text: "null".into(),
            hash: 0,
        };
        assert!(index.insert(&zero));
        assert!(index.contains(&zero));
    }
}
