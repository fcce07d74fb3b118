//! A tonic service and its client, both instrumented with observe, with `/metrics` on its own
//! port. It makes a few calls (unary, streaming, one failing) and exits, printing the RPC
//! metrics it scraped from itself.
//!
//! ```text
//! cargo run -p observe-examples --example grpc
//! ```
//!
//! Environment: `GRPC_ADDR` (default `127.0.0.1:50051`) and `METRICS_ADDR` (default
//! `127.0.0.1:9464`, the OpenTelemetry Prometheus exporter's port); `OTEL_*` as usual.

use std::net::SocketAddr;
use std::pin::Pin;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::codegen::tokio_stream::{self, Stream};
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status};

mod pb {
    tonic::include_proto!("observe.example.v1");
}
use pb::greeter_client::GreeterClient;
use pb::greeter_server::{Greeter, GreeterServer};
use pb::{HelloReply, HelloRequest};

#[derive(Default)]
struct Greeting;

#[tonic::async_trait]
impl Greeter for Greeting {
    async fn say_hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let name = req.into_inner().name;
        if name.is_empty() {
            // Logged with the call's trace_id and span_id, sampled or not.
            tracing::warn!("empty name");
            return Err(Status::invalid_argument("name must not be empty"));
        }
        tracing::info!(%name, "greeting");
        Ok(Response::new(HelloReply {
            message: format!("Hello, {name}!"),
        }))
    }

    type SayHelloStreamStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send>>;

    async fn say_hello_stream(
        &self,
        req: Request<HelloRequest>,
    ) -> Result<Response<Self::SayHelloStreamStream>, Status> {
        let HelloRequest { name, times } = req.into_inner();
        let replies = (1..=times.min(100)).map(move |i| {
            Ok(HelloReply {
                message: format!("Hello #{i}, {name}!"),
            })
        });
        Ok(Response::new(Box::pin(tokio_stream::iter(replies))))
    }
}

fn addr(var: &str, default: &str) -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let value = std::env::var(var).unwrap_or_else(|_| default.to_string());
    value
        .parse()
        .map_err(|e| format!("{var}={value:?} is not a socket address: {e}").into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // JSON logs with trace ids on stdout; traces exported when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    let _telemetry = observe_core::init!()?;
    let grpc_addr = addr("GRPC_ADDR", "127.0.0.1:50051")?;
    let metrics_addr = addr("METRICS_ADDR", "127.0.0.1:9464")?;

    // `/metrics` on its own port: this service has no HTTP router to mount it on.
    tokio::spawn(observe_core::metrics::serve(metrics_addr));

    // The server, instrumented.
    let server = Server::builder()
        .layer(observe_tonic::server_layer())
        .add_service(GreeterServer::new(Greeting))
        .serve(grpc_addr);
    tokio::spawn(server);

    // The client, instrumented: context continues into the calls' metadata.
    let channel = Endpoint::from_shared(format!("http://{grpc_addr}"))?
        .connect_timeout(std::time::Duration::from_secs(5));
    let channel = connect(channel).await?;
    let channel = tower::ServiceBuilder::new()
        .layer(observe_tonic::client_layer())
        .service(channel);
    let mut client = GreeterClient::new(channel);

    let reply = client
        .say_hello(HelloRequest {
            name: "observe".into(),
            times: 0,
        })
        .await?;
    println!("unary: {}", reply.into_inner().message);

    let mut stream = client
        .say_hello_stream(HelloRequest {
            name: "stream".into(),
            times: 3,
        })
        .await?
        .into_inner();
    while let Some(reply) = stream.message().await? {
        println!("stream: {}", reply.message);
    }

    let err = client.say_hello(HelloRequest::default()).await.unwrap_err();
    println!("failing call: {:?} {}", err.code(), err.message());

    // Scrape ourselves over HTTP, as Prometheus would, and show the RPC series.
    let scraped = get_metrics(metrics_addr).await?;
    println!("\nGET http://{metrics_addr}/metrics (rpc series):");
    for line in scraped.lines().filter(|l| l.starts_with("rpc_")) {
        if line.contains("_count") || line.contains("active") {
            println!("  {line}");
        }
    }
    Ok(())
}

/// Connects, retrying briefly while the server task starts listening.
async fn connect(
    endpoint: Endpoint,
) -> Result<tonic::transport::Channel, Box<dyn std::error::Error>> {
    let mut last = None;
    for _ in 0..50 {
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Err(last.map_or_else(|| "no connection attempt".into(), Into::into))
}

/// A minimal HTTP/1.1 GET of `/metrics`, retrying while the listener starts.
async fn get_metrics(addr: SocketAddr) -> Result<String, Box<dyn std::error::Error>> {
    let mut stream = None;
    for _ in 0..50 {
        if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
            stream = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut stream = stream.ok_or_else(|| format!("nothing listens on {addr}"))?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut body = Vec::new();
    stream.read_to_end(&mut body).await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}
