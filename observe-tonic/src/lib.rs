//! observe-tonic
