//! The file mutation log: segment files `0000000001.tlog`, `0000000002.tlog`, … in one
//! directory, each a 16-byte header (`TERNLOG1`, sequence number) followed by records
//! (`record.rs`). An in-memory index maps each decree to its latest record.
//!
//! Recovery (at open) reads every segment. An incomplete record or a zero-filled tail at the end
//! of the *last* segment is a torn write: it is cut off (fsync'ed) and reported. A record that
//! fails its checksum is also cut when nothing but zeros follows it in the last segment;
//! anywhere else it is corruption and the log refuses to open, rather than silently dropping
//! records that may have been acknowledged.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tern_core::{Decree, Error, Result};

use super::record::{Decoded, decode_record, encode_record};
use super::{LogEntry, MutationLog, Recovery};
use crate::dir::sync_dir;

const MAGIC: &[u8; 8] = b"TERNLOG1";
const SEGMENT_HEADER: u64 = 16;

/// When appends are fsync'ed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every `append` syncs before returning.
    EveryAppend,
    /// The caller calls `sync` (group commit, see [`GroupCommit`](super::GroupCommit)).
    Explicit,
}

#[derive(Clone, Debug)]
pub struct FileLogConfig {
    /// A segment is closed once it reaches this size.
    pub segment_bytes: u64,
    pub sync: SyncPolicy,
    /// Fsync a full segment before the next one starts, so that only the last segment can lose a
    /// tail in a crash even when `sync` is called rarely (the shared log's private logs).
    pub sync_on_rollover: bool,
    /// Appends are gathered in memory and written to the file once this many bytes are waiting
    /// (and before any sync, rollover or close); 0 writes every append at once. For logs whose
    /// durability comes from elsewhere (the shared log's private logs): one `pwrite` per 64 KiB
    /// instead of one per group. Buffered records are readable, and lost in a crash like any
    /// unsynced append.
    pub write_buffer_bytes: usize,
}

impl Default for FileLogConfig {
    fn default() -> Self {
        FileLogConfig {
            segment_bytes: 64 << 20,
            sync: SyncPolicy::Explicit,
            sync_on_rollover: false,
            write_buffer_bytes: 0,
        }
    }
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    file: File,
    len: u64,
    synced_len: u64,
    max_decree: u64,
}

#[derive(Clone, Copy, Debug)]
struct Loc {
    seq: u64,
    offset: u64,
    len: u32,
}

/// Counters, for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Calls to `sync` that had something to make durable.
    pub syncs: u64,
    /// fsync system calls on segment files and the directory.
    pub fsyncs: u64,
}

#[derive(Debug)]
pub struct FileMutationLog {
    dir: PathBuf,
    config: FileLogConfig,
    segments: Vec<Segment>,
    index: BTreeMap<u64, Loc>,
    dir_dirty: bool,
    /// Bumped whenever `dir_dirty` is set: a [`SyncJob`] clears `dir_dirty` only if the
    /// directory did not change after the job was made.
    dir_changes: u64,
    /// Unique per opened log in this process: a [`SyncJob`] applies only to its own log.
    instance: u64,
    stats: LogStats,
    /// Appended records not written to the file yet (see `FileLogConfig::write_buffer_bytes`):
    /// the tail of the last segment, from offset `len - unwritten.len()`.
    unwritten: Vec<u8>,
}

/// Everything a log had appended when the job was made, to be fsynced on another thread (the
/// caller's thread keeps appending meanwhile): `FileMutationLog::sync_job`, then [`SyncJob::run`]
/// anywhere, then `FileMutationLog::mark_synced` back on the log's owner.
#[derive(Debug)]
pub struct SyncJob {
    instance: u64,
    /// `(seq, length to count as synced, path, a handle to the same file)`.
    files: Vec<(u64, u64, PathBuf, File)>,
    /// The log directory and its change count, if new or removed segments need its fsync.
    dir: Option<(PathBuf, u64)>,
}

impl SyncJob {
    /// Fsyncs the files and the directory. Durable when it returns `Ok`: every record appended
    /// before the job was made (a file's fsync covers all writes made before it).
    pub fn run(&self) -> Result<()> {
        for (_, _, path, file) in &self.files {
            #[cfg(any(test, feature = "testing"))]
            sync_faults::check(path).map_err(io(|| format!("fsync {}", path.display())))?;
            file.sync_data().map_err(io(|| format!("fsync {}", path.display())))?;
        }
        if let Some((dir, _)) = &self.dir {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

/// Test support: an I/O fault in the background fsync of private logs ([`SyncJob::run`]) for
/// the files under chosen directories (per directory, so that tests running in parallel do not
/// see each other's faults).
#[cfg(any(test, feature = "testing"))]
pub mod sync_faults {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static FAILING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    fn failing() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
        FAILING.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sync jobs fail for every file under `dir` until [`clear`].
    pub fn fail_under(dir: &Path) {
        failing().push(dir.to_path_buf());
    }

    pub fn clear(dir: &Path) {
        failing().retain(|d| d != dir);
    }

    pub(super) fn check(path: &Path) -> std::io::Result<()> {
        if failing().iter().any(|d| path.starts_with(d)) {
            return Err(std::io::Error::other("injected fsync fault"));
        }
        Ok(())
    }
}

static INSTANCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Maps an I/O error to one naming what was being done; `context` runs only on error (this sits
/// on the append and fsync paths of every write).
pub(super) fn io(context: impl FnOnce() -> String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::io(context(), e)
}

/// Writes `buf`, the buffered tail of a segment whose logical length is `len`, at its place
/// (`len - buf.len()`) and empties it. On error `buf` is kept, to be written again at the same
/// offset by the next call.
pub(super) fn write_tail(file: &File, path: &Path, len: u64, buf: &mut Vec<u8>) -> Result<()> {
    file.write_all_at(buf, len - buf.len() as u64).map_err(io(|| format!("append to {}", path.display())))?;
    buf.clear();
    Ok(())
}

/// The sequence numbers of the segment files `NNNNNNNNNN<suffix>` in `dir`, ascending.
pub(super) fn segment_seqs(dir: &Path, suffix: &str) -> Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(|| format!("list {}", dir.display())))? {
        let name = entry.map_err(io(|| format!("list {}", dir.display())))?.file_name();
        if let Some(seq) = name.to_string_lossy().strip_suffix(suffix).and_then(|s| s.parse::<u64>().ok()) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Opens segment `path` for recovery (read-write: a torn tail gets cut) and reads all of it.
/// `what` names it in errors.
pub(super) fn read_segment(path: &Path, what: &dyn Fn() -> String) -> Result<(File, Vec<u8>)> {
    let mut file =
        OpenOptions::new().read(true).write(true).open(path).map_err(io(|| format!("open {}", what())))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).map_err(io(|| format!("read {}", what())))?;
    Ok((file, buf))
}

/// Fails unless `buf`, a whole segment, starts with the header of segment `seq` of the format
/// whose magic is `magic`.
pub(super) fn check_header(buf: &[u8], magic: &[u8; 8], seq: u64, what: &dyn Fn() -> String) -> Result<()> {
    if buf.len() < SEGMENT_HEADER as usize || &buf[..8] != magic || buf[8..16] != seq.to_le_bytes() {
        return Err(Error::corruption(format!("{} has no valid header", what())));
    }
    Ok(())
}

/// Writes the header of segment `seq` of the format whose magic is `magic` at the start of
/// `file` (`SEGMENT_HEADER` bytes).
pub(super) fn write_header(file: &File, path: &Path, magic: &[u8; 8], seq: u64) -> Result<()> {
    let mut header = magic.to_vec();
    header.extend_from_slice(&seq.to_le_bytes());
    file.write_all_at(&header, 0).map_err(io(|| format!("write {}", path.display())))
}

/// Creates the file of a new segment (it must not exist yet), readable and writable. `what`
/// names the kind of segment in errors.
pub(super) fn create_segment(path: &Path, what: &str) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io(|| format!("create {what} {}", path.display())))
}

fn segment_name(seq: u64) -> String {
    format!("{seq:010}.tlog")
}

impl FileMutationLog {
    /// Opens (or creates) the log in `dir`, recovering from a crash if needed.
    pub fn open(dir: &Path, config: FileLogConfig) -> Result<(FileMutationLog, Recovery)> {
        fs::create_dir_all(dir).map_err(io(|| format!("create log directory {}", dir.display())))?;
        let mut seqs = segment_seqs(dir, ".tlog")?;
        let mut recovery = Recovery::default();
        // Segments created just before a crash may be empty or lack their header (the rollover
        // was never synced): such trailing segments held nothing durable.
        while let Some(&seq) = seqs.last() {
            let path = dir.join(segment_name(seq));
            let len = fs::metadata(&path).map_err(io(|| format!("stat {}", path.display())))?.len();
            if len >= SEGMENT_HEADER {
                break;
            }
            fs::remove_file(&path).map_err(io(|| format!("remove {}", path.display())))?;
            seqs.pop();
            recovery.truncated_bytes += len;
            recovery.truncation_reason =
                Some(format!("removed {} ({len} bytes, no complete header)", path.display()));
        }
        let mut log = FileMutationLog {
            dir: dir.to_path_buf(),
            config,
            segments: Vec::new(),
            index: BTreeMap::new(),
            dir_dirty: false,
            dir_changes: 0,
            instance: INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            stats: LogStats::default(),
            unwritten: Vec::new(),
        };
        let count = seqs.len();
        for (i, seq) in seqs.into_iter().enumerate() {
            log.recover_segment(seq, i + 1 == count, &mut recovery)?;
        }
        if log.segments.is_empty() {
            log.new_segment(1)?;
            log.sync()?;
        }
        Ok((log, recovery))
    }

    fn recover_segment(&mut self, seq: u64, last: bool, rec: &mut Recovery) -> Result<()> {
        let path = self.dir.join(segment_name(seq));
        let what = || format!("log segment {}", path.display());
        let (file, buf) = read_segment(&path, &what)?;
        check_header(&buf, MAGIC, seq, &what)?;
        let mut seg = Segment { seq, path: path.clone(), file, len: 0, synced_len: 0, max_decree: 0 };
        let mut off = SEGMENT_HEADER as usize;
        let cut: Option<String> = loop {
            if off == buf.len() {
                break None;
            }
            let rest = &buf[off..];
            match decode_record(rest) {
                Ok(Decoded::Record(e, n)) => {
                    self.index.insert(e.decree.0, Loc { seq, offset: off as u64, len: n as u32 });
                    seg.max_decree = seg.max_decree.max(e.decree.0);
                    rec.records += 1;
                    off += n;
                }
                Ok(Decoded::Incomplete { have }) => {
                    break Some(format!("an incomplete record ({have} bytes)"));
                }
                Ok(Decoded::ZeroFill) if rest.iter().all(|&b| b == 0) => {
                    break Some("a zero-filled tail".into());
                }
                Ok(Decoded::ZeroFill) => {
                    return Err(Error::corruption(format!(
                        "{}: zero record length at offset {off} followed by data",
                        what()
                    )));
                }
                Err(e) => {
                    let claimed = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    let after = (8 + claimed).min(rest.len());
                    if rest[after..].iter().all(|&b| b == 0) {
                        break Some(format!("a damaged last record ({e})"));
                    }
                    return Err(Error::corruption(format!(
                        "{} at offset {off}: {e}; records follow it, so this is not a torn write",
                        what()
                    )));
                }
            }
        };
        if let Some(reason) = cut {
            if !last {
                return Err(Error::corruption(format!(
                    "{} ends with {reason}, but it is not the last segment",
                    what()
                )));
            }
            let dropped = (buf.len() - off) as u64;
            seg.file.set_len(off as u64).map_err(io(|| format!("truncate {}", what())))?;
            seg.file.sync_all().map_err(io(|| format!("fsync {}", what())))?;
            rec.truncated_bytes += dropped;
            rec.truncation_reason =
                Some(format!("{} ended with {reason}: cut {dropped} bytes at offset {off}", what()));
        }
        seg.len = off as u64;
        seg.synced_len = seg.len;
        self.segments.push(seg);
        Ok(())
    }

    fn new_segment(&mut self, seq: u64) -> Result<()> {
        self.write_out()?; // the buffer belongs to the segment being closed
        let path = self.dir.join(segment_name(seq));
        let file = create_segment(&path, "log segment")?;
        write_header(&file, &path, MAGIC, seq)?;
        self.segments.push(Segment { seq, path, file, len: SEGMENT_HEADER, synced_len: 0, max_decree: 0 });
        self.set_dir_dirty();
        Ok(())
    }

    fn segment(&self, seq: u64) -> Result<&Segment> {
        self.segments
            .iter()
            .find(|s| s.seq == seq)
            .ok_or_else(|| Error::invariant(format!("log index points to missing segment {seq}")))
    }

    /// [`MutationLog::append`] of entries already encoded (`encode_record`) with their decrees:
    /// the shared log writes the same bytes.
    pub fn append_encoded(&mut self, records: &[(Decree, Vec<u8>)]) -> Result<()> {
        for (decree, rec) in records {
            let active_len = self.segments.last().map(|s| s.len).unwrap_or(0);
            if active_len > SEGMENT_HEADER && active_len + rec.len() as u64 > self.config.segment_bytes {
                if self.config.sync_on_rollover {
                    self.sync()?;
                }
                let next = self.segments.last().map(|s| s.seq + 1).unwrap_or(1);
                self.new_segment(next)?;
            }
            let seg =
                self.segments.last_mut().ok_or_else(|| Error::invariant("log has no active segment"))?;
            if self.config.write_buffer_bytes == 0 {
                seg.file
                    .write_all_at(rec, seg.len)
                    .map_err(io(|| format!("append to {}", seg.path.display())))?;
            } else {
                self.unwritten.extend_from_slice(rec);
            }
            self.index.insert(decree.0, Loc { seq: seg.seq, offset: seg.len, len: rec.len() as u32 });
            seg.len += rec.len() as u64;
            seg.max_decree = seg.max_decree.max(decree.0);
        }
        if self.unwritten.len() >= self.config.write_buffer_bytes {
            self.write_out()?;
        }
        if self.config.sync == SyncPolicy::EveryAppend {
            self.sync()?;
        }
        Ok(())
    }

    pub fn stats(&self) -> LogStats {
        self.stats
    }

    /// Writes the buffered appends to the file (not fsynced; see [`write_tail`]).
    fn write_out(&mut self) -> Result<()> {
        if self.unwritten.is_empty() {
            return Ok(());
        }
        let seg = self.segments.last().ok_or_else(|| Error::invariant("log has no active segment"))?;
        write_tail(&seg.file, &seg.path, seg.len, &mut self.unwritten)
    }

    /// The bytes of a record at `loc`: from the buffer if it is not written yet.
    fn record_bytes(&self, loc: &Loc) -> Result<Vec<u8>> {
        let seg = self.segment(loc.seq)?;
        // Only the last segment has a buffered tail (a new segment writes the buffer out first).
        if self.segments.last().is_some_and(|s| s.seq == loc.seq) {
            let buffered_from = seg.len - self.unwritten.len() as u64;
            if loc.offset >= buffered_from {
                let start = (loc.offset - buffered_from) as usize;
                return Ok(self.unwritten[start..start + loc.len as usize].to_vec());
            }
        }
        let mut buf = vec![0u8; loc.len as usize];
        seg.file
            .read_exact_at(&mut buf, loc.offset)
            .map_err(io(|| format!("read {}", seg.path.display())))?;
        Ok(buf)
    }

    fn set_dir_dirty(&mut self) {
        self.dir_dirty = true;
        self.dir_changes += 1;
    }

    /// Bytes appended but not fsynced yet.
    pub fn unsynced_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len - s.synced_len).sum()
    }

    /// What `sync` would fsync now, as a job another thread can run (see [`SyncJob`]). `None`
    /// when everything is durable already.
    pub fn sync_job(&mut self) -> Result<Option<SyncJob>> {
        self.write_out()?;
        let mut files = Vec::new();
        for s in self.segments.iter().filter(|s| s.len > s.synced_len) {
            let file =
                s.file.try_clone().map_err(io(|| format!("duplicate the handle of {}", s.path.display())))?;
            files.push((s.seq, s.len, s.path.clone(), file));
        }
        let dir = self.dir_dirty.then(|| (self.dir.clone(), self.dir_changes));
        if files.is_empty() && dir.is_none() {
            return Ok(None);
        }
        Ok(Some(SyncJob { instance: self.instance, files, dir }))
    }

    /// Records that `job` (made by this log's `sync_job`) ran successfully. Segments removed
    /// meanwhile are skipped; appends made after the job stay unsynced.
    pub fn mark_synced(&mut self, job: &SyncJob) {
        if job.instance != self.instance {
            return;
        }
        for (seq, len, _, _) in &job.files {
            if let Some(s) = self.segments.iter_mut().find(|s| s.seq == *seq) {
                s.synced_len = s.synced_len.max(*len);
            }
        }
        if let Some((_, changes)) = &job.dir
            && *changes == self.dir_changes
        {
            self.dir_dirty = false;
        }
        self.stats.syncs += 1;
        self.stats.fsyncs += job.files.len() as u64 + u64::from(job.dir.is_some());
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Test support: a power loss. Every segment loses what was not synced, except that the
    /// last one keeps `torn_bytes` more of its unsynced tail (a torn write).
    #[cfg(any(test, feature = "testing"))]
    pub fn simulate_power_loss(mut self, torn_bytes: u64) {
        let last = self.segments.last().map(|s| s.seq);
        for s in &self.segments {
            let written = if Some(s.seq) == last { s.len - self.unwritten.len() as u64 } else { s.len };
            let keep =
                if Some(s.seq) == last { (s.synced_len + torn_bytes).min(written) } else { s.synced_len };
            let _ = s.file.set_len(keep);
        }
        self.unwritten.clear(); // lost with the process: not written out on drop
    }
}

impl Drop for FileMutationLog {
    /// Closing writes out what is buffered (not fsynced): a clean stop leaves complete files.
    /// Nothing depends on it: the entries are durable in the shared log until a sync job has
    /// made them durable here (see `FileLogConfig::write_buffer_bytes`).
    fn drop(&mut self) {
        if let Err(e) = self.write_out() {
            tracing::warn!("closing a log: {e}");
        }
    }
}

impl MutationLog for FileMutationLog {
    fn append(&mut self, entries: &[LogEntry]) -> Result<()> {
        let records =
            entries.iter().map(|e| Ok((e.decree, encode_record(e)?))).collect::<Result<Vec<_>>>()?;
        self.append_encoded(&records)
    }

    fn sync(&mut self) -> Result<()> {
        self.write_out()?;
        let mut did = false;
        for s in &mut self.segments {
            if s.len > s.synced_len {
                s.file.sync_data().map_err(io(|| format!("fsync {}", s.path.display())))?;
                s.synced_len = s.len;
                self.stats.fsyncs += 1;
                did = true;
            }
        }
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
            self.stats.fsyncs += 1;
            did = true;
        }
        if did {
            self.stats.syncs += 1;
        }
        Ok(())
    }

    fn read(&self, from: Decree, max: usize) -> Result<Vec<LogEntry>> {
        let mut out = Vec::new();
        for (&decree, loc) in self.index.range(from.0..).take(max) {
            let buf = self.record_bytes(loc)?;
            // Checked again after it is read back.
            match decode_record(&buf)? {
                Decoded::Record(e, n) if n == buf.len() && e.decree.0 == decree => out.push(e),
                _ => {
                    return Err(Error::corruption(format!(
                        "{} at offset {}: record for decree {decree} does not read back",
                        self.segment(loc.seq)?.path.display(),
                        loc.offset
                    )));
                }
            }
        }
        Ok(out)
    }

    fn decree_range(&self) -> Option<(Decree, Decree)> {
        let first = self.index.keys().next()?;
        let last = self.index.keys().next_back()?;
        Some((Decree(*first), Decree(*last)))
    }

    fn gc_below(&mut self, decree: Decree) -> Result<()> {
        let mut removed = Vec::new();
        while self.segments.len() > 1
            && self.segments[0].max_decree < decree.0
            && self.segments[0].synced_len == self.segments[0].len
        {
            let seg = self.segments.remove(0);
            fs::remove_file(&seg.path).map_err(io(|| format!("remove {}", seg.path.display())))?;
            removed.push(seg.seq);
        }
        if !removed.is_empty() {
            // Decrees below `decree` may survive in later segments (re-appended by a new
            // primary); without the removed ones they could leave a hole, and a reader would
            // take the log for reaching back further than it does. None of them is needed.
            self.index.retain(|d, loc| !removed.contains(&loc.seq) && *d >= decree.0);
            self.set_dir_dirty();
            self.sync()?;
        }
        Ok(())
    }

    fn reset(&mut self) -> Result<()> {
        let next = self.segments.last().map(|s| s.seq + 1).unwrap_or(1);
        self.unwritten.clear(); // its records are being removed with the rest
        for seg in self.segments.drain(..) {
            fs::remove_file(&seg.path).map_err(io(|| format!("remove {}", seg.path.display())))?;
        }
        self.index.clear();
        self.new_segment(next)?;
        self.sync()
    }
}
