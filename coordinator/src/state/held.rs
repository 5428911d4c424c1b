//! The rows a chunk really held. Parquet, Arrow and HDF5 chunks are planned by row, so their
//! slices are exact; JSONL and CSV chunks are cut by bytes, and their planned rows are an
//! estimate: the rows a text chunk held are known once it and the chunks of its file before it
//! have been read (their accepted outputs' `rows_in`, summed), never by counting lines again.

use super::{ChunkState, Coordinator};
use flywheel_protocol::{ChunkId, InputSlice};

impl Coordinator {
    /// The first row (within its file) of chunk `id`: exact for a row-planned slice; for a text
    /// slice, once every chunk of its file before it is done, else `None`.
    pub fn held_start(&self, id: ChunkId) -> Option<u64> {
        let slice = &self.chunks.get(id.0 as usize)?.slice;
        if slice.bytes.is_none() {
            return Some(slice.row_start);
        }
        let mut start = 0;
        // A file's chunks are consecutive in the plan.
        for c in self.chunks[..id.0 as usize].iter().rev() {
            if c.slice.path != slice.path {
                break;
            }
            match &c.state {
                ChunkState::Done(o) => start += o.rows_in,
                _ => return None,
            }
        }
        Some(start)
    }

    /// Every chunk's slice with the rows it held (see the module docs): a done text chunk's
    /// `row_start` and `row_count` are its real ones (once the chunks of its file before it are
    /// done too); other slices as planned. One pass.
    pub fn held_slices(&self) -> Vec<InputSlice> {
        let mut out = Vec::with_capacity(self.chunks.len());
        // The previous text chunk's file, and the row the next chunk of that file starts at.
        let mut next: Option<(&str, Option<u64>)> = None;
        for c in &self.chunks {
            let mut slice = c.slice.clone();
            if slice.bytes.is_some() {
                let start = match next {
                    Some((path, s)) if path == slice.path => s,
                    _ => Some(0),
                };
                let held = match &c.state {
                    ChunkState::Done(o) => Some(o.rows_in),
                    _ => None,
                };
                if let (Some(s), Some(n)) = (start, held) {
                    slice.row_start = s;
                    slice.row_count = n;
                }
                next = Some((c.slice.path.as_str(), start.zip(held).map(|(s, n)| s + n)));
            } else {
                next = None;
            }
            out.push(slice);
        }
        out
    }

    /// Every chunk's slice as planned.
    pub fn planned_slices(&self) -> Vec<InputSlice> {
        self.chunks.iter().map(|c| c.slice.clone()).collect()
    }
}
