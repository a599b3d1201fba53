//! Writing files so that a reader never sees half of one.
//!
//! Every output (sample grids, GIFs, downloaded data) is written to a temporary file in the
//! destination's own folder, flushed to disk, and renamed over the destination. A rename within
//! one folder is atomic on the file systems we care about, so after a crash or Ctrl-C the
//! destination holds either the old file or the complete new one, never a prefix. The temporary
//! file lives in the same folder because a rename across file systems is a copy, not atomic.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// Writes `bytes` to `path` atomically: temporary file in the same folder, `sync_all`, rename,
/// then (on unix) sync the folder so the rename itself survives a power loss.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let mut file = AtomicFile::create(path).map_err(|e| Error::io(path, e))?;
    file.write_all(bytes)
        .map_err(|e| Error::io(file.temp_path(), e))?;
    file.commit().map_err(|e| Error::io(path, e))
}

/// A file being written under a temporary name next to its destination. [`AtomicFile::commit`]
/// moves it into place; dropping it without committing deletes the temporary file, so an error
/// part-way leaves nothing behind.
#[derive(Debug)]
pub struct AtomicFile {
    /// `None` once closed (just before the rename).
    file: Option<File>,
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Creates an empty temporary file in `target`'s folder. The folder must exist.
    pub fn create(target: impl AsRef<Path>) -> io::Result<AtomicFile> {
        let target = target.as_ref().to_path_buf();
        let name = target.file_name().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "destination has no file name")
        })?;
        let dir = parent_dir(&target);

        // The process id keeps concurrent processes apart, the counter concurrent threads;
        // create_new makes a collision with a stale file from a crashed run an error we retry.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut attempts = 0;
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let temp_name = format!(".{}.{}.{n}.tmp", name.to_string_lossy(), std::process::id());
            let temp = dir.join(temp_name);
            match OpenOptions::new().write(true).create_new(true).open(&temp) {
                Ok(file) => {
                    return Ok(AtomicFile {
                        file: Some(file),
                        temp,
                        target,
                        committed: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => {
                    attempts += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Where the bytes go until [`AtomicFile::commit`].
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Flushes the data to disk, renames the temporary file over the destination and syncs the
    /// folder. On error the temporary file is removed and the destination is untouched.
    pub fn commit(mut self) -> io::Result<()> {
        if let Some(file) = self.file.take() {
            file.sync_all()?;
            // Closed before the rename: some platforms refuse to rename an open file.
            drop(file);
        }
        fs::rename(&self.temp, &self.target)?;
        self.committed = true;
        sync_dir(parent_dir(&self.target))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.file.as_mut() {
            Some(file) => file.write(buf),
            None => Err(io::Error::other("write after close")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            self.file.take();
            // Best effort: the error that got us here matters more than a failed cleanup.
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Makes a rename or create inside `dir` durable. A no-op where folders cannot be opened as
/// files (Windows).
pub fn sync_dir(dir: impl AsRef<Path>) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir.as_ref())?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The folder holding `path`; `.` for a bare file name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
