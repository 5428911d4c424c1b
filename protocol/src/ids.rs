//! Id newtypes, so a chunk id can never be passed where a rank is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident, $inner:ty, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id_newtype!(
    /// Index of a chunk in the job's plan; chunk order is output order.
    ChunkId, u32, "chunk "
);
id_newtype!(
    /// An MPI rank (or, in embedded mode, a worker thread's number). Rank 0 is the coordinator.
    Rank, u32, "worker "
);
id_newtype!(
    /// The 1-based attempt number of a chunk.
    Attempt, u32, "attempt "
);

impl Rank {
    /// The coordinator's rank.
    pub const COORDINATOR: Rank = Rank(0);
}

/// The seed a mapper gets for one chunk: a pure function of the job seed and the chunk id, so
/// sampling is reproducible whatever worker runs the chunk, and whichever attempt it is.
pub fn chunk_seed(job_seed: u64, chunk: ChunkId) -> u64 {
    splitmix(job_seed ^ (u64::from(chunk.0).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

/// The seed a mapper gets for one chunk of an incremental job: a pure function of the job seed
/// and the chunk's rows (its input file and range), never of the chunk's place in the plan, so
/// a file's chunks keep their seeds when other files are added before it.
pub fn slice_seed(job_seed: u64, slice: &crate::InputSlice) -> u64 {
    rows_seed(job_seed, &slice.path, slice)
}

/// The seed of a chunk's rows under [`crate::SeedScheme::InputRows`]: [`slice_seed`] with the
/// file's path relative to the input's root (`rel_path`), so that moving the data leaves it.
pub fn rows_seed(job_seed: u64, rel_path: &str, slice: &crate::InputSlice) -> u64 {
    // FNV-1a of the file's path, then each number of the range mixed in: stable across versions.
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in rel_path.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
    }
    let (b0, b1) = slice.bytes.unwrap_or((0, 0));
    let mut z = splitmix(job_seed ^ h);
    for n in [slice.row_start, slice.row_count, b0, b1] {
        z = splitmix(z ^ n);
    }
    z
}

/// The seed of chunk `chunk` (rows `slice`) under `scheme`; `root` is the input's root
/// directory (absolute), which [`crate::SeedScheme::InputRows`] takes paths relative to.
pub fn seed_for(
    scheme: crate::SeedScheme,
    job_seed: u64,
    root: &str,
    chunk: ChunkId,
    slice: &crate::InputSlice,
) -> u64 {
    match scheme {
        crate::SeedScheme::ChunkIndex => chunk_seed(job_seed, chunk),
        crate::SeedScheme::AbsoluteRows => slice_seed(job_seed, slice),
        crate::SeedScheme::InputRows => {
            rows_seed(job_seed, relative_path(root, &slice.path), slice)
        }
    }
}

/// `path` relative to the directory `root` (`a/b.parquet`), or `path` itself outside it.
pub fn relative_path<'p>(root: &str, path: &'p str) -> &'p str {
    let root = root.trim_end_matches('/');
    match path.strip_prefix(root) {
        Some(rest) if rest.starts_with('/') => &rest[1..],
        _ => path,
    }
}

/// The seed a worker's mapper processes start from (their constructor and `start()` draw from
/// it): a pure function of the job seed and the worker's rank, never a chunk's seed.
pub fn start_seed(job_seed: u64, worker: Rank) -> u64 {
    splitmix(splitmix(job_seed ^ 0x5354_4152_5453_4545) ^ u64::from(worker.0))
}

/// splitmix64: well mixed, cheap, and stable across versions.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_seeds_differ_by_chunk_and_job_seed() {
        let a = chunk_seed(1, ChunkId(0));
        assert_ne!(a, chunk_seed(1, ChunkId(1)));
        assert_ne!(a, chunk_seed(2, ChunkId(0)));
        assert_eq!(a, chunk_seed(1, ChunkId(0)));
    }

    #[test]
    fn slice_seeds_depend_on_the_rows_not_the_place_in_the_plan() {
        let s = crate::InputSlice {
            path: "/data/a.parquet".into(),
            format: crate::InputFormat::Parquet,
            group: None,
            row_start: 0,
            row_count: 10,
            bytes: None,
            schema: None,
        };
        let a = slice_seed(1, &s);
        assert_eq!(a, slice_seed(1, &s.clone()));
        assert_ne!(a, slice_seed(2, &s));
        let later = crate::InputSlice {
            row_start: 10,
            ..s.clone()
        };
        assert_ne!(a, slice_seed(1, &later));
        let other = crate::InputSlice {
            path: "/data/b.parquet".into(),
            ..s
        };
        assert_ne!(a, slice_seed(1, &other));
    }

    #[test]
    fn ids_display_their_kind() {
        assert_eq!(ChunkId(3).to_string(), "chunk 3");
        assert_eq!(Rank(2).to_string(), "worker 2");
    }
}
