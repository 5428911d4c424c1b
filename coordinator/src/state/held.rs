//! The rows a chunk really held. Parquet, Arrow and HDF5 chunks are planned by row, so their
//! slices are exact; JSONL and CSV chunks are cut by bytes, and their planned rows are an
//! estimate: the rows a text chunk held are known once it and the chunks of its file before it
//! have been read (their accepted outputs' `rows_in`, summed), never by counting lines again.

use super::{ChunkState, Coordinator};
use flywheel_protocol::{ChunkId, InputSlice};

impl Coordinator {
    /// Each chunk's first row within its file, in one pass: a row-planned slice's own; a text
    /// slice's once every chunk of its file before it is done, else `None`.
    fn held_starts(&self) -> Vec<Option<u64>> {
        let mut out = Vec::with_capacity(self.chunks.len());
        // The previous text chunk's file, and the row the next chunk of that file starts at.
        let mut next: Option<(&str, Option<u64>)> = None;
        for c in &self.chunks {
            if c.slice.bytes.is_none() {
                next = None;
                out.push(Some(c.slice.row_start));
                continue;
            }
            let start = match next {
                Some((path, s)) if path == c.slice.path => s,
                _ => Some(0),
            };
            let held = match &c.state {
                ChunkState::Done(o) => Some(o.rows_in),
                _ => None,
            };
            next = Some((c.slice.path.as_str(), start.zip(held).map(|(s, n)| s + n)));
            out.push(start);
        }
        out
    }

    /// The first row (within its file) of chunk `id` (see [`Self::held_starts`]). A pass over
    /// the plan: for a chunk's last failure, not for every event.
    pub fn held_start(&self, id: ChunkId) -> Option<u64> {
        self.held_starts().get(id.0 as usize).copied().flatten()
    }

    /// Every chunk's slice with the rows it held: a done text chunk whose start is known gets its
    /// real `row_start` and `row_count`; other slices as planned.
    pub fn held_slices(&self) -> Vec<InputSlice> {
        self.chunks
            .iter()
            .zip(self.held_starts())
            .map(|(c, start)| {
                let mut slice = c.slice.clone();
                if let (Some(_), Some(s), ChunkState::Done(o)) = (slice.bytes, start, &c.state) {
                    slice.row_start = s;
                    slice.row_count = o.rows_in;
                }
                slice
            })
            .collect()
    }
}
