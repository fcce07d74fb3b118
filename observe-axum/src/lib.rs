//! observe-axum
