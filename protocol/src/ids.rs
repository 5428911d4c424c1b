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
    // splitmix64 of the pair: well mixed, cheap, and stable across versions.
    let mut z = job_seed ^ (u64::from(chunk.0).wrapping_mul(0x9E37_79B9_7F4A_7C15));
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
    fn ids_display_their_kind() {
        assert_eq!(ChunkId(3).to_string(), "chunk 3");
        assert_eq!(Rank(2).to_string(), "worker 2");
    }
}
