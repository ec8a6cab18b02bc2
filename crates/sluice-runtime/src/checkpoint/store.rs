//! Where checkpoints live: one folder per checkpoint under the checkpoint directory, written through
//! `object_store` (a local path now; an S3 or GCS store plugs in the same way).
//!
//! ```text
//! <dir>/chk-<id>/op<k>-s<subtask>.state   one per state-bearing operator subtask
//! <dir>/chk-<id>/_manifest.json           written last: its presence marks the checkpoint complete
//! <dir>/_finished                         the id of the final checkpoint of a run that ended
//! ```
//!
//! A state file is `SLST` + format version (u32) + payload + CRC32 of the payload (u32); the manifest
//! repeats each file's length and CRC. Loading verifies both, so a truncated or corrupted file makes
//! the whole checkpoint unusable and [`CheckpointStore::latest`] falls back to the previous one.
//! The manifest is one `put`, which `object_store` makes atomic (temporary file and rename locally).

use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::{json, Value};
use sluice_common::SluiceError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: &[u8; 4] = b"SLST";
const FORMAT: u32 = 1;
const MANIFEST: &str = "_manifest.json";
const FINISHED: &str = "_finished";

/// Why a checkpoint was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// On the interval.
    Periodic,
    /// After every source ended: the state at the end of bounded input.
    Final,
    /// On a stop request (Ctrl-C, SIGTERM): the pipeline exits after it, a later run resumes from it.
    Savepoint,
}

impl CheckpointKind {
    fn as_str(self) -> &'static str {
        match self {
            CheckpointKind::Periodic => "periodic",
            CheckpointKind::Final => "final",
            CheckpointKind::Savepoint => "savepoint",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "periodic" => CheckpointKind::Periodic,
            "final" => CheckpointKind::Final,
            "savepoint" => CheckpointKind::Savepoint,
            _ => return None,
        })
    }
}

/// The identity and shape of the pipeline a checkpoint belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanIdentity {
    /// Hex digest of `operators`.
    pub fingerprint: String,
    /// One line per state-bearing operator, in order; state file `op<k>` belongs to line k.
    pub operators: Vec<String>,
}

impl PlanIdentity {
    pub fn new(operators: Vec<String>) -> Self {
        let mut h = crc32fast::Hasher::new();
        let mut h2 = crc32fast::Hasher::new_with_initial(0x5eed);
        for op in &operators {
            h.update(op.as_bytes());
            h.update(b"\n");
            h2.update(op.as_bytes());
            h2.update(b"\n");
        }
        PlanIdentity { fingerprint: format!("{:08x}{:08x}", h.finalize(), h2.finalize()), operators }
    }

    /// Why a checkpoint of `old` cannot be restored into this plan, if it cannot.
    pub fn incompatibility(&self, old: &PlanIdentity) -> Option<String> {
        if self.fingerprint == old.fingerprint && self.operators == old.operators {
            return None;
        }
        for (i, (new, was)) in self.operators.iter().zip(&old.operators).enumerate() {
            if new != was {
                return Some(format!("stateful operator {i} changed:\n  checkpoint: {was}\n  now:        {new}"));
            }
        }
        if self.operators.len() > old.operators.len() {
            return Some(format!(
                "the plan has {} stateful operators, the checkpoint {}; new: {}",
                self.operators.len(),
                old.operators.len(),
                self.operators[old.operators.len()..].join("; ")
            ));
        }
        Some(format!(
            "the plan has {} stateful operators, the checkpoint {}; gone: {}",
            self.operators.len(),
            old.operators.len(),
            old.operators[self.operators.len()..].join("; ")
        ))
    }
}

/// One piece of state: operator `op` (index into [`PlanIdentity::operators`]), subtask, bytes.
#[derive(Debug, Clone)]
pub struct StatePiece {
    pub op: usize,
    pub subtask: usize,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
struct FileEntry {
    op: usize,
    subtask: usize,
    path: String,
    len: u64,
    crc: u32,
}

/// A complete checkpoint read back and verified.
#[derive(Debug, Clone)]
pub struct Restored {
    pub id: u64,
    pub kind: CheckpointKind,
    pub identity: PlanIdentity,
    /// Where it was read from, for messages.
    pub location: String,
    pub states: BTreeMap<(usize, usize), Vec<u8>>,
}

impl Restored {
    pub fn state(&self, op: usize, subtask: usize) -> Option<&[u8]> {
        self.states.get(&(op, subtask)).map(Vec::as_slice)
    }
}

/// What a written checkpoint took.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    pub bytes: u64,
    pub files: usize,
}

#[derive(Debug, Clone)]
pub struct CheckpointStore {
    store: Arc<dyn ObjectStore>,
    dir: PathBuf,
}

fn store_err(dir: &Path, what: &str, e: impl std::fmt::Display) -> SluiceError {
    SluiceError::external(format!("checkpoint directory '{}': {what}: {e}", dir.display()))
}

fn chk_name(id: u64) -> String {
    format!("chk-{id}")
}

/// The file for `payload`, as parts (the payload is not copied), its length and CRC.
fn frame(payload: Vec<u8>) -> (PutPayload, u64, u32) {
    let crc = crc32fast::hash(&payload);
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&FORMAT.to_le_bytes());
    let len = (header.len() + payload.len() + 4) as u64;
    let parts =
        [bytes::Bytes::from(header), bytes::Bytes::from(payload), bytes::Bytes::from(crc.to_le_bytes().to_vec())];
    (PutPayload::from_iter(parts), len, crc)
}

/// The payload of a state file, after checking magic, version, length and CRC.
fn unframe(file: &[u8], want_len: u64, want_crc: u32) -> Result<Vec<u8>, String> {
    if file.len() as u64 != want_len {
        return Err(format!("{} bytes, the manifest says {want_len} (truncated?)", file.len()));
    }
    if file.len() < 12 || &file[..4] != MAGIC {
        return Err("not a sluice state file".into());
    }
    let version = u32::from_le_bytes(file[4..8].try_into().expect("4 bytes"));
    if version != FORMAT {
        return Err(format!("state format {version}, this sluice reads {FORMAT}"));
    }
    let payload = &file[8..file.len() - 4];
    let crc = u32::from_le_bytes(file[file.len() - 4..].try_into().expect("4 bytes"));
    if crc != want_crc || crc32fast::hash(payload) != crc {
        return Err("checksum mismatch (corrupted)".into());
    }
    Ok(payload.to_vec())
}

impl CheckpointStore {
    /// Opens (creating it if needed) the checkpoint directory `dir`.
    pub fn open(dir: &Path) -> Result<Self, SluiceError> {
        std::fs::create_dir_all(dir).map_err(|e| store_err(dir, "cannot create it", e))?;
        let fs = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| store_err(dir, "cannot open it", e))?
            .with_automatic_cleanup(true);
        Ok(CheckpointStore { store: Arc::new(fs), dir: dir.to_path_buf() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Ids of the `chk-<id>` folders, complete or not, ascending.
    pub async fn ids(&self) -> Result<Vec<u64>, SluiceError> {
        let listing = self.store.list_with_delimiter(None).await.map_err(|e| store_err(&self.dir, "cannot list", e))?;
        let mut ids: Vec<u64> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().and_then(|n| n.strip_prefix("chk-")).and_then(|n| n.parse().ok()))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Writes checkpoint `id`: every state file, then the manifest.
    pub async fn write(
        &self,
        id: u64,
        kind: CheckpointKind,
        identity: &PlanIdentity,
        pieces: Vec<StatePiece>,
    ) -> Result<Written, SluiceError> {
        let mut entries = Vec::with_capacity(pieces.len());
        let mut total = 0u64;
        for p in pieces {
            let name = format!("op{}-s{}.state", p.op, p.subtask);
            let (payload, len, crc) = frame(p.bytes);
            total += len;
            let path = StorePath::from(format!("{}/{name}", chk_name(id)));
            self.store.put(&path, payload).await.map_err(|e| store_err(&self.dir, "cannot write state", e))?;
            entries.push(FileEntry { op: p.op, subtask: p.subtask, path: name, len, crc });
        }
        let manifest = json!({
            "format": FORMAT,
            "checkpoint": id,
            "kind": kind.as_str(),
            "fingerprint": identity.fingerprint,
            "operators": identity.operators,
            "created_ms": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            "files": entries.iter().map(|e| json!({
                "op": e.op, "subtask": e.subtask, "path": e.path, "bytes": e.len, "crc32": e.crc,
            })).collect::<Vec<_>>(),
        });
        let text = serde_json::to_vec_pretty(&manifest).map_err(|e| SluiceError::internal(e.to_string()))?;
        total += text.len() as u64;
        let path = StorePath::from(format!("{}/{MANIFEST}", chk_name(id)));
        self.store
            .put(&path, PutPayload::from(text))
            .await
            .map_err(|e| store_err(&self.dir, "cannot write the manifest", e))?;
        Ok(Written { bytes: total, files: entries.len() + 1 })
    }

    /// Reads and verifies checkpoint `id`.
    pub async fn load(&self, id: u64) -> Result<Restored, String> {
        let folder = chk_name(id);
        let manifest_path = StorePath::from(format!("{folder}/{MANIFEST}"));
        let text = match self.store.get(&manifest_path).await {
            Ok(r) => r.bytes().await.map_err(|e| format!("cannot read the manifest: {e}"))?,
            Err(object_store::Error::NotFound { .. }) => return Err("no manifest (incomplete checkpoint)".into()),
            Err(e) => return Err(format!("cannot read the manifest: {e}")),
        };
        let m: Value = serde_json::from_slice(&text).map_err(|e| format!("unreadable manifest: {e}"))?;
        let field = |k: &str| m.get(k).ok_or_else(|| format!("manifest has no '{k}'"));
        if field("format")?.as_u64() != Some(FORMAT as u64) {
            return Err(format!("manifest format {}, this sluice reads {FORMAT}", field("format")?));
        }
        let kind = field("kind")?.as_str().and_then(CheckpointKind::parse).ok_or("manifest has a bad 'kind'")?;
        let fingerprint = field("fingerprint")?.as_str().ok_or("manifest has a bad 'fingerprint'")?.to_string();
        let operators = field("operators")?
            .as_array()
            .ok_or("manifest has bad 'operators'")?
            .iter()
            .map(|v| v.as_str().map(String::from).ok_or("manifest has bad 'operators'"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut states = BTreeMap::new();
        for f in field("files")?.as_array().ok_or("manifest has bad 'files'")? {
            let num = |k: &str| f.get(k).and_then(Value::as_u64).ok_or_else(|| format!("file entry has no '{k}'"));
            let name = f.get("path").and_then(Value::as_str).ok_or("file entry has no 'path'")?;
            let (op, subtask, len, crc) = (num("op")? as usize, num("subtask")? as usize, num("bytes")?, num("crc32")?);
            let bytes = self
                .store
                .get(&StorePath::from(format!("{folder}/{name}")))
                .await
                .map_err(|e| format!("{name}: {e}"))?
                .bytes()
                .await
                .map_err(|e| format!("{name}: {e}"))?;
            let payload = unframe(&bytes, len, crc as u32).map_err(|e| format!("{name}: {e}"))?;
            states.insert((op, subtask), payload);
        }
        Ok(Restored {
            id,
            kind,
            identity: PlanIdentity { fingerprint, operators },
            location: self.dir.join(folder).display().to_string(),
            states,
        })
    }

    /// The newest complete checkpoint that verifies; newer broken ones are skipped with a warning.
    pub async fn latest(&self) -> Result<Option<Restored>, SluiceError> {
        for id in self.ids().await?.into_iter().rev() {
            match self.load(id).await {
                Ok(r) => return Ok(Some(r)),
                Err(why) => tracing::warn!(
                    checkpoint = %self.dir.join(chk_name(id)).display(),
                    reason = %why,
                    "Skipping a checkpoint that cannot be restored"
                ),
            }
        }
        Ok(None)
    }

    /// Deletes every checkpoint folder older than the newest `retain` complete ones (incomplete
    /// folders older than the newest complete one included).
    pub async fn prune(&self, newest_complete: u64, retain: usize) -> Result<(), SluiceError> {
        let ids = self.ids().await?;
        let mut kept = 0;
        for id in ids.into_iter().rev() {
            if id > newest_complete {
                continue;
            }
            let complete = self.store.head(&StorePath::from(format!("{}/{MANIFEST}", chk_name(id)))).await.is_ok();
            if complete && kept < retain.max(1) {
                kept += 1;
                continue;
            }
            self.delete_folder(id).await?;
        }
        Ok(())
    }

    async fn delete_folder(&self, id: u64) -> Result<(), SluiceError> {
        let prefix = StorePath::from(chk_name(id));
        let mut files = self.store.list(Some(&prefix));
        let mut paths = Vec::new();
        while let Some(meta) = files.next().await {
            paths.push(meta.map_err(|e| store_err(&self.dir, "cannot list", e))?.location);
        }
        // The manifest first: a half-deleted checkpoint must not look complete.
        paths.sort_by_key(|p| p.filename() != Some(MANIFEST));
        for p in paths {
            self.store.delete(&p).await.map_err(|e| store_err(&self.dir, "cannot delete an old checkpoint", e))?;
        }
        let _ = std::fs::remove_dir(self.dir.join(chk_name(id)));
        Ok(())
    }

    /// Records that the run ended after checkpoint `id` (a later run starts afresh).
    pub async fn mark_finished(&self, id: u64) -> Result<(), SluiceError> {
        self.store
            .put(&StorePath::from(FINISHED), PutPayload::from(id.to_string().into_bytes()))
            .await
            .map_err(|e| store_err(&self.dir, "cannot write the finished marker", e))?;
        Ok(())
    }

    /// The final checkpoint of a run that ended, if the last run ended.
    pub async fn finished(&self) -> Option<u64> {
        let r = self.store.get(&StorePath::from(FINISHED)).await.ok()?;
        String::from_utf8(r.bytes().await.ok()?.to_vec()).ok()?.trim().parse().ok()
    }

    /// Opens the checkpoint folder `path` (`.../chk-<id>`) given to `--from-savepoint`.
    pub async fn load_path(path: &Path) -> Result<Restored, SluiceError> {
        let bad = |why: String| SluiceError::user(format!("cannot restore from '{}': {why}", path.display()));
        let id = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("chk-"))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| bad("expected a checkpoint folder named chk-<id>".into()))?;
        if !path.join(MANIFEST).is_file() {
            return Err(bad("no such checkpoint (it has no _manifest.json)".into()));
        }
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let store = CheckpointStore::open(parent)?;
        store.load(id).await.map_err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> PlanIdentity {
        PlanIdentity::new(vec!["Source clicks".into(), "GroupAggregate keys=[user]".into()])
    }

    fn pieces() -> Vec<StatePiece> {
        vec![
            StatePiece { op: 0, subtask: 0, bytes: b"position".to_vec() },
            StatePiece { op: 1, subtask: 0, bytes: vec![7u8; 10_000] },
        ]
    }

    #[tokio::test]
    async fn a_written_checkpoint_reads_back_and_broken_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        store.write(1, CheckpointKind::Periodic, &identity(), pieces()).await.unwrap();
        store.write(2, CheckpointKind::Periodic, &identity(), pieces()).await.unwrap();
        let r = store.latest().await.unwrap().unwrap();
        assert_eq!(r.id, 2);
        assert_eq!(r.state(1, 0).unwrap(), &[7u8; 10_000][..]);
        assert_eq!(r.identity, identity());

        // Truncate a state file of checkpoint 2: it is detected, checkpoint 1 is used.
        let f = dir.path().join("chk-2/op1-s0.state");
        let bytes = std::fs::read(&f).unwrap();
        std::fs::write(&f, &bytes[..bytes.len() - 100]).unwrap();
        let err = store.load(2).await.unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        assert_eq!(store.latest().await.unwrap().unwrap().id, 1);

        // Flip a byte in checkpoint 1 (same length): the checksum catches it.
        let f = dir.path().join("chk-1/op1-s0.state");
        let mut bytes = std::fs::read(&f).unwrap();
        bytes[500] ^= 0x40;
        std::fs::write(&f, &bytes).unwrap();
        let err = store.load(1).await.unwrap_err();
        assert!(err.contains("checksum"), "{err}");
        assert!(store.latest().await.unwrap().is_none());

        // A folder without a manifest (a crash while writing) is incomplete, and a garbled manifest unreadable.
        store.write(3, CheckpointKind::Savepoint, &identity(), pieces()).await.unwrap();
        std::fs::remove_file(dir.path().join("chk-3/_manifest.json")).unwrap();
        assert!(store.load(3).await.unwrap_err().contains("incomplete"));
        store.write(4, CheckpointKind::Savepoint, &identity(), pieces()).await.unwrap();
        std::fs::write(dir.path().join("chk-4/_manifest.json"), b"{\"format\": 1, \"checkp").unwrap();
        assert!(store.load(4).await.unwrap_err().contains("unreadable"));
    }

    #[tokio::test]
    async fn pruning_keeps_the_newest_complete_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        for id in 1..=5 {
            store.write(id, CheckpointKind::Periodic, &identity(), pieces()).await.unwrap();
        }
        store.prune(5, 2).await.unwrap();
        assert_eq!(store.ids().await.unwrap(), vec![4, 5]);
        assert!(!dir.path().join("chk-1").exists());
    }

    #[test]
    fn a_changed_operator_is_named() {
        let old = identity();
        let new = PlanIdentity::new(vec!["Source clicks".into(), "GroupAggregate keys=[url]".into()]);
        let why = new.incompatibility(&old).unwrap();
        assert!(why.contains("keys=[user]") && why.contains("keys=[url]"), "{why}");
        assert!(identity().incompatibility(&old).is_none());
    }
}
