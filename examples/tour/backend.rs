//! The backend: a tonic service (`shop.Orders`) that calls the dependency over HTTP through
//! observe's client layer, counts placed orders in a business counter, and injects the
//! configured [`Fault`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use observe_core::metrics::prometheus_client::metrics::counter::Counter;
use observe_core::metrics::prometheus_client::metrics::family::Family;
use observe_core::metrics::{Metrics, RegisterError};
use serde_json::{json, Value};
use tonic::{Request, Response, Status};
use tower::ServiceExt as _;

use super::cli::Fault;
use super::pb::orders_server::{Orders, OrdersServer};
use super::pb::{GetOrderRequest, Order, PlaceOrderRequest};
use super::SLOW_FAULT_DELAY;

/// The HTTP client the backend calls the dependency with: hyper's, in observe's client layer.
pub type HttpClient = observe_core::http::ClientService<Client<HttpConnector, Full<Bytes>>>;

/// `orders_placed_total{outcome}`: `success`, `rejected` (out of stock) or `error` (the
/// dependency failed). The business dashboard reads it.
pub type OrdersPlaced = Family<[(&'static str, &'static str); 1], Counter>;

/// Registers `orders_placed_total` on `metrics` (served on the same `/metrics`), with every
/// outcome at zero so dashboards and ratios see the series from the start.
pub fn register_orders_placed(metrics: &Metrics) -> Result<OrdersPlaced, RegisterError> {
    let family = OrdersPlaced::default();
    for outcome in ["success", "rejected", "error"] {
        drop(family.get_or_create(&[("outcome", outcome)]));
    }
    metrics.register("orders_placed", "Orders placed, by outcome", family.clone())?;
    Ok(family)
}

/// The `shop.Orders` implementation.
#[derive(Clone)]
pub struct Shop {
    http: HttpClient,
    dependency: SocketAddr,
    fault: Fault,
    placed: OrdersPlaced,
    next_id: std::sync::Arc<AtomicU64>,
}

impl Shop {
    /// A shop calling the dependency at `dependency`, with `fault` injected into `GetOrder`.
    pub fn new(dependency: SocketAddr, fault: Fault, placed: OrdersPlaced) -> Shop {
        let client = Client::builder(TokioExecutor::new()).build_http();
        let http = tower::ServiceBuilder::new()
            .layer(observe_core::http::ClientLayer::new())
            .service(client);
        Shop {
            http,
            dependency,
            fault,
            placed,
            next_id: std::sync::Arc::new(AtomicU64::new(1000)),
        }
    }

    /// The tonic service, ready for `Server::builder().add_service(..)`.
    pub fn into_service(self) -> OrdersServer<Shop> {
        OrdersServer::new(self)
    }

    /// One call to the dependency; `Err` when it cannot be reached or does not answer in time.
    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(http::StatusCode, Value), String> {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.dependency))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .map_err(|e| e.to_string())?;
        let call = async {
            let resp = self
                .http
                .clone()
                .oneshot(req)
                .await
                .map_err(|e| e.to_string())?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ))
        };
        tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .unwrap_or_else(|_| Err("timed out after 5 s".into()))
    }
}

fn sku_for(id: u64) -> String {
    format!("sku-{}", id % 7)
}

#[tonic::async_trait]
impl Orders for Shop {
    async fn get_order(&self, req: Request<GetOrderRequest>) -> Result<Response<Order>, Status> {
        let GetOrderRequest { id, slow, fail } = req.into_inner();
        if fail || self.fault == Fault::Fail {
            // Logged with this call's trace id: the same one the gateway logs and returns.
            tracing::error!(
                order_id = id,
                fault = self.fault.as_str(),
                "order store unavailable"
            );
            return Err(Status::internal("order store unavailable"));
        }
        if self.fault == Fault::Slow {
            tracing::warn!(order_id = id, "injected fault: slow order lookup");
            tokio::time::sleep(SLOW_FAULT_DELAY).await;
        }
        if id == 0 || id % 20 == 0 {
            tracing::info!(order_id = id, "no such order");
            return Err(Status::not_found("no such order"));
        }
        let sku = sku_for(id);
        tracing::info!(order_id = id, %sku, "looking up stock");
        let path = format!("/stock/{sku}{}", if slow { "?slow=true" } else { "" });
        match self.call(http::Method::GET, &path, None).await {
            Ok((s, _)) if s.is_success() => Ok(Response::new(Order {
                id,
                sku,
                quantity: 1,
                state: "shipped".into(),
            })),
            Ok((s, _)) => {
                tracing::error!(status = s.as_u16(), "stock lookup failed");
                Err(Status::unavailable("stock lookup failed"))
            }
            Err(e) => {
                tracing::error!(error = %e, "stock service unreachable");
                Err(Status::unavailable("stock service unreachable"))
            }
        }
    }

    async fn place_order(
        &self,
        req: Request<PlaceOrderRequest>,
    ) -> Result<Response<Order>, Status> {
        let PlaceOrderRequest { sku, quantity } = req.into_inner();
        if sku.is_empty() || quantity == 0 {
            return Err(Status::invalid_argument("sku and quantity are required"));
        }
        tracing::info!(%sku, quantity, "reserving stock");
        let reserve = json!({ "sku": sku, "quantity": quantity });
        let outcome = match self
            .call(http::Method::POST, "/reserve", Some(reserve))
            .await
        {
            Ok((s, _)) if s.is_success() => Ok(()),
            Ok((http::StatusCode::CONFLICT, _)) => {
                Err(("rejected", Status::failed_precondition("out of stock")))
            }
            Ok((s, _)) => {
                tracing::error!(status = s.as_u16(), "reservation failed");
                Err(("error", Status::unavailable("reservation failed")))
            }
            Err(e) => {
                tracing::error!(error = %e, "stock service unreachable");
                Err(("error", Status::unavailable("stock service unreachable")))
            }
        };
        match outcome {
            Ok(()) => {
                self.placed.get_or_create(&[("outcome", "success")]).inc();
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                tracing::info!(order_id = id, %sku, quantity, "order placed");
                Ok(Response::new(Order {
                    id,
                    sku,
                    quantity,
                    state: "placed".into(),
                }))
            }
            Err((label, status)) => {
                self.placed.get_or_create(&[("outcome", label)]).inc();
                tracing::warn!(%sku, quantity, outcome = label, "order not placed");
                Err(status)
            }
        }
    }
}
