//! The dependency: a slow stock service (axum) the backend calls. `GET /stock/{sku}` takes a
//! few milliseconds, or [`SLOW_LOOKUP`] with `?slow=true`; `POST /reserve` refuses more than
//! [`MAX_QUANTITY`] items with 409.

use std::time::Duration;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// How long a slow stock lookup takes: long enough to dominate its trace's waterfall.
pub const SLOW_LOOKUP: Duration = Duration::from_millis(250);

/// The largest quantity a reservation accepts.
pub const MAX_QUANTITY: u64 = 5;

/// The dependency's router: its two routes, `/metrics`, and observe's layer.
pub fn router() -> Router {
    Router::new()
        .route("/stock/{sku}", get(stock))
        .route("/reserve", post(reserve))
        .merge(observe_axum::metrics_router())
        .layer(observe_axum::layer())
}

async fn stock(
    Path(sku): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Json<Value> {
    let slow = q.get("slow").is_some_and(|v| v == "true");
    // A deterministic few milliseconds per item; the slow path is a cold cache.
    let delay = if slow {
        SLOW_LOOKUP
    } else {
        Duration::from_millis(2 + sku.bytes().map(u64::from).sum::<u64>() % 5)
    };
    if slow {
        tracing::warn!(%sku, "cache miss: reading stock from cold storage");
    } else {
        tracing::info!(%sku, "stock lookup");
    }
    tokio::time::sleep(delay).await;
    Json(json!({ "sku": sku, "available": 42 }))
}

async fn reserve(Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let sku = body
        .get("sku")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let quantity = body.get("quantity").and_then(Value::as_u64).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(3)).await;
    if quantity > MAX_QUANTITY {
        tracing::warn!(%sku, quantity, "not enough stock");
        return (
            StatusCode::CONFLICT,
            Json(json!({ "error": "out of stock" })),
        );
    }
    tracing::info!(%sku, quantity, "stock reserved");
    (StatusCode::OK, Json(json!({ "reserved": quantity })))
}
