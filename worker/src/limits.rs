//! Size limits on every input a user controls, named once. A parser refuses a larger input
//! before parsing it, with an error naming the file and the limit; a file is read at most one
//! byte past its limit. docs/FORMAT.md ("Limits") lists them.
//!
//! The limits and the checks that need no I/O live in the task contract
//! ([`tidemark_task::limits`]); the reads that stop past a limit are here.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

pub use tidemark_task::limits::*;

/// Reads at most `limit + 1` bytes of `path`: enough for the parser's own size check to refuse
/// a larger file without the whole of it in memory.
pub fn read_limited(path: &Path, limit: usize) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut data = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut data)
        .map_err(io)?;
    Ok(data)
}

/// [`read_limited`] for a text file: invalid UTF-8 is an I/O error, as `read_to_string` says.
pub fn read_text_limited(path: &Path, limit: usize) -> Result<String> {
    let data = read_limited(path, limit)?;
    String::from_utf8(data).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_one_byte_past_its_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'x'; 100]).expect("write");
        assert_eq!(read_limited(&path, 10).expect("read").len(), 11);
        assert_eq!(read_limited(&path, 1000).expect("read").len(), 100);
    }
}
