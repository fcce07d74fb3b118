//! # observe-tonic
//!
//! observe for tonic: one layer on the server, one on each channel, and every call gets a trace
//! context that continues across services, a span when sampled, log lines that carry its ids,
//! and the OpenTelemetry RPC metrics (`rpc_server_call_duration_seconds`,
//! `rpc_client_call_duration_seconds`) with the call's final gRPC status.
//!
//! The status of a gRPC call arrives in the `grpc-status` trailer after the last message (or in
//! the headers, for a "trailers-only" error), so both layers watch the response body to its
//! end: a streaming call is measured until its stream ends, and a call dropped before that is
//! recorded as `CANCELLED`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! # let routes = tonic::service::Routes::default();
//! // Server
//! tonic::transport::Server::builder()
//!     .layer(observe_tonic::server_layer())
//!     .add_routes(routes)
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//!
//! // Client
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051")
//!     .connect()
//!     .await?;
//! let channel = tower::ServiceBuilder::new()
//!     .layer(observe_tonic::client_layer())
//!     .service(channel);
//! # let _ = channel;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod body;
mod call;
mod client;
mod method;
mod server;
mod status;

pub use body::ResponseBody;
pub use client::{ClientLayer, ClientService, ResponseFuture as ClientResponseFuture};
pub use server::{ResponseFuture, ServerLayer, ServerService};

/// The error type of the layers' services and bodies (what tonic itself uses).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The server layer with defaults: `Server::builder().layer(observe_tonic::server_layer())`.
///
/// ```
/// let layer = observe_tonic::server_layer();
/// # let _ = layer;
/// ```
pub fn server_layer() -> ServerLayer {
    ServerLayer::new()
}

/// The client layer with defaults:
/// `ServiceBuilder::new().layer(observe_tonic::client_layer()).service(channel)`.
///
/// ```
/// let layer = observe_tonic::client_layer();
/// # let _ = layer;
/// ```
pub fn client_layer() -> ClientLayer {
    ClientLayer::new()
}
