//! [`Reader`]: reads small kernel files (cgroup and procfs), either opened for every read or kept
//! open and read again from offset 0 with `pread`.
//!
//! Reading a container's counters every period is a handful of files per container; opening one
//! walks its path (six components under `/sys/fs/cgroup`) and allocates a file, which on a VM is
//! most of the cost of the read. Kernel seq files (cgroup files, `/proc/<pid>/net/*`) produce
//! their content afresh on every read at offset 0, so a file kept open is read with one `pread`.
//! A file kept open for a cgroup that was removed answers `ENODEV`: the reader then drops it and
//! the caller resolves the container again.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The largest file read: counters files are a few KiB; anything larger is not one of them.
const MAX_FILE: usize = 1 << 20;
/// One `pread`: larger than any counter file, so one call reads a whole one.
const CHUNK: usize = 16 * 1024;

/// Reads files into a buffer it reuses; keeps them open when it was made with [`Reader::keeping`].
#[derive(Debug, Default)]
pub struct Reader {
    keep: bool,
    files: HashMap<PathBuf, File>,
    buf: Vec<u8>,
}

impl Reader {
    /// Opens every file for each read.
    pub fn plain() -> Self {
        Self::default()
    }

    /// Keeps every file it read open, to `pread` it next time.
    pub fn keeping() -> Self {
        Self { keep: true, ..Self::default() }
    }

    /// How many files are kept open.
    pub fn kept(&self) -> usize {
        self.files.len()
    }

    /// The whole content of `path` (valid UTF-8), borrowed until the next read.
    pub fn read(&mut self, path: &Path) -> io::Result<&str> {
        self.buf.clear();
        if !self.keep {
            File::open(path)?.take(MAX_FILE as u64).read_to_end(&mut self.buf)?;
        } else {
            if !self.files.contains_key(path) {
                self.files.insert(path.to_owned(), File::open(path)?);
            }
            let read = self.files.get(path).map_or(Ok(()), |file| pread_all(file, &mut self.buf));
            if let Err(e) = read {
                self.files.remove(path);
                return Err(e);
            }
        }
        std::str::from_utf8(&self.buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Frees the read buffer (a reader per container would otherwise hold one each between
    /// readings); the next read allocates it again.
    pub fn release(&mut self) {
        self.buf = Vec::new();
    }

    /// Closes a kept file (its process is gone, or its container moved).
    pub fn forget(&mut self, path: &Path) {
        self.files.remove(path);
    }
}

/// Reads `file` from offset 0 to its end. A read shorter than asked is the end: a seq file fills
/// a read until its records run out, and a regular file short-reads only at its end.
fn pread_all(file: &File, buf: &mut Vec<u8>) -> io::Result<()> {
    loop {
        let at = buf.len();
        buf.resize(at + CHUNK, 0);
        let n = match file.read_at(&mut buf[at..], at as u64) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => {
                buf.truncate(at);
                return Err(e);
            }
        };
        buf.truncate(at + n);
        if n < CHUNK || buf.len() >= MAX_FILE {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_file_is_read_again_from_its_start_and_sees_new_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cpuacct.usage");
        std::fs::write(&path, "100\n").unwrap();
        let mut r = Reader::keeping();
        assert_eq!(r.read(&path).unwrap(), "100\n");
        // rewritten in place (same inode), as the kernel does
        std::fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
        std::fs::write(&path, "250\n").unwrap();
        assert_eq!(r.read(&path).unwrap(), "250\n");
        assert_eq!(r.kept(), 1);
        r.forget(&path);
        assert_eq!(r.kept(), 0);
    }

    #[test]
    fn a_file_larger_than_one_read_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let text = "x".repeat(CHUNK * 2 + 7);
        std::fs::write(&path, &text).unwrap();
        for mut r in [Reader::plain(), Reader::keeping()] {
            assert_eq!(r.read(&path).unwrap(), text);
            assert_eq!(r.read(&path).unwrap(), text, "read twice");
        }
    }

    #[test]
    fn a_missing_file_is_an_error_and_nothing_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Reader::keeping();
        assert_eq!(r.read(&dir.path().join("none")).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(r.kept(), 0);
    }

    #[test]
    fn a_live_seq_file_reads_the_same_kept_or_not() {
        // /proc/self/net/snmp is a kernel seq file, as the counters read in production
        let path = Path::new("/proc/self/net/snmp");
        let plain = Reader::plain().read(path).unwrap().lines().next().map(str::to_owned);
        let mut kept = Reader::keeping();
        kept.read(path).unwrap();
        let again = kept.read(path).unwrap().lines().next().map(str::to_owned);
        assert_eq!(plain, again);
        assert!(plain.is_some_and(|l| l.starts_with("Ip:")));
    }
}
