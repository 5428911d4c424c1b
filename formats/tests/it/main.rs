//! flywheel-formats integration tests.

mod planning;
mod text_inputs;
