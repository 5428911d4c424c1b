//! A chunk's Arrow data in shared memory (docs/protocol.md, "Shared memory"): each Python mapper
//! process gets two memfds, one for its input and one for its output, and the pipes carry only
//! the JSON lines that say how many bytes of each to read. Through a pipe every byte was copied
//! twice (into the kernel's pipe buffer and out of it) into a fresh buffer on each side; here the
//! writer copies it once into pages both processes share, which stay allocated from chunk to
//! chunk, and the reader maps them (Python) or reads them once (the worker).
//!
//! A memfd has no name in any filesystem: when both processes are gone, so is its memory, however
//! they ended (nothing is left in /dev/shm after a `kill -9`).

use crate::convert::{ipc_schema, ipc_stream};
use crate::ChunkError;
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use flywheel_protocol::FailureKind;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Whether Python mappers get shared memory: unless `FLYWHEEL_SHM=0`, on Linux.
pub(crate) fn enabled() -> bool {
    cfg!(target_os = "linux") && std::env::var("FLYWHEEL_SHM").map_or(true, |v| v != "0")
}

/// The environment variable that names the two descriptors in the mapper process:
/// `FLYWHEEL_SHM_FDS=IN,OUT`.
pub(crate) const FDS_VAR: &str = "FLYWHEEL_SHM_FDS";

/// A mapper process's two memfds: the worker writes `input`, the mapper writes `output`.
pub(crate) struct Shm {
    input: File,
    output: Arc<File>,
}

impl Shm {
    /// Two fresh memfds (close-on-exec: only the process they are handed to gets them).
    pub(crate) fn create() -> std::io::Result<Shm> {
        Ok(Shm {
            input: memfd(c"flywheel-chunk-in")?,
            output: Arc::new(memfd(c"flywheel-chunk-out")?),
        })
    }

    /// The descriptors, input first, as the mapper process gets them.
    pub(crate) fn fds(&self) -> [RawFd; 2] {
        [self.input.as_raw_fd(), self.output.as_raw_fd()]
    }

    /// The output memfd, for the thread that reads the mapper's answers.
    pub(crate) fn output(&self) -> Arc<File> {
        Arc::clone(&self.output)
    }

    /// Writes a chunk's rows as an Arrow IPC stream from the start of the input memfd, then the
    /// table schema's stream, if fixed; returns both lengths in bytes. The memfd keeps its pages
    /// for the next chunk (it only grows, up to the largest chunk so far, unless a chunk is
    /// less than a quarter of it: then it shrinks to that chunk).
    pub(crate) fn write_input(
        &self,
        input: &[RecordBatch],
        schema: Option<&Schema>,
    ) -> Result<(usize, Option<usize>), ChunkError> {
        let io = |e: std::io::Error| {
            ChunkError::new(
                FailureKind::Io,
                format!("cannot write a chunk to the mapper's shared memory: {e}"),
            )
        };
        let mut w = BufWriter::with_capacity(1 << 20, &self.input);
        w.seek(SeekFrom::Start(0)).map_err(io)?;
        ipc_stream(input, &mut w)?;
        let arrow_bytes = w.stream_position().map_err(io)? as usize;
        let schema_bytes = match schema {
            Some(s) => {
                ipc_schema(s, &mut w)?;
                Some(w.stream_position().map_err(io)? as usize - arrow_bytes)
            }
            None => None,
        };
        w.flush().map_err(io)?;
        drop(w);
        let used = (arrow_bytes + schema_bytes.unwrap_or(0)) as u64;
        let size = self.input.metadata().map_err(io)?.len();
        if size > used.saturating_mul(4) {
            self.input.set_len(used).map_err(io)?;
        }
        Ok((arrow_bytes, schema_bytes))
    }
}

/// The first `n` bytes of the output memfd: the Arrow IPC stream an arrow line announced.
pub(crate) fn read_output(output: &File, n: u64) -> Result<Vec<u8>, String> {
    let size = output
        .metadata()
        .map_err(|e| format!("cannot read its shared memory: {e}"))?
        .len();
    if size < n {
        return Err(format!(
            "it announced {n} bytes of Arrow data in its shared memory, which holds {size}"
        ));
    }
    let mut data = vec![0u8; n as usize];
    output
        .read_exact_at(&mut data, 0)
        .map_err(|e| format!("cannot read its shared memory: {e}"))?;
    Ok(data)
}

#[cfg(target_os = "linux")]
fn memfd(name: &std::ffi::CStr) -> std::io::Result<File> {
    // SAFETY: memfd_create takes a NUL-terminated name and flags; the descriptor it returns is
    // new and owned by the File from here on.
    unsafe {
        let fd = libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(File::from_raw_fd(fd))
    }
}

#[cfg(not(target_os = "linux"))]
fn memfd(_: &std::ffi::CStr) -> std::io::Result<File> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

    fn batch(rows: i64) -> RecordBatch {
        let ids = Int64Array::from_iter_values(0..rows);
        let text = StringArray::from_iter_values((0..rows).map(|i| format!("row {i}")));
        RecordBatch::try_from_iter([("id", Arc::new(ids) as _), ("text", Arc::new(text) as _)])
            .expect("a batch")
    }

    #[test]
    fn a_chunk_written_to_the_input_reads_back_and_a_smaller_one_after_it_too() {
        let shm = Shm::create().expect("memfds");
        for rows in [10_000, 10] {
            let b = batch(rows);
            let (n, schema_bytes) = shm
                .write_input(std::slice::from_ref(&b), None)
                .expect("written");
            assert_eq!(schema_bytes, None);
            // The worker's reader reads the mapper's output the same way.
            let data = read_output(&shm.input, n as u64).expect("read");
            let back = crate::convert::read_ipc(data).expect("an IPC stream");
            assert_eq!(back, vec![b]);
        }
        // The big chunk's pages went when a chunk a quarter its size came.
        assert!(shm.input.metadata().expect("stat").len() < 10_000);
    }

    #[test]
    fn the_schema_follows_the_rows_and_a_short_output_is_an_error() {
        let shm = Shm::create().expect("memfds");
        let b = batch(5);
        let (n, s) = shm
            .write_input(std::slice::from_ref(&b), Some(&b.schema()))
            .expect("written");
        let s = s.expect("schema bytes");
        let mut tail = vec![0u8; s];
        shm.input.read_exact_at(&mut tail, n as u64).expect("read");
        let schema = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(tail), None)
            .expect("a schema stream")
            .schema();
        assert_eq!(schema, b.schema());
        let err = read_output(&shm.output, 64).expect_err("nothing was written");
        assert!(err.contains("announced 64 bytes"), "{err}");
    }
}
