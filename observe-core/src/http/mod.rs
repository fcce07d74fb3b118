//! Framework-neutral tower layers for HTTP servers and clients (`http` 1.x types).
//!
//! - [`ServerLayer`]: for every incoming request, trace context (extracted, continued, made
//!   current for everything the handler does), RED metrics on every outcome (responses, inner
//!   errors, dropped futures), and a server span when sampled. See [`server`] for where a
//!   request is considered done.
//! - [`ClientLayer`]: for every outgoing request, `traceparent`/`tracestate`/`baggage`
//!   propagation, `http_client_request_duration_seconds`, and a client span when sampled.
//!
//! The route label comes from a [`RouteExtractor`] supplied by the framework crate
//! (`observe-axum` reads axum's `MatchedPath`); the default [`NoRoute`] gives none.
//!
//! ```
//! use observe_core::http::{ClientLayer, ServerLayer};
//! let server = ServerLayer::new();
//! let client = ClientLayer::new();
//! # let _ = (server, client);
//! ```

pub mod attributes;
pub mod client;
pub mod route;
pub mod server;

pub use client::{ClientLayer, ClientResponseFuture, ClientService};
pub use route::{NoRoute, RouteExtractor, Routed};
pub use server::{ResponseFuture, ResponseHeader, ServerLayer, ServerService};
