//! The one narrow interface all file access goes through, so tests can inject faults.
//!
//! [`FileBackend`] is the real thing (positional I/O through `std::os::unix::fs::FileExt`);
//! [`FaultyBackend`] wraps it and can make writes short, fail, or silently stop persisting
//! ("crash"), and make fsync, renames and file removals fail.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
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
    /// Every fsync (file or directory) fails.
    pub fail_sync: bool,
    /// Once this many bytes have been written in total, writes fail with an I/O error (a write
    /// that crosses the limit writes its prefix and reports a short write first).
    pub fail_writes_after_bytes: Option<u64>,
    /// Once this many bytes have been written in total, writes still report success but only the
    /// prefix up to the limit reaches the file, and `set_len` does nothing: what a machine crash
    /// leaves behind when the page cache is lost. Reopen with a fresh backend to "reboot".
    pub crash_after_bytes: Option<u64>,
    /// Every rename fails (nothing is renamed).
    pub fail_renames: bool,
    /// Every file removal fails (nothing is removed). Directory removal is not affected.
    pub fail_removes: bool,
}

#[derive(Debug, Default)]
struct FaultState {
    faults: Faults,
    bytes_written: u64,
}

/// A [`FileBackend`] that injects [`Faults`]. Clones share their fault settings and counters.
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

    fn check_sync(&self) -> io::Result<()> {
        if lock(&self.state).faults.fail_sync {
            return Err(io::Error::other("injected fsync failure"));
        }
        Ok(())
    }

    fn faults(&self) -> Faults {
        lock(&self.state).faults.clone()
    }
}

// A poisoned fault-state mutex only means a test thread panicked; the state is still usable.
fn lock(m: &Mutex<FaultState>) -> MutexGuard<'_, FaultState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
struct FaultyFile {
    inner: Arc<dyn StorageFile>,
    state: Arc<Mutex<FaultState>>,
}

impl StorageFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.inner.read_at(buf, pos)
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize> {
        let mut st = lock(&self.state);
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
                self.inner.write_all_at(&buf[..persisted], pos)?;
                st.bytes_written += persisted as u64;
            }
            // The caller is told everything was written: the loss shows only after the "reboot".
            return Ok(n);
        }
        let written = self.inner.write_at(&buf[..n], pos)?;
        st.bytes_written += written as u64;
        Ok(written)
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let st = lock(&self.state);
        if let Some(limit) = st.faults.crash_after_bytes {
            if st.bytes_written >= limit {
                return Ok(());
            }
        }
        self.inner.set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        if lock(&self.state).faults.fail_sync {
            return Err(io::Error::other("injected fsync failure"));
        }
        self.inner.sync()
    }

    fn std_file(&self) -> Option<&File> {
        self.inner.std_file()
    }
}

impl Backend for FaultyBackend {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(FaultyFile {
            inner: self.inner.open(path, create)?,
            state: Arc::clone(&self.state),
        }))
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        if self.faults().fail_removes {
            return Err(io::Error::other("injected remove failure"));
        }
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if self.faults().fail_renames {
            return Err(io::Error::other("injected rename failure"));
        }
        self.inner.rename(from, to)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        self.inner.is_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.check_sync()?;
        self.inner.sync_dir(path)
    }
}
