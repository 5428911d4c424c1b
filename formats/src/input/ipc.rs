//! Arrow IPC files, read through a memory map: planning decodes only the footer and each record
//! batch's message header (never the data pages), and a worker decodes, zero-copy, only the
//! batches that overlap its rows.

use super::{row_slices, InputFile};
use crate::FormatError;
use arrow::buffer::Buffer;
use arrow::datatypes::Schema;
use arrow::ipc::convert::fb_to_schema;
use arrow::ipc::reader::{read_footer_length, FileDecoder};
use arrow::ipc::{root_as_footer, Block};
use arrow::record_batch::RecordBatch;
use flywheel_protocol::InputSlice;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// A memory-mapped IPC file with its decoder and batch blocks.
struct Mapped {
    buffer: Buffer,
    decoder: FileDecoder,
    batches: Vec<Block>,
}

fn bad(path: &Path, what: impl std::fmt::Display) -> FormatError {
    FormatError::BadFile {
        path: path.to_path_buf(),
        reason: format!("not a readable Arrow IPC file: {what}"),
    }
}

fn open(path: &Path) -> Result<Mapped, FormatError> {
    let file = File::open(path).map_err(FormatError::io(path))?;
    // SAFETY: the file is opened read-only; inputs must not be modified while a job reads them.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(FormatError::io(path))?;
    let buffer = Buffer::from(bytes::Bytes::from_owner(map));
    if buffer.is_empty() {
        return Err(bad(path, "the file is empty"));
    }
    if buffer.starts_with(&[0xff; 4]) {
        return Err(bad(path, "this is the Arrow IPC stream format; flywheel reads the IPC file format (pyarrow.ipc.new_file, not new_stream)"));
    }
    if buffer.len() < 16 || &buffer[..6] != b"ARROW1" {
        return Err(bad(
            path,
            "missing the ARROW1 magic (truncated, or not the IPC file format)",
        ));
    }
    if &buffer[buffer.len() - 6..] != b"ARROW1" {
        return Err(bad(
            path,
            "truncated: it does not end with the ARROW1 magic",
        ));
    }
    let trailer = buffer.len() - 10;
    let tail: [u8; 10] = buffer[trailer..]
        .try_into()
        .map_err(|_| bad(path, "short trailer"))?;
    let footer_len = read_footer_length(tail).map_err(|e| bad(path, e))?;
    if footer_len > trailer {
        return Err(bad(path, "footer length exceeds the file (truncated)"));
    }
    let footer =
        root_as_footer(&buffer[trailer - footer_len..trailer]).map_err(|e| bad(path, e))?;
    let schema: Schema = fb_to_schema(
        footer
            .schema()
            .ok_or_else(|| bad(path, "footer has no schema"))?,
    );
    let mut decoder = FileDecoder::new(Arc::new(schema), footer.version());
    let block_data = |b: &Block| -> Result<Buffer, FormatError> {
        let (offset, len) = (
            b.offset() as usize,
            b.metaDataLength() as usize + b.bodyLength() as usize,
        );
        if offset.checked_add(len).is_none_or(|end| end > buffer.len()) {
            return Err(bad(
                path,
                "a block lies past the end of the file (truncated)",
            ));
        }
        Ok(buffer.slice_with_length(offset, len))
    };
    for block in footer.dictionaries().iter().flatten() {
        decoder
            .read_dictionary(block, &block_data(block)?)
            .map_err(|e| bad(path, e))?;
    }
    let batches: Vec<Block> = footer
        .recordBatches()
        .map(|b| b.iter().copied().collect())
        .unwrap_or_default();
    for b in &batches {
        block_data(b)?;
    }
    Ok(Mapped {
        buffer,
        decoder,
        batches,
    })
}

impl Mapped {
    /// A batch's row count, from its message header alone (its data pages are not touched).
    fn rows(&self, i: usize, path: &Path) -> Result<u64, FormatError> {
        let b = &self.batches[i];
        let meta =
            &self.buffer[b.offset() as usize..b.offset() as usize + b.metaDataLength() as usize];
        // Encapsulated message: [0xFFFFFFFF continuation] [int32 length] [flatbuffer], or the
        // legacy form without the continuation marker.
        let body = if meta.len() >= 8 && meta[..4] == [0xff; 4] {
            &meta[8..]
        } else {
            meta.get(4..).unwrap_or_default()
        };
        let message =
            arrow::ipc::root_as_message(body).map_err(|e| bad(path, format!("batch {i}: {e}")))?;
        let header = message
            .header_as_record_batch()
            .ok_or_else(|| bad(path, format!("block {i} holds no record batch")))?;
        u64::try_from(header.length())
            .map_err(|_| bad(path, format!("batch {i} has a negative length")))
    }

    fn batch(&self, i: usize, path: &Path) -> Result<RecordBatch, FormatError> {
        let b = &self.batches[i];
        let data = self.buffer.slice_with_length(
            b.offset() as usize,
            b.metaDataLength() as usize + b.bodyLength() as usize,
        );
        self.decoder
            .read_record_batch(b, &data)
            .map_err(|e| bad(path, e))?
            .ok_or_else(|| bad(path, format!("block {i} holds no record batch")))
    }
}

pub(super) fn plan(
    file: &InputFile,
    chunk_rows: u64,
    out: &mut Vec<InputSlice>,
) -> Result<u64, FormatError> {
    let m = open(&file.path)?;
    let mut rows = 0u64;
    for i in 0..m.batches.len() {
        rows += m.rows(i, &file.path)?;
    }
    row_slices(file, rows, chunk_rows, out);
    // Headers only: the arrays are views of the map that planning never touches.
    Ok(m.batches.iter().map(|b| b.metaDataLength() as u64).sum())
}

pub(super) fn read(slice: &InputSlice, batch_rows: usize) -> Result<Vec<RecordBatch>, FormatError> {
    let path = Path::new(&slice.path);
    let m = open(path)?;
    let (start, end) = (slice.row_start, slice.row_start + slice.row_count);
    let mut out = Vec::new();
    let mut offset = 0u64;
    for i in 0..m.batches.len() {
        if offset >= end {
            break;
        }
        let n = m.rows(i, path)?;
        if offset + n > start {
            let batch = m.batch(i, path)?;
            let from = start.saturating_sub(offset);
            let to = (end - offset).min(n);
            let mut at = from;
            while at < to {
                let len = (to - at).min(batch_rows as u64);
                out.push(batch.slice(at as usize, len as usize));
                at += len;
            }
        }
        offset += n;
    }
    Ok(out)
}
