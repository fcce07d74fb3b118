//! The gateway: an axum service in front of the backend. Every route calls the backend over
//! gRPC through observe's tonic client layer, so one trace runs through all three services.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use observe_axum::TraceId;
use serde_json::{json, Value};
use tonic::transport::{Channel, Endpoint};

use super::pb::orders_client::OrdersClient;
use super::pb::{GetOrderRequest, Order, PlaceOrderRequest};

/// The gRPC client as the gateway holds it: a channel wrapped in observe's client layer.
pub type Backend = OrdersClient<observe_tonic::ClientService<Channel>>;

/// A lazily connecting, instrumented client for the backend at `addr`.
pub fn backend_client(addr: std::net::SocketAddr) -> Result<Backend, tonic::transport::Error> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect_lazy();
    let channel = tower::ServiceBuilder::new()
        .layer(observe_tonic::client_layer())
        .service(channel);
    Ok(OrdersClient::new(channel))
}

/// The gateway's router: the order routes, `/metrics`, and observe's layer over all of them.
pub fn router(backend: Backend) -> Router {
    Router::new()
        .route("/orders/{id}", get(get_order))
        .route("/orders", post(place_order))
        .route("/slow", get(slow))
        .route("/fail", get(fail))
        .with_state(backend)
        .merge(observe_axum::metrics_router())
        // Last, so it wraps every route and the 404 fallback (see observe_axum::layer).
        .layer(observe_axum::layer())
}

fn order_json(o: &Order, trace: TraceId) -> Value {
    json!({ "id": o.id, "sku": o.sku, "quantity": o.quantity, "state": o.state,
            "trace_id": trace.to_string() })
}

/// A gRPC failure as the gateway answers it: the matching HTTP status, and the trace id as a
/// support reference (never the backend's message, which may hold internals).
fn from_status(status: &tonic::Status, trace: TraceId) -> Response {
    let code = match status.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        tonic::Code::FailedPrecondition => StatusCode::CONFLICT,
        tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        tonic::Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if code.is_server_error() {
        tracing::error!(grpc_code = ?status.code(), "backend call failed");
    } else {
        tracing::info!(grpc_code = ?status.code(), "backend refused the request");
    }
    let body = json!({ "error": code.canonical_reason().unwrap_or("error"),
                       "trace_id": trace.to_string() });
    (code, Json(body)).into_response()
}

async fn fetch(mut backend: Backend, req: GetOrderRequest, trace: TraceId) -> Response {
    match backend.get_order(req).await {
        Ok(order) => Json(order_json(&order.into_inner(), trace)).into_response(),
        Err(status) => from_status(&status, trace),
    }
}

async fn get_order(
    State(backend): State<Backend>,
    trace: TraceId,
    Path(id): Path<u64>,
) -> Response {
    tracing::info!(order_id = id, "fetching order");
    fetch(
        backend,
        GetOrderRequest {
            id,
            slow: false,
            fail: false,
        },
        trace,
    )
    .await
}

async fn slow(State(backend): State<Backend>, trace: TraceId) -> Response {
    tracing::info!("fetching an order the slow way");
    fetch(
        backend,
        GetOrderRequest {
            id: 7,
            slow: true,
            fail: false,
        },
        trace,
    )
    .await
}

async fn fail(State(backend): State<Backend>, trace: TraceId) -> Response {
    tracing::info!("fetching an order that fails");
    fetch(
        backend,
        GetOrderRequest {
            id: 13,
            slow: false,
            fail: true,
        },
        trace,
    )
    .await
}

async fn place_order(
    State(mut backend): State<Backend>,
    trace: TraceId,
    Json(body): Json<Value>,
) -> Response {
    let sku = body.get("sku").and_then(Value::as_str).unwrap_or_default();
    let quantity = body
        .get("quantity")
        .and_then(Value::as_u64)
        .and_then(|q| u32::try_from(q).ok());
    let Some(quantity) = quantity.filter(|q| *q > 0 && !sku.is_empty()) else {
        tracing::info!("rejected a malformed order");
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({ "error": "expected {\"sku\": string, \"quantity\": 1..}",
                         "trace_id": trace.to_string() }),
            ),
        )
            .into_response();
    };
    tracing::info!(sku, quantity, "placing order");
    let req = PlaceOrderRequest {
        sku: sku.to_string(),
        quantity,
    };
    match backend.place_order(req).await {
        Ok(order) => (
            StatusCode::CREATED,
            Json(order_json(&order.into_inner(), trace)),
        )
            .into_response(),
        Err(status) => from_status(&status, trace),
    }
}
