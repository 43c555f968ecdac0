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
        self.slots[probe(&self.slots, hash)] == hash
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

    fn home(&self, hash: u128) -> usize {
        home(&self.slots, hash)
    }

    fn put(&mut self, hash: u128) -> bool {
        let i = probe(&self.slots, hash);
        let new = self.slots[i] == 0;
        self.slots[i] = hash;
        new
    }

    fn grow(&mut self) {
        let old = std::mem::replace(&mut self.slots, table(slots_for((self.len + 1) * 2)));
        for hash in old.into_iter().filter(|&h| h != 0) {
            self.put(hash);
        }
    }
}

/// A count per key hash, for `--give-up-after`'s tally of failed attempts: the same table as
/// [`KeyIndex`], with a `u32` beside each slot (20 bytes a slot), sized once for a number of
/// keys that is never exceeded (a failures file has no more keys than lines), so it never
/// grows and never rehashes its counts.
#[derive(Debug)]
pub struct KeyTally {
    slots: Vec<u128>,
    counts: Vec<u32>,
}

impl KeyTally {
    /// A tally with room for `keys` keys.
    pub fn with_capacity(keys: usize) -> KeyTally {
        let slots = slots_for(keys + 1);
        KeyTally {
            slots: table(slots),
            counts: vec![0; slots],
        }
    }

    /// Adds `n` to the key's count; returns its new total. Panics past the capacity, which a
    /// caller sizes from an upper bound.
    pub fn add(&mut self, hash: u128, n: u32) -> u32 {
        let hash = stored(hash);
        let i = probe(&self.slots, hash);
        self.slots[i] = hash;
        self.counts[i] = self.counts[i].saturating_add(n);
        self.counts[i]
    }
}

/// The slot a hash starts probing at: a multiply-shift of its low half onto the table, which
/// needs no power-of-two size.
fn home(slots: &[u128], hash: u128) -> usize {
    ((u128::from(hash as u64) * slots.len() as u128) >> 64) as usize
}

/// The slot that holds `hash`, or else the empty slot where it would go (linear probing; a
/// table is never full).
fn probe(slots: &[u128], hash: u128) -> usize {
    let mut i = home(slots, hash);
    while slots[i] != hash && slots[i] != 0 {
        i = (i + 1) % slots.len();
    }
    i
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
