//! The coordinator in simulation: property tests over seeded runs with failures of every kind.

mod assignments;
mod simulation;
