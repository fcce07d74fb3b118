//! Code shared by the examples.

// `examples/tour.rs` is the example binary; the tour's library code lives in `examples/tour/`.
#[path = "tour/mod.rs"]
pub mod tour;
