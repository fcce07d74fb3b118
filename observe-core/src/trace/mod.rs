//! Traces: tracer provider, OTLP export, sampling and drop counting.
//!
//! [`install`] builds the OpenTelemetry SDK tracer provider from a [`Config`]: the resource,
//! an OTLP exporter (gRPC or HTTP/protobuf) behind observe's bounded batch processor (every
//! dropped span counted in [`crate::counters::SPANS_DROPPED`]), and optionally the in-process
//! [`collector`]. It also publishes the two globals the request path reads, [`sampler`] and
//! [`tracer`]. No endpoint and no in-process collector means no provider at all: no thread, no
//! retry, and [`tracer`] returns `None` so the request path creates no span.
//!
//! With `OTEL_TRACES_EXPORTER=console` ([`ExporterKind::Console`](crate::config::ExporterKind))
//! the same batch processor writes each finished sampled span to stdout as one JSON line
//! instead — `trace_id`, `span_id`, `parent_span_id` (`null` for a root), `name`, `kind`,
//! `start_time`, `end_time`, `duration_ms`, `status`, `attributes`, `events` (when kept) and
//! `service.name`, plus `"signal":"span"` to tell them from log lines — escaped like the JSON
//! log lines. For debugging without a collector; no endpoint needed.
//!
//! ```
//! use observe_core::config::Config;
//! use observe_core::trace::{self, Sampler};
//!
//! let guard = trace::install(&Config::default().sampler(Sampler::AlwaysOff)).unwrap();
//! assert_eq!(trace::sampler(), Sampler::AlwaysOff);
//! assert!(trace::tracer().is_none()); // no endpoint, no collector
//! guard.shutdown(std::time::Duration::from_secs(1));
//! ```

pub mod collector;
mod console;
pub mod otlp_logs;
mod processor;

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::Filtered;

use crate::config::{Config, ExporterKind, OtlpCompression, OtlpProtocol, ResolvedOtlp};
use crate::context::{RequestContext, TraceFlags, TraceId};
use crate::init::InitError;
use collector::SpanStore;
use processor::BatchProcessor;

/// The head sampler: decides, without allocating, whether a new trace or a request is sampled.
///
/// The ratio samplers make the same decision as the OpenTelemetry SDK's `TraceIdRatioBased`
/// for the same trace id (the low 8 bytes, shifted right once, against `ratio * 2^63`), so
/// every service in a trace that uses either agrees.
///
/// ```
/// use observe_core::context::{TraceFlags, TraceId};
/// use observe_core::trace::Sampler;
///
/// let id = TraceId::random();
/// assert!(Sampler::ParentBasedAlwaysOff.should_sample(Some(TraceFlags::SAMPLED), id));
/// assert!(!Sampler::ParentBasedAlwaysOn.should_sample(Some(TraceFlags::default()), id));
/// assert!(Sampler::ParentBasedAlwaysOn.should_sample(None, id));
/// assert!(!Sampler::TraceIdRatio(0.0).should_sample(None, id));
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Default)]
pub enum Sampler {
    /// Sample everything.
    AlwaysOn,
    /// Sample nothing.
    AlwaysOff,
    /// Sample this fraction of trace ids, ignoring the parent.
    TraceIdRatio(f64),
    /// Follow the parent; sample roots (the default).
    #[default]
    ParentBasedAlwaysOn,
    /// Follow the parent; never sample roots.
    ParentBasedAlwaysOff,
    /// Follow the parent; sample this fraction of roots.
    ParentBasedTraceIdRatio(f64),
}

impl Sampler {
    /// The decision for a span in trace `trace_id` whose parent (if any) carries `parent_flags`.
    /// Pure arithmetic: no allocation, no lock.
    #[inline]
    pub fn should_sample(self, parent_flags: Option<TraceFlags>, trace_id: TraceId) -> bool {
        match self {
            Sampler::AlwaysOn => true,
            Sampler::AlwaysOff => false,
            Sampler::TraceIdRatio(r) => ratio_decision(r, trace_id),
            Sampler::ParentBasedAlwaysOn => parent_flags.is_none_or(TraceFlags::is_sampled),
            Sampler::ParentBasedAlwaysOff => parent_flags.is_some_and(TraceFlags::is_sampled),
            Sampler::ParentBasedTraceIdRatio(r) => match parent_flags {
                Some(f) => f.is_sampled(),
                None => ratio_decision(r, trace_id),
            },
        }
    }

    /// This service's context for an incoming request or call: the caller's trace continued
    /// under a fresh span id, or a new root trace (random flag set, Trace Context level 2),
    /// with the sampled bit this sampler decides. What the HTTP and gRPC server layers start
    /// every request with; no allocation.
    ///
    /// ```
    /// use observe_core::propagation::TraceParent;
    /// use observe_core::trace::Sampler;
    /// let tp = TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
    /// let cx = Sampler::ParentBasedAlwaysOn.request_context(Some(&tp));
    /// assert_eq!(cx.trace_id, tp.trace_id);
    /// assert_ne!(cx.span_id, tp.parent_id);
    /// assert!(!cx.is_sampled(), "the caller did not sample");
    /// let root = Sampler::ParentBasedAlwaysOn.request_context(None);
    /// assert!(root.is_sampled() && root.flags.is_random());
    /// ```
    #[inline]
    pub fn request_context(
        self,
        parent: Option<&crate::propagation::TraceParent>,
    ) -> RequestContext {
        match parent {
            Some(p) => p.child_context(self.should_sample(Some(p.flags), p.trace_id)),
            None => {
                let trace_id = TraceId::random();
                let sampled = self.should_sample(None, trace_id);
                RequestContext::new(
                    trace_id,
                    crate::context::SpanId::random(),
                    TraceFlags::RANDOM.with_sampled(sampled),
                )
            }
        }
    }

    /// The ratio of a ratio-based sampler.
    ///
    /// ```
    /// # use observe_core::trace::Sampler;
    /// assert_eq!(Sampler::TraceIdRatio(0.5).ratio(), Some(0.5));
    /// assert_eq!(Sampler::AlwaysOn.ratio(), None);
    /// ```
    pub fn ratio(self) -> Option<f64> {
        match self {
            Sampler::TraceIdRatio(r) | Sampler::ParentBasedTraceIdRatio(r) => Some(r),
            _ => None,
        }
    }

    /// The equivalent OpenTelemetry SDK sampler (what spans started by users' `tracing` spans
    /// outside any request are sampled with).
    ///
    /// ```
    /// # use observe_core::trace::Sampler;
    /// let sdk = Sampler::TraceIdRatio(0.5).to_sdk();
    /// assert!(format!("{sdk:?}").contains("TraceIdRatioBased"));
    /// ```
    pub fn to_sdk(self) -> opentelemetry_sdk::trace::Sampler {
        use opentelemetry_sdk::trace::Sampler as S;
        match self {
            Sampler::AlwaysOn => S::AlwaysOn,
            Sampler::AlwaysOff => S::AlwaysOff,
            Sampler::TraceIdRatio(r) => S::TraceIdRatioBased(r),
            Sampler::ParentBasedAlwaysOn => S::ParentBased(Box::new(S::AlwaysOn)),
            Sampler::ParentBasedAlwaysOff => S::ParentBased(Box::new(S::AlwaysOff)),
            Sampler::ParentBasedTraceIdRatio(r) => {
                S::ParentBased(Box::new(S::TraceIdRatioBased(r)))
            }
        }
    }
}

#[inline]
fn ratio_decision(ratio: f64, trace_id: TraceId) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    // Same arithmetic as opentelemetry_sdk's TraceIdRatioBased, so decisions agree.
    let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id.0[8..]);
    (u64::from_be_bytes(low) >> 1) < bound
}

// The globals the request path reads. Each install leaks one small value (a `Sampler`, an
// `SdkTracer` handle) so readers get a `'static` reference with a single atomic load; installs
// happen once per process in practice, a few times in tests.
static SAMPLER: AtomicPtr<Sampler> = AtomicPtr::new(std::ptr::null_mut());
static TRACER: AtomicPtr<SdkTracer> = AtomicPtr::new(std::ptr::null_mut());
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The sampler installed by [`install`] (`ParentBasedAlwaysOn` before any install).
///
/// ```
/// # use observe_core::trace::{self, Sampler};
/// assert_eq!(trace::sampler(), Sampler::ParentBasedAlwaysOn);
/// ```
#[inline]
pub fn sampler() -> Sampler {
    let p = SAMPLER.load(Ordering::Acquire);
    if p.is_null() {
        Sampler::default()
    } else {
        // SAFETY: non-null values are leaked `Box<Sampler>`s, never freed.
        unsafe { *p }
    }
}

/// The SDK tracer spans are created on, or `None` when tracing is not installed (or was
/// installed with neither an exporter nor an in-process collector).
///
/// ```
/// assert!(observe_core::trace::tracer().is_none());
/// ```
#[inline]
pub fn tracer() -> Option<&'static SdkTracer> {
    let p = TRACER.load(Ordering::Acquire);
    // SAFETY: non-null values are leaked `Box<SdkTracer>`s, never freed.
    unsafe { p.as_ref() }
}

fn publish_sampler(s: Sampler) {
    SAMPLER.store(Box::into_raw(Box::new(s)), Ordering::Release);
}

/// Keeps the tracer provider alive; [`TraceGuard::shutdown`] flushes it.
///
/// Dropping it shuts down with a 5 s timeout.
#[must_use = "dropping the guard shuts tracing down"]
pub struct TraceGuard {
    provider: Option<SdkTracerProvider>,
    processor: Option<Arc<BatchProcessor>>,
    done: bool,
}

impl std::fmt::Debug for TraceGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceGuard")
            .field("provider", &self.provider.is_some())
            .finish()
    }
}

/// What a shutdown achieved.
///
/// ```
/// # use observe_core::{config::Config, trace};
/// let report = trace::install(&Config::default()).unwrap().shutdown(std::time::Duration::from_secs(1));
/// assert_eq!(report.spans_dropped, 0);
/// assert!(!report.timed_out);
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Spans the exporter accepted over the provider's lifetime.
    pub spans_exported: u64,
    /// Spans still queued or in flight when the timeout passed (also counted in
    /// [`crate::counters::SPANS_DROPPED`]).
    pub spans_dropped: u64,
    /// Whether the timeout passed before everything was delivered.
    pub timed_out: bool,
    /// Log records still queued when the timeout passed (OTLP logs only; filled in by
    /// [`crate::init::Guard::shutdown`]).
    pub log_records_dropped: u64,
}

impl TraceGuard {
    /// The SDK provider, when one was built (e.g. to create tracers with another scope).
    pub fn provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }

    /// Flushes every finished span within `timeout`, then stops export. Returns on time even
    /// when the collector hangs; what could not be delivered is reported and counted.
    pub fn shutdown(mut self, timeout: Duration) -> ShutdownReport {
        self.shutdown_inner(timeout)
    }

    fn shutdown_inner(&mut self, timeout: Duration) -> ShutdownReport {
        if self.done {
            return ShutdownReport::default();
        }
        self.done = true;
        // Readers stop creating spans on this provider first.
        TRACER.store(std::ptr::null_mut(), Ordering::Release);
        collector::set_global(None);
        let mut report = ShutdownReport::default();
        if let Some(p) = &self.processor {
            let r = p.shutdown_report(timeout);
            report.spans_dropped = r.dropped;
            report.timed_out = r.timed_out;
            report.spans_exported = p.delivered();
        }
        if let Some(provider) = self.provider.take() {
            // Our processor is already shut down; this only releases the SDK's side.
            let _ = provider.shutdown_with_timeout(Duration::from_millis(100));
        }
        INSTALLED.store(false, Ordering::Release);
        report
    }
}

impl Drop for TraceGuard {
    fn drop(&mut self) {
        self.shutdown_inner(Duration::from_secs(5));
    }
}

/// Hands the provider a processor while the guard keeps a handle to it for reporting.
///
/// It also redacts, by name, the attributes and event attributes of every finished span:
/// `tracing-opentelemetry` turns users' span fields and events (`password = %pw`) into
/// attributes verbatim, and the JSON log layer's redaction must hold for exported spans too.
/// Unless `Config::span_events` is on, exported spans lose their span events:
/// `tracing-opentelemetry` records every event inside a sampled span as one, which duplicates
/// the JSON log lines in the trace backend and costs export bandwidth. The in-process store
/// keeps them (the status page shows a span's first log lines in its waterfall).
#[derive(Debug)]
struct SharedProcessor(Arc<BatchProcessor>, crate::logs::Redactor, bool);

impl SharedProcessor {
    fn redact(&self, span: &mut opentelemetry_sdk::trace::SpanData) {
        let redact = |attrs: &mut Vec<KeyValue>| {
            for kv in attrs.iter_mut() {
                if self.1.is_redacted(kv.key.as_str()) {
                    kv.value = crate::logs::REDACTED.into();
                }
            }
        };
        redact(&mut span.attributes);
        for event in span.events.events.iter_mut() {
            redact(&mut event.attributes);
        }
    }
}

impl opentelemetry_sdk::trace::SpanProcessor for SharedProcessor {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.0.on_start(span, cx)
    }
    fn on_end(&self, mut span: opentelemetry_sdk::trace::SpanData) {
        self.redact(&mut span);
        self.0.record(span, self.2)
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
}

/// The installed span processor, for [`export_queue_use`]; weak, so shutdown frees it.
static EXPORT_QUEUE: std::sync::Mutex<Option<std::sync::Weak<BatchProcessor>>> =
    std::sync::Mutex::new(None);

/// How full the span export queue is: `(queued spans, queue bound)`, or `None` when no
/// exporter is running (nothing installed, no endpoint, or shut down). Read at scrape or page
/// time, never on the request path.
///
/// ```
/// // No exporter in this process.
/// assert_eq!(observe_core::trace::export_queue_use(), None);
/// ```
pub fn export_queue_use() -> Option<(usize, usize)> {
    let guard = EXPORT_QUEUE.lock().unwrap_or_else(|e| e.into_inner());
    guard.as_ref()?.upgrade()?.queue_use()
}

/// Spans the in-process store keeps when only the status page asks for one.
///
/// ```
/// assert!(observe_core::trace::DEFAULT_STATUS_SPAN_STORE >= 1024);
/// ```
pub const DEFAULT_STATUS_SPAN_STORE: usize = 2048;

/// Builds the tracer provider described by `config` and publishes [`sampler`] and [`tracer`].
///
/// Errors: [`InitError::AlreadyInitialized`] while a previous install's guard is alive,
/// [`InitError::Config`] for invalid settings, [`InitError::Exporter`] when the exporter
/// cannot be built. An unreachable collector is not an error: spans are dropped and counted.
///
/// ```no_run
/// # use observe_core::{config::Config, trace};
/// let guard = trace::install(&Config::default().otlp_endpoint("http://127.0.0.1:4317"))?;
/// assert!(trace::tracer().is_some());
/// # Ok::<(), observe_core::init::InitError>(())
/// ```
pub fn install(config: &Config) -> Result<TraceGuard, InitError> {
    install_with_resource(config, &resource(config))
}

/// [`install`] with the [`resource`] already computed (by `init`, which also gives it to
/// `target_info` and the log exporter).
pub(crate) fn install_with_resource(
    config: &Config,
    resource: &Resource,
) -> Result<TraceGuard, InitError> {
    config.validate().map_err(InitError::Config)?;
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return Err(InitError::AlreadyInitialized);
    }
    match build(config, resource) {
        Ok(guard) => Ok(guard),
        Err(e) => {
            INSTALLED.store(false, Ordering::Release);
            Err(e)
        }
    }
}

fn build(config: &Config, resource: &Resource) -> Result<TraceGuard, InitError> {
    let sampler = if config.sdk_disabled {
        Sampler::AlwaysOff
    } else {
        config.sampler
    };
    publish_sampler(sampler);
    let otlp = config.traces_otlp();
    let console = !config.sdk_disabled && config.traces_exporter == ExporterKind::Console;
    // The status page shows recent traces from the in-process store, so enabling it implies
    // a store (of the default size unless one is configured).
    let store_capacity = config
        .span_collector
        .or(config.status_page.then_some(DEFAULT_STATUS_SPAN_STORE));
    let store = match store_capacity {
        Some(cap) if !config.sdk_disabled => Some(Arc::new(SpanStore::new(cap))),
        _ => None,
    };
    if otlp.is_none() && !console && store.is_none() {
        return Ok(TraceGuard {
            provider: None,
            processor: None,
            done: false,
        });
    }
    let processor = match otlp {
        Some(otlp) => {
            let timeout = otlp.timeout;
            BatchProcessor::spawn(
                config.batch.clone(),
                resource.clone(),
                store.clone(),
                move || build_exporter(&otlp),
            )
            .map_err(|e| InitError::Exporter(format!("{e} (timeout {timeout:?})")))?
        }
        None if console => BatchProcessor::spawn(
            config.batch.clone(),
            resource.clone(),
            store.clone(),
            || Ok(console::ConsoleExporter::new(crate::logs::Stdout)),
        )
        .map_err(InitError::Exporter)?,
        None => BatchProcessor::store_only(store.clone().expect("checked above")),
    };
    let processor = Arc::new(processor);
    *EXPORT_QUEUE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::downgrade(&processor));
    let mut builder = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_sampler(sampler.to_sdk())
        .with_span_processor(SharedProcessor(
            Arc::clone(&processor),
            crate::logs::Redactor::none().with_fields(&config.redact_fields),
            config.span_events,
        ));
    // The status page's recent slow/failed rings are fed span by span, so a page view never
    // scans the store under its lock.
    let status_page = crate::status::StatusPage::from_config(config);
    if let Some(page) = &status_page {
        builder = builder.with_span_processor(page.recent().processor());
    }
    let provider = builder.build();
    let tracer = provider.tracer("observe");
    TRACER.store(Box::into_raw(Box::new(tracer)), Ordering::Release);
    collector::set_global(store);
    if let Some(page) = status_page {
        crate::status::set_global(page);
    }
    Ok(TraceGuard {
        provider: Some(provider),
        processor: Some(processor),
        done: false,
    })
}

fn build_exporter(otlp: &ResolvedOtlp) -> Result<opentelemetry_otlp::SpanExporter, String> {
    use opentelemetry_otlp::SpanExporter;
    let result = match otlp.protocol {
        OtlpProtocol::Grpc => {
            with_tonic_settings(SpanExporter::builder().with_tonic(), otlp)?.build()
        }
        OtlpProtocol::HttpProtobuf => {
            with_http_settings(SpanExporter::builder().with_http(), otlp).build()
        }
    };
    result.map_err(|e| format!("cannot build the OTLP exporter for {}: {e}", otlp.endpoint))
}

/// A gRPC exporter builder of any signal (spans, logs) with `otlp`'s settings: endpoint,
/// timeout, headers as metadata, compression, no retries. Errors name a header that cannot
/// be gRPC metadata.
fn with_tonic_settings<B>(builder: B, otlp: &ResolvedOtlp) -> Result<B, String>
where
    B: WithExportConfig + WithTonicConfig,
{
    let builder = builder
        .with_endpoint(otlp.endpoint.clone())
        .with_timeout(otlp.timeout)
        .with_metadata(metadata(otlp)?)
        .with_retry_policy(no_retries());
    Ok(match compression(otlp) {
        Some(c) => builder.with_compression(c),
        None => builder,
    })
}

/// An HTTP exporter builder of any signal (spans, logs) with `otlp`'s settings: endpoint,
/// protobuf encoding, timeout, headers, compression, no retries.
fn with_http_settings<B>(builder: B, otlp: &ResolvedOtlp) -> B
where
    B: WithExportConfig + WithHttpConfig,
{
    let builder = builder
        .with_endpoint(otlp.endpoint.clone())
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_timeout(otlp.timeout)
        .with_headers(otlp.headers.0.iter().cloned().collect())
        .with_retry_policy(no_retries());
    match compression(otlp) {
        Some(c) => builder.with_compression(c),
        None => builder,
    }
}

/// One attempt per batch: the batch processor's queue is the buffer, and retrying inside an
/// export only holds the export thread while the queue overflows (a retry storm when the
/// collector is down).
fn no_retries() -> opentelemetry_otlp::RetryPolicy {
    opentelemetry_otlp::RetryPolicy::disabled()
}

fn compression(otlp: &ResolvedOtlp) -> Option<opentelemetry_otlp::Compression> {
    match otlp.compression {
        OtlpCompression::Gzip => Some(opentelemetry_otlp::Compression::Gzip),
        OtlpCompression::None => None,
    }
}

/// OTLP headers as gRPC metadata. Errors name the header, never its value (a credential).
fn metadata(
    otlp: &ResolvedOtlp,
) -> Result<opentelemetry_otlp::tonic_types::metadata::MetadataMap, String> {
    let mut headers = http::HeaderMap::new();
    for (k, v) in &otlp.headers.0 {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("invalid OTLP header name {k:?}"))?;
        let value = http::HeaderValue::from_str(v)
            .map_err(|_| format!("invalid value for OTLP header {k:?}"))?;
        headers.append(name, value);
    }
    Ok(opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers))
}

/// The resource every span carries: service identity, host and process, SDK, and the
/// configured attributes.
pub(crate) fn resource(config: &Config) -> Resource {
    let mut attrs = vec![
        KeyValue::new("service.name", config.effective_service_name().to_string()),
        KeyValue::new("service.instance.id", instance_id().to_string()),
        KeyValue::new("process.pid", i64::from(std::process::id())),
    ];
    if let Some(v) = &config.service_version {
        attrs.push(KeyValue::new("service.version", v.clone()));
    }
    if let Some(v) = &config.deployment_environment {
        attrs.push(KeyValue::new("deployment.environment.name", v.clone()));
    }
    if let Some(h) = host_name() {
        attrs.push(KeyValue::new("host.name", h));
    }
    for (k, v) in &config.resource_attributes {
        attrs.push(KeyValue::new(k.clone(), v.clone()));
    }
    // builder_empty: the default builder would read OTEL_* from the process environment
    // behind the back of Config's injectable lookup.
    Resource::builder_empty()
        .with_detector(Box::new(
            opentelemetry_sdk::resource::TelemetryResourceDetector,
        ))
        .with_attributes(attrs)
        .build()
}

/// This process's `service.instance.id`: a random UUID (version 4 layout), made once so that
/// spans, log records and `target_info` all name the same instance.
pub fn instance_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(new_instance_id)
}

fn new_instance_id() -> String {
    let mut b: [u8; 16] = TraceId::random().0;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = TraceId(b).to_string();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let s = std::str::from_utf8(&buf[..end]).ok()?;
    (!s.is_empty()).then(|| s.to_string())
}

fn sampled_or_outside_request() -> bool {
    RequestContext::current().is_none_or(|cx| cx.is_sampled())
}

/// The per-layer filter of [`otel_layer`]: enabled outside requests and inside sampled ones.
///
/// The answer depends on the request being polled, not on the callsite, so every callsite is
/// `Interest::sometimes()`: a cached `always`/`never` would freeze the first request's
/// decision for every later one.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use observe_core::context::RequestContext;
/// use observe_core::trace::SampledRequestsOnly;
/// use tracing_subscriber::layer::{Layer, SubscriberExt};
///
/// static SPANS: AtomicUsize = AtomicUsize::new(0);
/// struct Count;
/// impl<S: tracing::Subscriber> Layer<S> for Count {
///     fn on_new_span(&self, _: &tracing::span::Attributes<'_>, _: &tracing::span::Id,
///                    _: tracing_subscriber::layer::Context<'_, S>) {
///         SPANS.fetch_add(1, Ordering::Relaxed);
///     }
/// }
/// let subscriber = tracing_subscriber::registry().with(Count.with_filter(SampledRequestsOnly));
/// tracing::subscriber::with_default(subscriber, || {
///     for sampled in [false, true, false] {
///         let _request = RequestContext::new_root(sampled).enter();
///         let _span = tracing::info_span!("user work").entered(); // same callsite each time
///     }
/// });
/// assert_eq!(SPANS.load(Ordering::Relaxed), 1, "only the sampled request's span");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SampledRequestsOnly;

impl<S: tracing::Subscriber> tracing_subscriber::layer::Filter<S> for SampledRequestsOnly {
    fn enabled(
        &self,
        _meta: &tracing::Metadata<'_>,
        _cx: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        sampled_or_outside_request()
    }

    fn callsite_enabled(
        &self,
        _meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
}

/// The type of [`otel_layer`].
pub type OtelLayer<S> =
    Filtered<tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>, SampledRequestsOnly, S>;

/// The `tracing-opentelemetry` layer on the installed tracer, behind a per-layer filter that
/// turns it off inside unsampled requests: users' spans there neither export nor start a new
/// trace. `None` when no tracer is installed.
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
/// let layer = observe_core::trace::otel_layer(); // None: nothing installed here
/// let _subscriber = tracing_subscriber::registry().with(layer);
/// ```
pub fn otel_layer<S>() -> Option<OtelLayer<S>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer as _;
    let tracer = tracer()?.clone();
    Some(tracing_opentelemetry::OpenTelemetryLayer::new(tracer).with_filter(SampledRequestsOnly))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_agrees_with_sdk() {
        use opentelemetry::trace::{SpanKind, TraceId as OtelTraceId};
        use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample};
        for ratio in [0.0, 0.001, 0.1, 0.25, 0.5, 0.75, 0.999, 1.0] {
            let sdk = opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(ratio);
            let mut sampled = 0;
            for _ in 0..20_000 {
                let id = TraceId::random();
                let ours = Sampler::TraceIdRatio(ratio).should_sample(None, id);
                let theirs = sdk
                    .should_sample(
                        None,
                        OtelTraceId::from(id),
                        "s",
                        &SpanKind::Server,
                        &[],
                        &[],
                    )
                    .decision
                    == SamplingDecision::RecordAndSample;
                assert_eq!(ours, theirs, "ratio {ratio} id {id}");
                sampled += usize::from(ours);
            }
            let observed = sampled as f64 / 20_000.0;
            assert!((observed - ratio).abs() < 0.02, "ratio {ratio}: {observed}");
        }
    }

    #[test]
    fn parent_based_follows_parent() {
        let id = TraceId::random();
        let on = Some(TraceFlags::SAMPLED);
        let off = Some(TraceFlags::default());
        for s in [
            Sampler::ParentBasedAlwaysOn,
            Sampler::ParentBasedAlwaysOff,
            Sampler::ParentBasedTraceIdRatio(0.0),
            Sampler::ParentBasedTraceIdRatio(1.0),
        ] {
            assert!(s.should_sample(on, id), "{s:?}");
            assert!(!s.should_sample(off, id), "{s:?}");
        }
        assert!(Sampler::ParentBasedAlwaysOn.should_sample(None, id));
        assert!(!Sampler::ParentBasedAlwaysOff.should_sample(None, id));
        assert!(!Sampler::ParentBasedTraceIdRatio(0.0).should_sample(None, id));
        assert!(Sampler::ParentBasedTraceIdRatio(1.0).should_sample(None, id));
        // Non-parent-based samplers ignore the parent.
        assert!(Sampler::AlwaysOn.should_sample(off, id));
        assert!(!Sampler::AlwaysOff.should_sample(on, id));
        assert!(Sampler::TraceIdRatio(1.0).should_sample(off, id));
        assert!(!Sampler::TraceIdRatio(0.0).should_sample(on, id));
    }

    #[test]
    fn instance_id_is_uuid_v4_shaped_and_one_per_process() {
        let id = new_instance_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(new_instance_id(), id);
        // Spans, log records and target_info must all name the same instance.
        assert_eq!(instance_id(), instance_id());
        assert_eq!(instance_id().len(), 36);
    }
}
