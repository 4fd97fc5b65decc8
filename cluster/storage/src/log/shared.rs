//! The shared log: one write-ahead log per replica server for the appends of all its replicas
//! (Pegasus' *plog*), so that one fsync makes a whole group commit durable however many
//! partitions it touched.
//!
//! Every append goes to the replica's private log ([`FileMutationLog`](super::FileMutationLog),
//! which learning and duplication read) *without* an fsync (and written to its file 64 KiB at a
//! time), and to the shared log, which gathers a group's appends and writes and fsyncs them at
//! once. So what is durable is: the private logs up to their last fsync, plus everything in the
//! shared log. Private logs are fsynced when the shared log moves to a new segment; only then are
//! the older shared segments deleted (see `LogWriter`).
//!
//! At start, [`SharedLog::open`] reads every segment back: per partition, the entries appended
//! after its last reset. Re-appending them, in order, after what the partition's private log
//! recovered restores every durable append: the shared log holds a suffix of the append
//! sequence, the private log a prefix, and re-appending a suffix changes no decree's latest
//! record.
//!
//! Files: `0000000001.plog`, … each a 16-byte header (`TERNPLG1`, sequence number) and records
//! `len:u32 LE | crc:u32 LE | payload` with payload `kind:u8 | table:u32 LE | partition:u32 LE |
//! body`; kind 1 = an entry (body: one private-log record, `record.rs`), kind 2 = a reset of that
//! partition's log (no body). A torn tail of the last segment is cut off at open; damage
//! anywhere else is corruption and the log refuses to open.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tern_core::{Error, Gpid, Result};

use super::LogEntry;
use super::file::{check_header, create_segment, io, read_segment, segment_seqs, write_header, write_tail};
use super::record::{Decoded, decode_record};
use crate::dir::sync_dir;

const MAGIC: &[u8; 8] = b"TERNPLG1";
const SEGMENT_HEADER: u64 = 16;
const HEADER: usize = 8;
const KIND_ENTRY: u8 = 1;
const KIND_RESET: u8 = 2;
/// The next segment, being prepared (zero-filled) in the background.
const SPARE: &str = "spare.plog.tmp";
/// The pause after each MiB of a spare segment's zeros (see `start_spare`).
const SPARE_PACE: std::time::Duration = std::time::Duration::from_millis(25);
/// A sanity bound on one record (a private record is at most 64 MiB).
const MAX_PAYLOAD: usize = (64 << 20) + 16;

/// What the shared log held for each partition at open: the entries after its last reset, in
/// append order.
pub type Recovered = BTreeMap<Gpid, Vec<LogEntry>>;

#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    file: File,
    len: u64,
}

#[derive(Debug)]
pub struct SharedLog {
    dir: PathBuf,
    /// Oldest first; the last one takes appends.
    segments: Vec<Segment>,
    synced_len: u64,
    dir_dirty: bool,
    /// Bytes each new segment is filled with zeros up to (0: none).
    preallocate: u64,
    /// The thread preparing the next segment (`spare.plog.tmp`).
    spare: Option<std::thread::JoinHandle<std::io::Result<File>>>,
    /// Records appended since the last `sync`, written to the file by it in one `pwrite`: the
    /// tail of the last segment, from offset `len - unwritten.len()`.
    unwritten: Vec<u8>,
}

/// Appends one record to `buf`.
fn frame_into(buf: &mut Vec<u8>, kind: u8, gpid: Gpid, body: &[u8]) {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER]);
    buf.push(kind);
    buf.extend_from_slice(&gpid.table.0.to_le_bytes());
    buf.extend_from_slice(&gpid.partition.0.to_le_bytes());
    buf.extend_from_slice(body);
    let payload = start + HEADER;
    let len = (buf.len() - payload) as u32;
    let crc = crc32c::crc32c(&buf[payload..]);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..payload].copy_from_slice(&crc.to_le_bytes());
}

impl SharedLog {
    /// Opens (or creates) the shared log in `dir` and returns what it holds per partition.
    pub fn open(dir: &Path, preallocate: u64) -> Result<(SharedLog, Recovered, Option<String>)> {
        fs::create_dir_all(dir).map_err(io(|| format!("create shared log directory {}", dir.display())))?;
        let seqs = segment_seqs(dir, ".plog")?;
        let mut log = SharedLog {
            dir: dir.to_path_buf(),
            segments: Vec::new(),
            synced_len: 0,
            dir_dirty: false,
            preallocate,
            spare: None,
            unwritten: Vec::new(),
        };
        let mut recovered = Recovered::new();
        let mut cut = None;
        let count = seqs.len();
        for (i, seq) in seqs.into_iter().enumerate() {
            if let Some(why) = log.recover_segment(seq, i + 1 == count, &mut recovered)? {
                cut = Some(why);
            }
        }
        match log.segments.last() {
            Some(s) => {
                log.synced_len = s.len;
                log.start_spare();
            }
            None => {
                // A new log: its first segment is zero-filled too (now, unpaced: nothing is
                // written yet), or every group fsync of the first segment would also write the
                // inode and allocate blocks for a growing file.
                let path = log.dir.join(SPARE);
                let spare = (log.preallocate > SEGMENT_HEADER)
                    .then(|| fill_spare(&path, log.preallocate, std::time::Duration::ZERO))
                    .transpose()
                    .map_err(io(|| format!("prepare shared log segment {}", path.display())))?;
                log.start_segment(1, spare)?;
                log.sync()?;
            }
        }
        Ok((log, recovered, cut))
    }

    fn recover_segment(&mut self, seq: u64, last: bool, out: &mut Recovered) -> Result<Option<String>> {
        let path = self.dir.join(format!("{seq:010}.plog"));
        let what = || path.display().to_string();
        let (file, buf) = read_segment(&path, &what)?;
        if buf.len() < SEGMENT_HEADER as usize && last {
            // Created just before a crash, header never synced: it held nothing durable.
            fs::remove_file(&path).map_err(io(|| format!("remove {}", what())))?;
            return Ok(Some(format!("removed {} (no complete header)", what())));
        }
        check_header(&buf, MAGIC, seq, &what)?;
        let mut off = SEGMENT_HEADER as usize;
        let mut torn = None;
        while off < buf.len() {
            match decode_frame(&buf[off..]) {
                Ok(Some((kind, gpid, body, n))) => {
                    match kind {
                        KIND_RESET => {
                            out.insert(gpid, Vec::new());
                        }
                        _ => match decode_record(body)? {
                            Decoded::Record(e, m) if m == body.len() => out.entry(gpid).or_default().push(e),
                            _ => {
                                return Err(Error::corruption(format!(
                                    "{} at offset {off}: a bad entry",
                                    what()
                                )));
                            }
                        },
                    }
                    off += n;
                }
                Ok(None) if buf[off..].iter().all(|&b| b == 0) => break, // preallocated space
                Ok(None) => {
                    torn = Some(format!("an incomplete record at offset {off}"));
                    break;
                }
                Err(e) if last_record(&buf[off..]) => {
                    torn = Some(format!("a damaged last record at offset {off} ({e})"));
                    break;
                }
                Err(e) => return Err(Error::corruption(format!("{} at offset {off}: {e}", what()))),
            }
        }
        if let Some(why) = &torn {
            if !last {
                return Err(Error::corruption(format!(
                    "{} ends with {why}, but it is not the last segment",
                    what()
                )));
            }
            file.set_len(off as u64).map_err(io(|| format!("truncate {}", what())))?;
            file.sync_all().map_err(io(|| format!("fsync {}", what())))?;
        }
        self.segments.push(Segment { seq, path: path.clone(), file, len: off as u64 });
        Ok(torn.map(|why| format!("{} ended with {why}: cut", path.display())))
    }

    fn new_segment(&mut self, seq: u64) -> Result<()> {
        let spare = self.take_spare();
        self.start_segment(seq, spare)
    }

    /// Moves on to segment `seq`: the zero-filled `spare` (in `SPARE`) renamed, or a new file.
    fn start_segment(&mut self, seq: u64, spare: Option<File>) -> Result<()> {
        self.write_out()?; // what is buffered belongs to the segment being closed
        let path = self.dir.join(format!("{seq:010}.plog"));
        let file = match spare {
            Some(file) => {
                let spare = self.dir.join(SPARE);
                fs::rename(&spare, &path)
                    .map_err(io(|| format!("rename {} to {}", spare.display(), path.display())))?;
                file
            }
            None => create_segment(&path, "shared log segment")?,
        };
        write_header(&file, &path, MAGIC, seq)?;
        self.segments.push(Segment { seq, path, file, len: SEGMENT_HEADER });
        self.synced_len = 0;
        self.dir_dirty = true;
        if self.spare.is_none() {
            self.start_spare();
        }
        Ok(())
    }

    /// The spare segment, if its thread has finished it (never waits: without one, the next
    /// segment is a plain file, only slower to fsync).
    fn take_spare(&mut self) -> Option<File> {
        let h = self.spare.take()?;
        if !h.is_finished() {
            self.spare = Some(h);
            return None;
        }
        match h.join() {
            Ok(Ok(file)) => Some(file),
            Ok(Err(e)) => {
                tracing::warn!("preparing a spare shared log segment failed: {e}");
                None
            }
            Err(_) => None,
        }
    }

    /// Prepares the next segment in the background: zeros written (not fallocate'd: unwritten
    /// extents need a journal commit when first written) and fsynced, so that appends overwrite
    /// allocated blocks and each group's fdatasync flushes data only, with no file-size or extent
    /// change to journal.
    fn start_spare(&mut self) {
        if self.preallocate <= SEGMENT_HEADER {
            return;
        }
        let (path, size) = (self.dir.join(SPARE), self.preallocate);
        self.spare = std::thread::Builder::new()
            .name("tern-plog-spare".into())
            .spawn(move || fill_spare(&path, size, SPARE_PACE))
            .ok();
    }

    /// Writes what was appended since the last call to the file (not fsynced; see
    /// [`write_tail`]).
    fn write_out(&mut self) -> Result<()> {
        if self.unwritten.is_empty() {
            return Ok(());
        }
        let seg = self.segments.last().ok_or_else(|| Error::invariant("shared log has no segment"))?;
        write_tail(&seg.file, &seg.path, seg.len, &mut self.unwritten)
    }

    /// Adds framed records to the segment taking appends (written out by the next `sync`).
    fn push(&mut self, frame: impl FnOnce(&mut Vec<u8>)) -> Result<()> {
        let seg = self.segments.last_mut().ok_or_else(|| Error::invariant("shared log has no segment"))?;
        let before = self.unwritten.len();
        frame(&mut self.unwritten);
        seg.len += (self.unwritten.len() - before) as u64;
        Ok(())
    }

    /// Appends one partition's entries, given as encoded private-log records; durable after
    /// the next [`SharedLog::sync`], which writes a whole group's appends in one piece.
    pub fn append<'a>(&mut self, gpid: Gpid, records: impl IntoIterator<Item = &'a [u8]>) -> Result<()> {
        self.push(|buf| {
            for r in records {
                frame_into(buf, KIND_ENTRY, gpid, r);
            }
        })
    }

    /// Records that the partition's log was emptied: its earlier entries are not replayed.
    pub fn append_reset(&mut self, gpid: Gpid) -> Result<()> {
        self.push(|buf| frame_into(buf, KIND_RESET, gpid, &[]))
    }

    /// Makes everything appended durable: one fsync (and one of the directory after a new
    /// segment).
    pub fn sync(&mut self) -> Result<()> {
        self.write_out()?;
        let Some(seg) = self.segments.last() else { return Ok(()) };
        if seg.len > self.synced_len {
            seg.file.sync_data().map_err(io(|| format!("fsync {}", seg.path.display())))?;
            self.synced_len = seg.len;
        }
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes in the segment taking appends.
    pub fn active_bytes(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.len)
    }

    /// Syncs, then starts a new segment. The caller makes the private logs durable before it
    /// removes the older ones ([`SharedLog::detach_old_segments`], [`remove_durably`]).
    pub fn rotate(&mut self) -> Result<()> {
        self.sync()?;
        let next = self.segments.last().map_or(1, |s| s.seq + 1);
        self.new_segment(next)?;
        self.sync()
    }

    /// Hands over every segment but the one taking appends, files still open, for
    /// [`remove_durably`] on another thread: unlinking 16 MiB (and closing the last handle,
    /// which frees the blocks) took ~80 ms on a filesystem mounted with `discard`.
    pub fn detach_old_segments(&mut self) -> Vec<(PathBuf, File)> {
        let old = self.segments.len().saturating_sub(1);
        self.segments.drain(..old).map(|s| (s.path, s.file)).collect()
    }

    /// Test support: a power loss (everything not synced is gone).
    #[cfg(any(test, feature = "testing"))]
    pub fn simulate_power_loss(self) {
        if let Some(s) = self.segments.last() {
            let _ = s.file.set_len(self.synced_len.max(SEGMENT_HEADER));
        }
    }
}

/// Removes shared log segment files of `dir` (already gone is fine) and fsyncs the directory.
pub fn remove_durably(dir: &Path, paths: &[PathBuf]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    for p in paths {
        match fs::remove_file(p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(format!("remove {}", p.display()), e));
            }
            _ => {}
        }
    }
    sync_dir(dir)
}

/// Creates `path` with `size` zero bytes, written and fsynced 1 MiB at a time with `pace` after
/// each MiB. Paced in the background: in one go (16 MiB at every rotation, on every server at
/// once) the burst held up the group fsyncs of the whole machine for up to ~100 ms.
fn fill_spare(path: &Path, size: u64, pace: std::time::Duration) -> std::io::Result<File> {
    let _ = fs::remove_file(path);
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
    let zeros = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < size {
        let n = (size - off).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], off)?;
        file.sync_data()?;
        off += n as u64;
        if !pace.is_zero() {
            std::thread::sleep(pace);
        }
    }
    file.sync_all()?;
    Ok(file)
}

/// Whether `buf` holds one record (per its length field) and nothing after it but zeros.
fn last_record(buf: &[u8]) -> bool {
    if buf.len() < HEADER {
        return true;
    }
    let claimed = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let after = (HEADER + claimed).min(buf.len());
    buf[after..].iter().all(|&b| b == 0)
}

/// A decoded record: kind, partition, body, and its size in the file.
type Frame<'a> = (u8, Gpid, &'a [u8], usize);

/// The record at the start of `buf`: kind, partition, body and total size; `None` if `buf` ends
/// inside it (or is a zero-filled tail).
fn decode_frame(buf: &[u8]) -> Result<Option<Frame<'_>>> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len == 0 {
        if buf.iter().all(|&b| b == 0) {
            return Ok(None); // the zero-filled space after the last record
        }
        return Err(Error::corruption("a zero-length shared log record followed by data"));
    }
    if !(9..=MAX_PAYLOAD).contains(&len) {
        return Err(Error::corruption(format!("shared log record claims {len} bytes")));
    }
    if buf.len() < HEADER + len {
        return Ok(None);
    }
    let payload = &buf[HEADER..HEADER + len];
    if crc32c::crc32c(payload) != crc {
        return Err(Error::corruption("shared log record checksum mismatch"));
    }
    let kind = payload[0];
    if kind != KIND_ENTRY && kind != KIND_RESET {
        return Err(Error::corruption(format!("shared log record of unknown kind {kind}")));
    }
    let table = u32::from_le_bytes([payload[1], payload[2], payload[3], payload[4]]);
    let partition = u32::from_le_bytes([payload[5], payload[6], payload[7], payload[8]]);
    Ok(Some((kind, Gpid::new(table, partition), &payload[9..], HEADER + len)))
}
