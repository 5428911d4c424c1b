//! flywheel-formats integration tests.

mod planning;
