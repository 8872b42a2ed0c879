//! The one narrow interface all file access goes through, so tests can inject faults.
//!
//! [`FileBackend`] is the real thing (positional I/O through `std::os::unix::fs::FileExt`);
//! [`FaultyBackend`] wraps it and can make writes short or fail, make fsync, renames and file
//! removals fail, and simulate a machine crash that loses everything not fsynced
//! ([`FaultyBackend::crash`]).
//!
//! # Crash model of [`FaultyBackend`]
//!
//! A real crash (power loss, kernel panic) keeps what reached the disk, and the only writes
//! guaranteed to have reached it are the fsynced ones. So the fault backend tracks, next to the
//! live files (which it writes through to the real file system at once), what is *durable*:
//!
//! - **File contents**, per file (an "inode": it follows the file through renames and is shared
//!   by every handle to it): the content as of the last successful [`StorageFile::sync`] of any
//!   handle to it. `write_at` and `set_len` after that are volatile. A file the backend did not
//!   create counts as durable as it is on disk until the backend first changes it; a file it
//!   created starts with an empty durable content. The durable bytes a volatile write
//!   overwrites or a `set_len` cuts off are saved (4 KiB pages, once per page until the next
//!   fsync), so tracking costs memory only for what was overwritten, not for appends.
//! - **Directory entries**, per directory: creating a file, renaming one (either side of the
//!   rename) or removing one is durable only after [`Backend::sync_dir`] of that directory.
//!   Until then the backend keeps the directory's entries as of its last sync (and, for a file
//!   unlinked by a removal or a rename over it, the file's durable bytes in memory, since the
//!   real file is gone). Files written into the directory by someone else (a test's `std::fs`)
//!   are taken as durable.
//!
//! [`FaultyBackend::crash`] then makes the process "die": every handle and the backend itself
//! (and its clones) fail from then on, and the files on disk are rewritten to hold exactly the
//! durable state: dirty files are cut back to their durable length and their overwritten pages
//! restored; names created since the last directory sync disappear, renames are undone, removed
//! files come back. [`FaultyBackend::crash_with_seed`] does the same but lets a random prefix of
//! each file's unsynced tail (the bytes past its durable length) survive too, as the page cache
//! may have written some of it back before the crash; the prefixes are drawn from the seed, so
//! one seed gives one crash image. Overwrites of durable bytes are always undone. Tests then
//! "reboot" by opening the directory with a fresh backend ([`FileBackend`] or a new
//! [`FaultyBackend`]).
//!
//! Simplifications, on purpose:
//!
//! - Directories themselves are durable at once: `create_dir_all`, `remove_dir_all` and the
//!   rename of a directory are never undone (the files inside them follow the rules above).
//! - Paths are keys as spelled (after lexical normalization: `a//b`, `a/./b` are `a/b`): use
//!   one spelling per file, as the crate does (`dir.join(name)`).
//! - The crash never modifies a file in place: a file whose content changes is rewritten as a
//!   copy renamed over it. Memory maps of sealed files (made from [`StorageFile::std_file`],
//!   which bypasses the backend) therefore keep seeing the live, pre-crash bytes, and a crash
//!   can never turn a read of a map into SIGBUS. The backend does not track maps otherwise.
//!
//! The older [`Faults::crash_after_bytes`] is a different, weaker model (torn writes in order:
//! a prefix of *all* writes persists, fsynced or not); it cannot catch a missing fsync, and is
//! kept for the tests that need a torn file at an exact byte.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::UNIX_EPOCH;

/// One open file. All positions are byte offsets from the start of the file.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `pos`; returns how many were read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Writes up to `buf.len()` bytes at `pos`; may write fewer (a short write).
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize>;
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Truncates or extends (with zeros) to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the content durable (fdatasync).
    fn sync(&self) -> io::Result<()>;
    /// The underlying OS file, when there is one, so sealed files can be memory-mapped.
    fn std_file(&self) -> Option<&File>;

    /// Last modification time, in milliseconds since the Unix epoch (Java's
    /// `File.lastModified`: time retention falls back to it for a segment without timestamps).
    /// The default asks the OS file; a file without one answers `Unsupported`.
    fn modified_ms(&self) -> io::Result<i64> {
        let Some(f) = self.std_file() else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "no OS file to take a modification time from",
            ));
        };
        let modified = f.metadata()?.modified()?;
        // A clock before 1970 gives a negative time, as Java's would.
        Ok(match modified.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        })
    }

    /// Reads exactly `buf.len()` bytes at `pos`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, pos) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes all of `buf` at `pos`, looping over short writes.
    fn write_all_at(&self, mut buf: &[u8], mut pos: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_at(buf, pos) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    buf = &buf[n..];
                    pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// File system operations. Implementations must be cheap to share (`Arc<dyn Backend>`).
pub trait Backend: Send + Sync + fmt::Debug {
    /// Opens `path` for reading and writing; with `create`, creates it if missing.
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Removes one file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Atomically renames `from` to `to` (replacing `to`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Names of the entries of a directory (not full paths), in no particular order.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Whether `path` is a directory.
    fn is_dir(&self, path: &Path) -> io::Result<bool>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Makes a directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
}

/// The real backend: the local file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileBackend;

#[derive(Debug)]
struct OsFile(File);

impl StorageFile for OsFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.0.read_at(buf, pos)
    }
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize> {
        self.0.write_at(buf, pos)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn std_file(&self) -> Option<&File> {
        Some(&self.0)
    }
}

impl Backend for FileBackend {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(Arc::new(OsFile(f)))
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            // Names that are not UTF-8 cannot be ours (we only create ASCII names): skip them.
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        match fs::metadata(path) {
            Ok(m) => Ok(m.is_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
}

/// What a [`FaultyBackend`] does wrong. All off by default.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Every `write_at` writes at most half of what it was given (at least one byte). Correct
    /// callers loop and never notice.
    pub short_writes: bool,
    /// Every fsync (file or directory) fails, and makes nothing durable.
    pub fail_sync: bool,
    /// Once this many bytes have been written in total, writes fail with an I/O error (a write
    /// that crosses the limit writes its prefix and reports a short write first).
    pub fail_writes_after_bytes: Option<u64>,
    /// Once this many bytes have been written in total, writes still report success but only the
    /// prefix up to the limit reaches the file, and `set_len` does nothing: a torn-write crash
    /// that keeps an in-order prefix of *all* writes, fsynced or not. Reopen with a fresh backend
    /// to "reboot". It cannot catch a missing fsync; [`FaultyBackend::crash`] can. Kept for tests
    /// that need a file torn at an exact byte.
    pub crash_after_bytes: Option<u64>,
    /// Every rename fails (nothing is renamed).
    pub fail_renames: bool,
    /// Every file removal fails (nothing is removed). Directory removal is not affected.
    pub fail_removes: bool,
}

/// Granularity at which durable bytes are saved before a volatile write overwrites them (the
/// page cache's, so the bookkeeping matches what a kernel would hold dirty).
const PAGE_BYTES: u64 = 4096;

/// A file's identity in the crash model: stable across renames, shared by all its handles.
type InodeId = u64;

/// What a crash would leave of one file's content.
#[derive(Debug)]
enum Content {
    /// Nothing changed since the last fsync (or since the backend first saw the file): the file
    /// on disk is its durable content.
    Clean,
    /// Written or resized since the last fsync.
    Dirty {
        /// The length at the last fsync.
        durable_len: u64,
        /// By page number, the durable bytes (those below `durable_len`) of every page that a
        /// write or `set_len` changed since the last fsync.
        saved: BTreeMap<u64, Vec<u8>>,
    },
    /// No name on disk holds the file any more, but a removal or rename that is not durable yet
    /// took its last name: its durable content, kept because the real file is gone.
    Unlinked(Vec<u8>),
}

#[derive(Debug, Default)]
struct FaultState {
    faults: Faults,
    bytes_written: u64,
    /// Set by [`FaultyBackend::crash`]: every operation fails from then on.
    crashed: bool,
    next_inode: InodeId,
    /// Content durability of every file the backend has seen (and still may need).
    inodes: BTreeMap<InodeId, Content>,
    /// The files that exist now, by (normalized) path.
    live: BTreeMap<PathBuf, InodeId>,
    /// For every directory whose entries changed since its last `sync_dir`: its durable
    /// entries (regular files only). A directory not listed here is durable as it is.
    dirty_dirs: BTreeMap<PathBuf, BTreeMap<OsString, InodeId>>,
}

fn crashed_error() -> io::Error {
    io::Error::other("injected crash: the FaultyBackend is dead; reopen with a fresh backend")
}

/// Lexical normalization, so `a/./b` and `a//b` are the same key as `a/b`.
fn key(path: &Path) -> PathBuf {
    path.components().collect()
}

/// The directory holding `key`, if it has one the model can track.
fn parent_dir(key: &Path) -> Option<&Path> {
    key.parent().filter(|p| !p.as_os_str().is_empty())
}

/// Reads up to `buf.len()` bytes at `pos`; what lies past the end of the file stays as it is.
fn read_up_to(file: &dyn StorageFile, buf: &mut [u8], pos: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], pos + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl FaultState {
    fn check_alive(&self) -> io::Result<()> {
        if self.crashed {
            return Err(crashed_error());
        }
        Ok(())
    }

    fn new_inode(&mut self, content: Content) -> InodeId {
        let id = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(id, content);
        id
    }

    /// The inode of the existing file at `key`, registering it (as durable as it is) if the
    /// backend has not seen it yet.
    fn inode_at(&mut self, key: &Path) -> InodeId {
        if let Some(&id) = self.live.get(key) {
            return id;
        }
        let id = self.new_inode(Content::Clean);
        self.live.insert(key.to_path_buf(), id);
        id
    }

    /// Before an entry of `dir` changes: remembers its entries as they are, if they are durable
    /// now (the directory was synced since its last change, or never changed).
    fn touch_dir(&mut self, dir: &Path) -> io::Result<()> {
        if self.dirty_dirs.contains_key(dir) {
            return Ok(());
        }
        let mut names = Vec::new();
        match fs::read_dir(dir) {
            Ok(entries) => {
                for e in entries {
                    let e = e?;
                    if e.file_type()?.is_file() {
                        names.push(e.file_name());
                    }
                }
            }
            // The operation about to run fails too.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Sorted, so inode ids (and with them the seeded crash) do not depend on the order the
        // file system lists entries in.
        names.sort();
        let mut durable = BTreeMap::new();
        for name in names {
            let id = self.inode_at(&dir.join(&name));
            durable.insert(name, id);
        }
        self.dirty_dirs.insert(dir.to_path_buf(), durable);
        Ok(())
    }

    fn touch_parent(&mut self, key: &Path) -> io::Result<()> {
        match parent_dir(key) {
            Some(dir) => self.touch_dir(dir),
            None => Ok(()),
        }
    }

    /// Whether a directory entry that a crash would bring back names `id`.
    fn durably_named(&self, id: InodeId) -> bool {
        self.dirty_dirs
            .values()
            .any(|entries| entries.values().any(|&i| i == id))
    }

    /// The durable content of the live file at `key`.
    fn durable_bytes(&self, key: &Path, id: InodeId) -> io::Result<Vec<u8>> {
        match self.inodes.get(&id) {
            Some(Content::Dirty { durable_len, saved }) => {
                let mut bytes = fs::read(key)?;
                bytes.resize(usize::try_from(*durable_len).map_err(io::Error::other)?, 0);
                for (&page, b) in saved {
                    let start = usize::try_from(page * PAGE_BYTES).map_err(io::Error::other)?;
                    bytes[start..start + b.len()].copy_from_slice(b);
                }
                Ok(bytes)
            }
            Some(Content::Unlinked(bytes)) => Ok(bytes.clone()),
            Some(Content::Clean) | None => fs::read(key),
        }
    }

    /// Before the live file at `key` loses its name (removal, or a rename over it): its durable
    /// content, if a crash could bring the name back.
    fn capture_before_unlink(&self, key: &Path) -> io::Result<Option<Vec<u8>>> {
        match self.live.get(key) {
            Some(&id) if self.durably_named(id) => Ok(Some(self.durable_bytes(key, id)?)),
            _ => Ok(None),
        }
    }

    /// After the file at `key` lost its name: keeps what [`Self::capture_before_unlink`] took,
    /// or forgets the file (no crash can bring it back).
    fn forget_name(&mut self, key: &Path, captured: Option<Vec<u8>>) {
        if let Some(id) = self.live.remove(key) {
            match captured {
                Some(bytes) => {
                    self.inodes.insert(id, Content::Unlinked(bytes));
                }
                None => {
                    self.inodes.remove(&id);
                }
            }
        }
    }

    /// Drops the removed files that no durable entry names any more.
    fn forget_unreachable(&mut self) {
        let named: std::collections::BTreeSet<InodeId> = self
            .dirty_dirs
            .values()
            .flat_map(|entries| entries.values().copied())
            .collect();
        self.inodes
            .retain(|id, c| !matches!(c, Content::Unlinked(_)) || named.contains(id));
    }

    /// Before `file` (inode `id`) changes in `[from, to)`: marks it dirty, remembering its
    /// durable length, and saves the durable bytes of the pages in that range not saved yet.
    fn before_change(
        &mut self,
        id: InodeId,
        file: &dyn StorageFile,
        from: u64,
        to: u64,
    ) -> io::Result<()> {
        let Some(content) = self.inodes.get_mut(&id) else {
            // A removed file no crash can bring back: nothing to remember.
            return Ok(());
        };
        if let Content::Clean = content {
            *content = Content::Dirty {
                durable_len: file.len()?,
                saved: BTreeMap::new(),
            };
        }
        // An unlinked file's durable content is already in memory.
        let Content::Dirty { durable_len, saved } = content else {
            return Ok(());
        };
        let end = to.min(*durable_len);
        if from >= end {
            return Ok(());
        }
        for page in from / PAGE_BYTES..=(end - 1) / PAGE_BYTES {
            if saved.contains_key(&page) {
                continue;
            }
            let start = page * PAGE_BYTES;
            let len = (start + PAGE_BYTES).min(*durable_len) - start;
            let mut bytes = vec![0; usize::try_from(len).map_err(io::Error::other)?];
            read_up_to(file, &mut bytes, start)?;
            saved.insert(page, bytes);
        }
        Ok(())
    }

    /// After a successful fsync of `file` (inode `id`): its content is durable as it is now.
    fn after_sync(&mut self, id: InodeId, file: &dyn StorageFile) -> io::Result<()> {
        match self.inodes.get_mut(&id) {
            Some(c @ Content::Dirty { .. }) => *c = Content::Clean,
            Some(Content::Unlinked(bytes)) => {
                let len = usize::try_from(file.len()?).map_err(io::Error::other)?;
                let mut now = vec![0; len];
                read_up_to(file, &mut now, 0)?;
                *bytes = now;
            }
            Some(Content::Clean) | None => {}
        }
        Ok(())
    }

    /// A directory was renamed: the files under it keep their state under the new path.
    fn rekey_dir(&mut self, from: &Path, to: &Path) {
        let moved = |p: &Path| p.strip_prefix(from).ok().map(|rest| to.join(rest));
        let live = std::mem::take(&mut self.live);
        self.live = live
            .into_iter()
            .map(|(p, id)| (moved(&p).unwrap_or(p), id))
            .collect();
        let dirs = std::mem::take(&mut self.dirty_dirs);
        self.dirty_dirs = dirs
            .into_iter()
            .map(|(p, entries)| (moved(&p).unwrap_or(p), entries))
            .collect();
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a few lines, seedable, and good enough to pick how
/// much of each unsynced tail a crash keeps. Inline so one seed gives one crash image without a
/// random-number crate or global state.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// How many of `tail` unsynced bytes survive: none or all a quarter of the time each (the
    /// edges are where bugs hide), otherwise a uniform cut.
    fn kept(&mut self, tail: u64) -> u64 {
        if tail == 0 {
            return 0;
        }
        match self.next() % 4 {
            0 => 0,
            1 => tail,
            _ => self.next() % (tail + 1),
        }
    }
}

/// A [`FileBackend`] that injects [`Faults`] and can simulate a crash that loses what was not
/// fsynced (see the module docs for the model). Clones share their fault settings, counters and
/// crash state.
#[derive(Debug, Clone, Default)]
pub struct FaultyBackend {
    inner: FileBackend,
    state: Arc<Mutex<FaultState>>,
}

impl FaultyBackend {
    /// A backend with no faults configured.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the fault settings (the byte counter keeps running).
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.state).faults = faults;
    }

    /// Total bytes that reached files through this backend.
    pub fn bytes_written(&self) -> u64 {
        lock(&self.state).bytes_written
    }

    /// The machine crashes: from now on every operation of this backend (and its clones) and of
    /// every file handle it opened fails, and the files on disk are rewritten to hold exactly
    /// what was durable (module docs: file contents as of their last fsync, directory entries as
    /// of their directory's last fsync). "Reboot" by opening the directories with a fresh
    /// backend. Errors if the backend already crashed, or if rewriting the files failed.
    pub fn crash(&self) -> io::Result<()> {
        self.crash_inner(None)
    }

    /// Like [`FaultyBackend::crash`], but a prefix of each file's unsynced tail (the bytes past
    /// its durable length) may survive, as the page cache may have written some of it back.
    /// How much is drawn from `seed`: the same seed and the same operations give the same image.
    pub fn crash_with_seed(&self, seed: u64) -> io::Result<()> {
        self.crash_inner(Some(SplitMix64(seed)))
    }

    fn crash_inner(&self, mut rng: Option<SplitMix64>) -> io::Result<()> {
        let mut guard = lock(&self.state);
        guard.check_alive()?;
        // Dead from here on, even if rewriting the files fails below; the model is not needed
        // any more, so it leaves the shared state.
        let dead = FaultState {
            faults: guard.faults.clone(),
            bytes_written: guard.bytes_written,
            crashed: true,
            ..FaultState::default()
        };
        let st = std::mem::replace(&mut *guard, dead);
        drop(guard);

        // 1. Contents. By inode id, so the random draws follow the order of the operations.
        let mut by_inode: Vec<(InodeId, &PathBuf)> =
            st.live.iter().map(|(p, &id)| (id, p)).collect();
        by_inode.sort();
        for &(id, path) in &by_inode {
            if let Some(Content::Dirty { durable_len, saved }) = st.inodes.get(&id) {
                let len_now = match fs::metadata(path) {
                    Ok(m) => m.len(),
                    // Removed behind the backend's back: nothing to roll back.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                let extra = rng
                    .as_mut()
                    .map_or(0, |r| r.kept(len_now.saturating_sub(*durable_len)));
                rewrite(path, id, durable_len + extra, saved)?;
            }
        }

        // 2. Directory entries. A live name the crash undoes is moved aside if its file has a
        // durable name somewhere (a rename to undo), else removed (a creation to undo).
        let mut wanted = std::collections::BTreeSet::new();
        for entries in st.dirty_dirs.values() {
            wanted.extend(entries.values().copied());
        }
        let mut staged: BTreeMap<InodeId, PathBuf> = BTreeMap::new();
        let mut in_place: BTreeMap<InodeId, PathBuf> = BTreeMap::new();
        for &(id, path) in &by_inode {
            let durable = parent_dir(path).and_then(|dir| st.dirty_dirs.get(dir));
            let stays = match (durable, path.file_name()) {
                (Some(entries), Some(name)) => entries.get(name) == Some(&id),
                _ => true,
            };
            if stays {
                in_place.insert(id, path.clone());
            } else if wanted.contains(&id) {
                let aside = sibling(path, &format!("crash-staged-{id}"));
                fs::rename(path, &aside)?;
                staged.insert(id, aside);
            } else {
                match fs::remove_file(path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        // Then every durable name gets its file back.
        for (dir, entries) in &st.dirty_dirs {
            if !dir.is_dir() {
                continue;
            }
            for (name, &id) in entries {
                let target = dir.join(name);
                if in_place.get(&id) == Some(&target) {
                    continue;
                }
                if let Some(aside) = staged.remove(&id) {
                    fs::rename(&aside, &target)?;
                    in_place.entry(id).or_insert(target);
                } else if let Some(source) = in_place.get(&id) {
                    // A second durable name for one file (a rename whose two directories were
                    // not both synced): a copy is as good as a link for a test.
                    fs::copy(source, &target)?;
                } else if let Some(Content::Unlinked(bytes)) = st.inodes.get(&id) {
                    fs::write(&target, bytes)?;
                    in_place.insert(id, target);
                }
            }
        }
        for aside in staged.values() {
            fs::remove_file(aside)?;
        }
        Ok(())
    }
}

/// `path`'s directory, with a hidden name derived from `path`'s and `tag`.
fn sibling(path: &Path, tag: &str) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".faulty-");
    name.push(tag);
    path.with_file_name(name)
}

/// Replaces `path` by a copy cut to `len` bytes with the `saved` durable pages written back.
/// A copy renamed over it rather than an edit in place, so memory maps of the old file keep
/// reading what they read (a map of a file truncated under it faults).
fn rewrite(path: &Path, id: InodeId, len: u64, saved: &BTreeMap<u64, Vec<u8>>) -> io::Result<()> {
    let tmp = sibling(path, &format!("crash-rewrite-{id}"));
    fs::copy(path, &tmp)?;
    let f = OpenOptions::new().write(true).open(&tmp)?;
    f.set_len(len)?;
    for (&page, bytes) in saved {
        f.write_all_at(bytes, page * PAGE_BYTES)?;
    }
    drop(f);
    fs::rename(&tmp, path)
}

// A poisoned fault-state mutex only means a test thread panicked; the state is still usable.
fn lock(m: &Mutex<FaultState>) -> MutexGuard<'_, FaultState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
struct FaultyFile {
    inner: Arc<dyn StorageFile>,
    state: Arc<Mutex<FaultState>>,
    inode: InodeId,
}

impl StorageFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        lock(&self.state).check_alive()?;
        self.inner.read_at(buf, pos)
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize> {
        // Held across the write, so the durable bytes saved are the ones it overwrites.
        let mut st = lock(&self.state);
        st.check_alive()?;
        let mut n = buf.len();
        if st.faults.short_writes && n > 1 {
            n /= 2;
        }
        if let Some(limit) = st.faults.fail_writes_after_bytes {
            let left = limit.saturating_sub(st.bytes_written);
            if left == 0 {
                return Err(io::Error::other("injected write failure"));
            }
            n = n.min(usize::try_from(left).unwrap_or(usize::MAX));
        }
        if let Some(limit) = st.faults.crash_after_bytes {
            let left =
                usize::try_from(limit.saturating_sub(st.bytes_written)).unwrap_or(usize::MAX);
            let persisted = n.min(left);
            if persisted > 0 {
                st.before_change(self.inode, &*self.inner, pos, pos + persisted as u64)?;
                self.inner.write_all_at(&buf[..persisted], pos)?;
                st.bytes_written += persisted as u64;
            }
            // The caller is told everything was written: the loss shows only after the "reboot".
            return Ok(n);
        }
        st.before_change(self.inode, &*self.inner, pos, pos + n as u64)?;
        let written = self.inner.write_at(&buf[..n], pos)?;
        st.bytes_written += written as u64;
        Ok(written)
    }

    fn len(&self) -> io::Result<u64> {
        lock(&self.state).check_alive()?;
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = lock(&self.state);
        st.check_alive()?;
        if let Some(limit) = st.faults.crash_after_bytes {
            if st.bytes_written >= limit {
                return Ok(());
            }
        }
        // Growing only marks the file dirty; shrinking also saves the bytes it cuts off.
        st.before_change(self.inode, &*self.inner, len, u64::MAX)?;
        self.inner.set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        // Held across the fsync, so no write can slip in between it and marking the file clean.
        let mut st = lock(&self.state);
        st.check_alive()?;
        if st.faults.fail_sync {
            return Err(io::Error::other("injected fsync failure"));
        }
        self.inner.sync()?;
        st.after_sync(self.inode, &*self.inner)
    }

    /// The live file, even after a crash: maps see the pre-crash bytes (see the module docs).
    fn std_file(&self) -> Option<&File> {
        self.inner.std_file()
    }
}

impl Backend for FaultyBackend {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let mut st = lock(&self.state);
        st.check_alive()?;
        let k = key(path);
        let existed = path.try_exists()?;
        if create && !existed {
            st.touch_parent(&k)?;
        }
        let inner = self.inner.open(path, create)?;
        let inode = if existed {
            st.inode_at(&k)
        } else {
            // Created now: nothing of it is durable yet, not even its name.
            let id = st.new_inode(Content::Dirty {
                durable_len: 0,
                saved: BTreeMap::new(),
            });
            st.live.insert(k, id);
            id
        };
        Ok(Arc::new(FaultyFile {
            inner,
            state: Arc::clone(&self.state),
            inode,
        }))
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        lock(&self.state).check_alive()?;
        self.inner.exists(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        st.check_alive()?;
        if st.faults.fail_removes {
            return Err(io::Error::other("injected remove failure"));
        }
        let k = key(path);
        st.touch_parent(&k)?;
        let captured = st.capture_before_unlink(&k)?;
        self.inner.remove_file(path)?;
        st.forget_name(&k, captured);
        Ok(())
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        st.check_alive()?;
        // Durable at once (module docs): the durable entries of the directories in the tree go
        // with it. A file in it that still has a durable name outside (a rename into the tree
        // not synced yet) keeps its content for that name.
        let k = key(path);
        st.dirty_dirs.retain(|d, _| !d.starts_with(&k));
        let doomed: Vec<PathBuf> = st
            .live
            .keys()
            .filter(|p| p.starts_with(&k))
            .cloned()
            .collect();
        let mut captured = Vec::with_capacity(doomed.len());
        for p in &doomed {
            captured.push(st.capture_before_unlink(p)?);
        }
        self.inner.remove_dir_all(path)?;
        for (p, c) in doomed.iter().zip(captured) {
            st.forget_name(p, c);
        }
        st.forget_unreachable();
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        st.check_alive()?;
        if st.faults.fail_renames {
            return Err(io::Error::other("injected rename failure"));
        }
        let (kf, kt) = (key(from), key(to));
        if fs::symlink_metadata(from).is_ok_and(|m| m.is_dir()) {
            // Directories are durable at once (module docs); their files move with them.
            self.inner.rename(from, to)?;
            st.rekey_dir(&kf, &kt);
            return Ok(());
        }
        st.touch_parent(&kf)?;
        st.touch_parent(&kt)?;
        if kf == kt {
            return self.inner.rename(from, to);
        }
        let captured = st.capture_before_unlink(&kt)?;
        self.inner.rename(from, to)?;
        st.forget_name(&kt, captured);
        if let Some(id) = st.live.remove(&kf) {
            st.live.insert(kt, id);
        }
        Ok(())
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        lock(&self.state).check_alive()?;
        self.inner.list_dir(path)
    }
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        lock(&self.state).check_alive()?;
        self.inner.is_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        lock(&self.state).check_alive()?;
        self.inner.create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        st.check_alive()?;
        if st.faults.fail_sync {
            return Err(io::Error::other("injected fsync failure"));
        }
        self.inner.sync_dir(path)?;
        st.dirty_dirs.remove(&key(path));
        st.forget_unreachable();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Creates `path` with `content`, fsyncs it and its directory: all of it durable.
    fn durable_file(b: &FaultyBackend, path: &Path, content: &[u8]) -> Arc<dyn StorageFile> {
        let f = b.open(path, true).unwrap();
        f.write_all_at(content, 0).unwrap();
        f.sync().unwrap();
        b.sync_dir(path.parent().unwrap()).unwrap();
        f
    }

    fn append(f: &dyn StorageFile, bytes: &[u8]) {
        f.write_all_at(bytes, f.len().unwrap()).unwrap();
    }

    #[test]
    fn unsynced_appends_are_lost_and_synced_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let b = FaultyBackend::new();
        let a = dir.path().join("a");
        let f = durable_file(&b, &a, b"synced");
        append(&*f, b" unsynced");
        let c = dir.path().join("c");
        let g = durable_file(&b, &c, b"one");
        append(&*g, b" two");
        g.sync().unwrap();
        // A sync through another handle of the same file counts too.
        let h = b.open(&a, false).unwrap();
        let e = dir.path().join("e");
        let k = durable_file(&b, &e, b"first");
        append(&*k, b" second");
        b.open(&e, false).unwrap().sync().unwrap();
        append(&*h, b" more");
        b.crash().unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"synced");
        assert_eq!(fs::read(&c).unwrap(), b"one two");
        assert_eq!(fs::read(&e).unwrap(), b"first second");
    }

    #[test]
    fn overwrites_and_set_len_after_a_sync_are_reverted() {
        let dir = tempfile::tempdir().unwrap();
        let b = FaultyBackend::new();
        let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let p = dir.path().join("p");
        let f = durable_file(&b, &p, &content);
        // Into the second page, a cut below it, a regrowth past the old end, a write there.
        f.write_all_at(b"XXXX", 5000).unwrap();
        f.set_len(100).unwrap();
        f.set_len(20_000).unwrap();
        f.write_all_at(b"tail", 19_000).unwrap();
        let q = dir.path().join("q");
        let g = durable_file(&b, &q, b"abc");
        g.set_len(4096).unwrap();
        b.crash().unwrap();
        assert_eq!(fs::read(&p).unwrap(), content);
        assert_eq!(fs::read(&q).unwrap(), b"abc");
    }

    #[test]
    fn a_file_whose_directory_was_not_synced_disappears() {
        let dir = tempfile::tempdir().unwrap();
        let b = FaultyBackend::new();
        let named = dir.path().join("named");
        durable_file(&b, &named, b"here");
        // Content fsynced, name not.
        let new = dir.path().join("new");
        let f = b.open(&new, true).unwrap();
        f.write_all_at(b"gone", 0).unwrap();
        f.sync().unwrap();
        // Directories are durable at once, the files in them are not.
        let sub = dir.path().join("sub");
        b.create_dir_all(&sub).unwrap();
        b.open(&sub.join("f"), true).unwrap().sync().unwrap();
        // Name durable, content not: an empty file.
        let empty = dir.path().join("empty");
        append(&*b.open(&empty, true).unwrap(), b"lost");
        b.sync_dir(dir.path()).unwrap();
        b.crash().unwrap();
        assert_eq!(fs::read(&named).unwrap(), b"here");
        assert!(sub.is_dir());
        assert!(!sub.join("f").exists());
        assert_eq!(fs::read(&empty).unwrap(), b"");
        // `new` was named by the directory sync that made `empty` durable.
        assert_eq!(fs::read(&new).unwrap(), b"gone");

        // Without that sync it goes.
        let dir = tempfile::tempdir().unwrap();
        let b = FaultyBackend::new();
        let new = dir.path().join("new");
        let f = b.open(&new, true).unwrap();
        f.write_all_at(b"gone", 0).unwrap();
        f.sync().unwrap();
        b.crash().unwrap();
        assert!(!new.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// Checkpoint-style replacement (`tmp`, fsync, rename over) and a plain rename, then
    /// optionally the directory sync that makes them durable.
    fn renames(sync_dir: bool) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let b = FaultyBackend::new();
        let (cp, tmp) = (dir.path().join("cp"), dir.path().join("cp.tmp"));
        let (a, moved) = (dir.path().join("a"), dir.path().join("b"));
        durable_file(&b, &cp, b"old");
        durable_file(&b, &a, b"a");
        let f = b.open(&tmp, true).unwrap();
        f.write_all_at(b"new", 0).unwrap();
        f.sync().unwrap();
        b.rename(&tmp, &cp).unwrap();
        b.rename(&a, &moved).unwrap();
        if sync_dir {
            b.sync_dir(dir.path()).unwrap();
        }
        b.crash().unwrap();
        (dir, cp, tmp, a, moved)
    }

    #[test]
    fn a_rename_without_a_directory_sync_is_undone() {
        let (dir, cp, tmp, a, moved) = renames(false);
        assert_eq!(fs::read(&cp).unwrap(), b"old");
        assert!(!tmp.exists());
        assert_eq!(fs::read(&a).unwrap(), b"a");
        assert!(!moved.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_rename_followed_by_a_directory_sync_is_kept() {
        let (dir, cp, tmp, a, moved) = renames(true);
        assert_eq!(fs::read(&cp).unwrap(), b"new");
        assert!(!tmp.exists());
        assert!(!a.exists());
        assert_eq!(fs::read(&moved).unwrap(), b"a");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_removal_without_a_directory_sync_is_undone() {
        let root = tempfile::tempdir().unwrap();
        let b = FaultyBackend::new();
        let (d1, d2) = (root.path().join("d1"), root.path().join("d2"));
        b.create_dir_all(&d1).unwrap();
        b.create_dir_all(&d2).unwrap();
        let (x, y) = (d1.join("x"), d2.join("y"));
        let f = durable_file(&b, &x, b"keep me");
        append(&*f, b" (unsynced)");
        durable_file(&b, &y, b"y");
        let z = d1.join("z");
        durable_file(&b, &z, b"z");
        b.remove_file(&x).unwrap();
        b.remove_file(&y).unwrap();
        b.sync_dir(&d2).unwrap();
        // A file moved into a tree that is then deleted comes back under its durable name.
        let sub = d2.join("sub");
        b.create_dir_all(&sub).unwrap();
        b.rename(&z, &sub.join("z")).unwrap();
        b.remove_dir_all(&sub).unwrap();
        b.crash().unwrap();
        assert_eq!(fs::read(&x).unwrap(), b"keep me");
        assert!(!y.exists());
        assert_eq!(fs::read(&z).unwrap(), b"z");
        assert!(!sub.exists());
    }

    #[test]
    fn files_follow_a_renamed_directory() {
        let root = tempfile::tempdir().unwrap();
        let b = FaultyBackend::new();
        let (d1, d2) = (root.path().join("d1"), root.path().join("d2"));
        b.create_dir_all(&d1).unwrap();
        let f = durable_file(&b, &d1.join("f"), b"x");
        b.rename(&d1, &d2).unwrap();
        append(&*f, b"y");
        b.crash().unwrap();
        assert!(!d1.exists());
        assert_eq!(fs::read(d2.join("f")).unwrap(), b"x");
    }

    #[test]
    fn a_failed_fsync_makes_nothing_durable() {
        let dir = tempfile::tempdir().unwrap();
        let b = FaultyBackend::new();
        let p = dir.path().join("p");
        let f = durable_file(&b, &p, b"durable");
        append(&*f, b" written");
        let q = dir.path().join("q");
        let g = b.open(&q, true).unwrap();
        append(&*g, b"q");
        b.set_faults(Faults {
            fail_sync: true,
            ..Faults::default()
        });
        assert!(f.sync().is_err());
        assert!(g.sync().is_err());
        assert!(b.sync_dir(dir.path()).is_err());
        b.crash().unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"durable");
        assert!(!q.exists());
    }

    /// Eight durable files with an unsynced tail each, crashed with `seed`: their contents.
    fn seeded_image(seed: u64) -> Vec<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let b = FaultyBackend::new();
        let paths: Vec<PathBuf> = (0..8).map(|i| dir.path().join(format!("{i}"))).collect();
        for p in &paths {
            let f = durable_file(&b, p, b"durable-");
            append(&*f, &tail());
        }
        b.crash_with_seed(seed).unwrap();
        paths.iter().map(|p| fs::read(p).unwrap()).collect()
    }

    fn tail() -> Vec<u8> {
        (0..1000u32).map(|i| (i % 97) as u8).collect()
    }

    #[test]
    fn a_seeded_crash_keeps_a_prefix_of_the_unsynced_tail_deterministically() {
        let full = [b"durable-".to_vec(), tail()].concat();
        let (mut none, mut all, mut part) = (false, false, false);
        let mut images = Vec::new();
        for seed in 0..16 {
            let image = seeded_image(seed);
            assert_eq!(image, seeded_image(seed), "seed {seed}");
            for content in &image {
                assert!(content.len() >= 8, "durable bytes lost");
                assert_eq!(content[..], full[..content.len()], "not a prefix");
                none |= content.len() == 8;
                all |= content.len() == full.len();
                part |= content.len() > 8 && content.len() < full.len();
            }
            images.push(image);
        }
        assert!(none && all && part);
        images.dedup();
        assert!(images.len() > 1, "every seed gave the same image");
    }

    #[test]
    fn handles_and_the_backend_fail_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let b = FaultyBackend::new();
        let p = dir.path().join("p");
        let f = durable_file(&b, &p, b"abc");
        append(&*f, b"def");
        let clone = b.clone();
        b.crash().unwrap();
        let mut buf = [0; 3];
        assert!(f.read_at(&mut buf, 0).is_err());
        assert!(f.write_at(b"x", 0).is_err());
        assert!(f.len().is_err());
        assert!(f.set_len(0).is_err());
        assert!(f.sync().is_err());
        assert!(b.open(&p, false).is_err());
        assert!(clone.exists(&p).is_err());
        assert!(clone.list_dir(dir.path()).is_err());
        assert!(b.crash().is_err());
        // The OS file (what maps are made from) is the pre-crash one: the crash did not edit it
        // in place, it replaced it.
        let mut old = [0; 6];
        f.std_file().unwrap().read_exact_at(&mut old, 0).unwrap();
        assert_eq!(&old, b"abcdef");
        assert_eq!(fs::read(&p).unwrap(), b"abc");
        // A fresh backend is the reboot.
        let g = FaultyBackend::new().open(&p, false).unwrap();
        assert_eq!(g.len().unwrap(), 3);
    }

    #[test]
    fn clones_share_the_crash_model() {
        let dir = tempfile::tempdir().unwrap();
        let b = FaultyBackend::new();
        let writer = b.clone();
        let p = dir.path().join("p");
        let f = writer.open(&p, true).unwrap();
        append(&*f, b"abc");
        f.sync().unwrap();
        b.sync_dir(dir.path()).unwrap();
        append(&*f, b"def");
        b.crash().unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"abc");
    }
}
