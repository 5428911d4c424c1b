//! The coordinator in simulation (property tests over seeded runs with failures of every kind),
//! and what its journal records.

mod assignments;
mod journal;
mod publish;
mod simulation;
