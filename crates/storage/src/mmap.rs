//! The only module with `unsafe`: read-only memory maps of sealed files.
//!
//! # Safety argument
//!
//! A memory map of a file is only sound to read while nobody truncates or rewrites the mapped
//! range underneath it (truncation turns reads into SIGBUS; rewrites make `&[u8]` contents change
//! under an immutable borrow). This crate maps a file only when it is *sealed*:
//!
//! - A segment's `.log`, `.index`, `.timeindex` and `.txnindex` are mapped only after the segment
//!   stopped being the active one: its index tails have been written and the indexes were
//!   trimmed to their exact size. From then on the crate never calls `write_at` or `set_len` on
//!   those files again. (A `.txnindex` that is being rebuilt at open stays in memory, unmapped,
//!   until the rebuild has written it.)
//! - When a sealed segment has to change after all (replica truncation into it, index rebuild), the
//!   crate never edits the mapped inode in place: it writes a new file and renames it over the old
//!   name, or unlinks the old file and creates a new one. Unlinking and renaming do not disturb an
//!   existing mapping: the old inode lives until the last map of it is dropped.
//! - Deletion of a partition (`Log::delete`) unlinks files the same way, so `Bytes` handed out to
//!   fetch responses before the deletion stay valid until they are dropped.
//! - Retention (`Log::delete_old_segments`, `Log::delete_records`) never truncates either: a
//!   deleted segment's files are renamed `<name>.deleted`, the segment (with its file handles and
//!   the log's references to its maps) is dropped, and the files are unlinked later
//!   (`Log::delete_expired_files`, `Log::close`, or `Log::open` after a crash). This relies on
//!   POSIX semantics, which Linux implements: a rename does not touch the inode; a shared mapping
//!   holds its own reference to the file, so it stays valid after the descriptor it was made from
//!   is closed and after the last name of the file is unlinked, and the inode's blocks are only
//!   freed once the last map of it is gone (munmap). So `Bytes` a fetch took from a segment that
//!   retention then deleted keep reading the same bytes until they are dropped, however long
//!   `file.delete.delay.ms` is (Kafka needs that delay because deleting a segment closes its
//!   file channel under reads in flight; here it only mirrors Kafka's visible behaviour).
//! - The `Bytes` returned here own the map (`Bytes::from_owner`), so a slice can never outlive it.
//!
//! What the crate cannot rule out is another process truncating files in the log directory
//! while the broker runs; like Kafka, we treat the log directory as owned by the broker.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use bytes::Bytes;
use memmap2::Mmap;

/// Maps the whole of `file` read-only and returns it as `Bytes` (which keep the map alive).
///
/// Callers must uphold the module's contract: `file` is sealed and will not be written or
/// truncated in place for as long as the returned `Bytes` (or any slice of it) lives.
pub(crate) fn map_sealed(file: &File) -> io::Result<Bytes> {
    let len = file.metadata()?.len();
    if len == 0 {
        // mmap(2) refuses zero-length maps; an empty file needs none.
        return Ok(Bytes::new());
    }
    // SAFETY: see the module docs: the file is sealed (never written or truncated in place again
    // by this crate), and replacing or deleting it unlinks the inode instead of modifying it, so
    // the mapped bytes stay valid and unchanged for the life of the map.
    let map = unsafe { Mmap::map(file)? };
    Ok(Bytes::from_owner(map))
}
