//! Compact storage of a versioned table's rows by key (the temporal join's right side).
//!
//! Each key's newest version is one entry in an append-only arena of 1 MiB chunks:
//! `[key_len u32][value_len u32][time i64][flags u8][key][value]`, found through a hash table that
//! holds only the entry's 8-byte address. Older versions of a key (kept only until the watermark
//! passes a newer one) live in a side map. Replaced entries become garbage in the arena, which is
//! compacted when it outgrows the live data. Keys and values are Arrow row-format bytes; key and
//! time columns are not repeated in the value.

use crate::checkpoint::{StateReader, StateWriter};
use crate::state::{read_opt, write_opt, FastMap};
use hashbrown::HashTable;
use sluice_common::SluiceError;
use std::hash::BuildHasher;

const CHUNK: usize = 1 << 20;
const HEADER: usize = 4 + 4 + 8 + 1;
const LIVE: u8 = 1;

/// One version: its time and its value (`None`: the key was deleted at that time).
pub type Version = (i64, Option<Box<[u8]>>);

#[derive(Default)]
struct Arena {
    chunks: Vec<Vec<u8>>,
}

impl Arena {
    fn append(&mut self, key: &[u8], time: i64, value: Option<&[u8]>) -> u64 {
        let value_bytes = value.unwrap_or(&[]);
        let len = HEADER + key.len() + value_bytes.len();
        let fits = self.chunks.last().is_some_and(|c| c.capacity() - c.len() >= len);
        if !fits {
            self.chunks.push(Vec::with_capacity(CHUNK.max(len)));
        }
        let chunk_index = self.chunks.len() - 1;
        let chunk = self.chunks.last_mut().expect("pushed above");
        let pos = chunk.len();
        chunk.extend_from_slice(&(key.len() as u32).to_le_bytes());
        chunk.extend_from_slice(&(value_bytes.len() as u32).to_le_bytes());
        chunk.extend_from_slice(&time.to_le_bytes());
        chunk.push(if value.is_some() { LIVE } else { 0 });
        chunk.extend_from_slice(key);
        chunk.extend_from_slice(value_bytes);
        ((chunk_index as u64) << 32) | pos as u64
    }

    fn entry(&self, at: u64) -> Entry<'_> {
        let chunk = &self.chunks[(at >> 32) as usize];
        let pos = (at & 0xffff_ffff) as usize;
        let key_len = u32::from_le_bytes(chunk[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let value_len = u32::from_le_bytes(chunk[pos + 4..pos + 8].try_into().expect("4 bytes")) as usize;
        let time = i64::from_le_bytes(chunk[pos + 8..pos + 16].try_into().expect("8 bytes"));
        let live = chunk[pos + 16] & LIVE != 0;
        let key = &chunk[pos + HEADER..pos + HEADER + key_len];
        let value = live.then(|| &chunk[pos + HEADER + key_len..pos + HEADER + key_len + value_len]);
        Entry { key, time, value, len: HEADER + key_len + value_len }
    }

    fn bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity()).sum()
    }
}

struct Entry<'a> {
    key: &'a [u8],
    time: i64,
    value: Option<&'a [u8]>,
    len: usize,
}

pub struct VersionStore {
    table: HashTable<u64>,
    arena: Arena,
    older: FastMap<Box<[u8]>, Vec<Version>>,
    hasher: foldhash::fast::FixedState,
    live_bytes: usize,
    garbage_bytes: usize,
}

impl Default for VersionStore {
    fn default() -> Self {
        VersionStore {
            table: HashTable::new(),
            arena: Arena::default(),
            older: FastMap::default(),
            hasher: foldhash::fast::FixedState::default(),
            live_bytes: 0,
            garbage_bytes: 0,
        }
    }
}

impl VersionStore {
    pub fn keys(&self) -> usize {
        self.table.len()
    }

    /// Approximate bytes held: arena chunks, the table and the older versions.
    pub fn bytes(&self) -> usize {
        self.arena.bytes()
            + self.table.capacity() * 9
            + self
                .older
                .iter()
                .map(|(k, v)| {
                    k.len() + 48 + v.iter().map(|(_, r)| 24 + r.as_ref().map_or(0, |r| r.len())).sum::<usize>()
                })
                .sum::<usize>()
    }

    fn find(&self, key: &[u8]) -> Option<u64> {
        let hash = self.hasher.hash_one(key);
        self.table.find(hash, |&at| self.arena.entry(at).key == key).copied()
    }

    /// Adds a version. With `dedup`, a version older than the key's newest is ignored (the
    /// deduplicating view would not have emitted it).
    pub fn insert(&mut self, key: &[u8], time: i64, value: Option<&[u8]>, dedup: bool) {
        let hash = self.hasher.hash_one(key);
        let Some(at) = self.find(key) else {
            let at = self.arena.append(key, time, value);
            self.live_bytes += self.arena.entry(at).len;
            let (arena, hasher) = (&self.arena, &self.hasher);
            self.table.insert_unique(hash, at, |&a| hasher.hash_one(arena.entry(a).key));
            return;
        };
        let newest = self.arena.entry(at);
        if time < newest.time {
            if dedup {
                return;
            }
            let list = self.older.entry(key.into()).or_default();
            match list.binary_search_by_key(&time, |(t, _)| *t) {
                Ok(p) => list[p].1 = value.map(Into::into),
                Err(p) => list.insert(p, (time, value.map(Into::into))),
            }
            return;
        }
        if time > newest.time {
            let previous: Version = (newest.time, newest.value.map(Into::into));
            self.older.entry(key.into()).or_default().push(previous);
        }
        let old_len = newest.len;
        let new_at = self.arena.append(key, time, value);
        self.live_bytes += self.arena.entry(new_at).len;
        self.live_bytes -= old_len;
        self.garbage_bytes += old_len;
        let arena = &self.arena;
        if let Some(slot) = self.table.find_mut(hash, |&a| arena.entry(a).key == key) {
            *slot = new_at;
        }
        self.maybe_compact();
    }

    /// The version valid at `time`: the newest at or before it, with its time (`None` if there is
    /// none or it is a deletion).
    pub fn lookup(&self, key: &[u8], time: i64) -> Option<(i64, &[u8])> {
        let at = self.find(key)?;
        let newest = self.arena.entry(at);
        if newest.time <= time {
            return newest.value.map(|v| (newest.time, v));
        }
        let list = self.older.get(key)?;
        let p = list.partition_point(|(t, _)| *t <= time);
        p.checked_sub(1).and_then(|p| list[p].1.as_deref().map(|v| (list[p].0, v)))
    }

    /// Drops versions no probe row at or after `watermark` can reach: everything older than a key's
    /// newest version at or before the watermark, and keys whose only version is such a deletion.
    pub fn cleanup(&mut self, watermark: i64) {
        let mut drop_keys: Vec<Box<[u8]>> = Vec::new();
        let arena = &self.arena;
        let table = &self.table;
        let hasher = &self.hasher;
        self.older.retain(|key, list| {
            let hash = hasher.hash_one(key.as_ref());
            let newest = table.find(hash, |&a| arena.entry(a).key == key.as_ref()).map(|&a| arena.entry(a));
            match newest {
                Some(n) if n.time <= watermark => {
                    if n.value.is_none() {
                        drop_keys.push(key.clone());
                    }
                    false
                }
                Some(_) => {
                    let p = list.partition_point(|(t, _)| *t <= watermark);
                    if p > 1 {
                        list.drain(..p - 1);
                    }
                    !list.is_empty()
                }
                None => false,
            }
        });
        for key in drop_keys {
            self.remove(&key);
        }
    }

    fn remove(&mut self, key: &[u8]) {
        let hash = self.hasher.hash_one(key);
        let arena = &self.arena;
        if let Ok(slot) = self.table.find_entry(hash, |&a| arena.entry(a).key == key) {
            let (at, _) = slot.remove();
            let len = self.arena.entry(at).len;
            self.live_bytes -= len;
            self.garbage_bytes += len;
        }
    }

    /// The arena's chunks as they are (one copy, no per-key work), the addresses of the newest
    /// versions, then the older versions still reachable.
    pub fn snapshot(&self, w: &mut StateWriter) {
        w.len(self.arena.chunks.len());
        for c in &self.arena.chunks {
            w.bytes(c);
        }
        w.len(self.table.len());
        for &at in self.table.iter() {
            w.u64(at);
        }
        w.len(self.older.len());
        for (key, list) in &self.older {
            w.bytes(key);
            w.len(list.len());
            for (time, value) in list {
                w.i64(*time);
                write_opt(w, value.as_deref());
            }
        }
    }

    pub fn restore(r: &mut StateReader<'_>) -> Result<Self, SluiceError> {
        let mut s = VersionStore::default();
        for _ in 0..r.len()? {
            let bytes = r.bytes()?;
            let mut chunk = Vec::with_capacity(CHUNK.max(bytes.len()));
            chunk.extend_from_slice(bytes);
            s.arena.chunks.push(chunk);
        }
        let corrupt = || SluiceError::internal("checkpoint state is corrupt: a version address is out of range");
        let mut used = 0usize;
        for _ in 0..r.len()? {
            let at = r.u64()?;
            let chunk = s.arena.chunks.get((at >> 32) as usize).ok_or_else(corrupt)?;
            let pos = (at & 0xffff_ffff) as usize;
            if pos + HEADER > chunk.len() {
                return Err(corrupt());
            }
            let key_len = u32::from_le_bytes(chunk[pos..pos + 4].try_into().expect("4 bytes")) as usize;
            let value_len = u32::from_le_bytes(chunk[pos + 4..pos + 8].try_into().expect("4 bytes")) as usize;
            if pos + HEADER + key_len + value_len > chunk.len() {
                return Err(corrupt());
            }
            let (arena, hasher) = (&s.arena, &s.hasher);
            let e = arena.entry(at);
            used += e.len;
            let hash = hasher.hash_one(e.key);
            s.table.insert_unique(hash, at, |&a| hasher.hash_one(arena.entry(a).key));
        }
        s.live_bytes = used;
        s.garbage_bytes = s.arena.chunks.iter().map(Vec::len).sum::<usize>().saturating_sub(used);
        for _ in 0..r.len()? {
            let key: Box<[u8]> = r.bytes()?.into();
            let mut list = Vec::new();
            for _ in 0..r.len()? {
                let time = r.i64()?;
                list.push((time, read_opt(r)?.map(Into::into)));
            }
            s.older.insert(key, list);
        }
        Ok(s)
    }

    /// Rewrites the arena with live entries only once garbage outweighs them.
    fn maybe_compact(&mut self) {
        if self.garbage_bytes < CHUNK || self.garbage_bytes < self.live_bytes {
            return;
        }
        let mut fresh = Arena::default();
        for at in self.table.iter_mut() {
            let e = self.arena.entry(*at);
            *at = fresh.append(e.key, e.time, e.value);
        }
        self.arena = fresh;
        self.garbage_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_the_version_valid_at_a_time() {
        let mut s = VersionStore::default();
        s.insert(b"k", 10, Some(b"a"), false);
        s.insert(b"k", 20, Some(b"b"), false);
        s.insert(b"k", 15, None, false);
        assert_eq!(s.lookup(b"k", 9), None);
        assert_eq!(s.lookup(b"k", 12), Some((10, &b"a"[..])));
        assert_eq!(s.lookup(b"k", 15), None);
        assert_eq!(s.lookup(b"k", 25), Some((20, &b"b"[..])));
        s.cleanup(16);
        assert_eq!(s.lookup(b"k", 15), None);
        assert_eq!(s.lookup(b"k", 12), None, "versions before the one valid at the watermark are gone");
        assert_eq!(s.lookup(b"k", 20), Some((20, &b"b"[..])));
        s.insert(b"d", 5, Some(b"x"), false);
        s.insert(b"d", 6, None, false);
        s.cleanup(100);
        assert_eq!(s.keys(), 1, "a key deleted before the watermark is dropped");
    }

    #[test]
    fn dedup_ignores_older_rows_and_compaction_keeps_the_newest() {
        let mut s = VersionStore::default();
        for i in 0..200_000i64 {
            let key = format!("user-{}", i % 1000);
            s.insert(key.as_bytes(), i, Some(format!("v{i}").as_bytes()), true);
            s.insert(key.as_bytes(), i - 5, Some(b"old"), true);
            if i % 1000 == 999 {
                s.cleanup(i);
            }
        }
        assert_eq!(s.keys(), 1000);
        assert_eq!(s.lookup(b"user-7", i64::MAX), Some((199_007, &b"v199007"[..])));
        assert!(s.bytes() < 8 * CHUNK, "garbage was compacted: {} bytes", s.bytes());
    }

    #[test]
    fn a_snapshot_restores_every_version_and_stays_usable() {
        let mut s = VersionStore::default();
        for i in 0..50_000i64 {
            let key = format!("user-{}", i % 5_000);
            s.insert(key.as_bytes(), i, Some(format!("v{i}").as_bytes()), false);
        }
        s.insert(b"gone", 10, Some(b"x"), false);
        s.insert(b"gone", 20, None, false);
        s.cleanup(49_000);
        let mut w = StateWriter::new();
        s.snapshot(&mut w);
        let bytes = w.finish();
        let mut r = StateReader::new(&bytes);
        let mut back = VersionStore::restore(&mut r).unwrap();
        r.finish().unwrap();
        assert_eq!(back.keys(), s.keys());
        for probe in [48_999, 49_500, i64::MAX] {
            for k in ["user-0", "user-4999", "user-1234"] {
                assert_eq!(back.lookup(k.as_bytes(), probe), s.lookup(k.as_bytes(), probe), "{k} at {probe}");
            }
        }
        assert_eq!(back.lookup(b"gone", 25), None);
        // Inserting after a restore appends to the restored arena.
        back.insert(b"user-1", 60_000, Some(b"new"), false);
        assert_eq!(back.lookup(b"user-1", 60_000), Some((60_000, &b"new"[..])));
        // A corrupt address is an error, not a panic.
        let mut w = StateWriter::new();
        w.len(0);
        w.len(1);
        w.u64(u64::MAX);
        w.len(0);
        let bad = w.finish();
        assert!(VersionStore::restore(&mut StateReader::new(&bad)).is_err());
    }

    #[test]
    fn long_keys_and_values_are_kept_whole() {
        let mut s = VersionStore::default();
        let key = vec![7u8; 70_000];
        let value = vec![9u8; 2 * CHUNK];
        s.insert(&key, 1, Some(&value), false);
        s.insert(b"small", 1, Some(b"v"), false);
        assert_eq!(s.lookup(&key, 5), Some((1, &value[..])));
        assert_eq!(s.lookup(b"small", 5), Some((1, &b"v"[..])));
    }
}
