//! The outbound HTTP client: one pooled client for every endpoint, redirects
//! never followed (a redirect is an answer, not a new target), no proxy,
//! connections through the SSRF guard, answers read up to a cap.
//!
//! It is `hyper`'s own client with our resolver and `rustls` (Mozilla's
//! roots, HTTP/2 where the endpoint offers it over TLS): a higher-level
//! client's redirect, retry and URL layers were a tenth of the engine's
//! CPU when fanning out, and this needs none of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use herald_core::model::AttemptError;
use http::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, RETRY_AFTER, USER_AGENT};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::ssrf::{Blocked, Guard, GuardedResolver};
use crate::DeliveryError;

/// What came back from one request.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: Option<u16>,
    pub(crate) body: String,
    pub(crate) duration: Duration,
    pub(crate) error: Option<AttemptError>,
    /// How long a `429` or `503` asked us to wait (`Retry-After`).
    pub(crate) retry_after: Option<Duration>,
}

type Connector = HttpsConnector<HttpConnector<GuardedResolver>>;

pub(crate) struct Client {
    http: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    guard: Arc<Guard>,
    timeout: Duration,
    body_cap: usize,
    /// What each endpoint URL seen lately comes to (see [`Client::target`]).
    targets: Mutex<HashMap<String, Target>>,
}

/// Most URLs [`Client::target`] remembers; past it, it starts over.
const TARGETS: usize = 4096;

/// Longer URLs are worked out at every attempt instead of remembered, so
/// the targets stay a few MiB however long the URLs endpoints may have.
const REMEMBERED_URL_LEN: usize = 2048;

/// Where requests for one URL go, or why none can: the parsed URI and the
/// `Authorization` its credentials make, or the failure to report.
type Target = Result<(http::Uri, Option<HeaderValue>), (AttemptError, String)>;

const AGENT: HeaderValue =
    HeaderValue::from_static(concat!("Herald-Webhooks/", env!("CARGO_PKG_VERSION")));

impl Client {
    /// A client trusting Mozilla's roots and `extra_roots` (DER), for
    /// endpoints whose certificates come from a private authority.
    pub(crate) fn new(
        guard: Guard,
        timeout: Duration,
        body_cap: usize,
        extra_roots: &[Vec<u8>],
    ) -> Result<Self, DeliveryError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for root in extra_roots {
            roots
                .add(rustls::pki_types::CertificateDer::from(root.clone()))
                .map_err(|error| {
                    DeliveryError::Client(format!("an extra root certificate: {error}"))
                })?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|error| DeliveryError::Client(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self::with_tls(guard, timeout, body_cap, tls))
    }

    /// A client trusting what `tls` trusts (tests use their own authority).
    fn with_tls(
        guard: Guard,
        timeout: Duration,
        body_cap: usize,
        tls: rustls::ClientConfig,
    ) -> Self {
        let guard = Arc::new(guard);
        let mut connector = HttpConnector::new_with_resolver(GuardedResolver::new(guard.clone()));
        // https URLs go through the TLS layer below.
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        // A pooled connection whose peer vanished is found out by the
        // kernel, not by the next delivery's timeout.
        connector.set_keepalive(Some(Duration::from_secs(15)));
        connector.set_keepalive_interval(Some(Duration::from_secs(15)));
        connector.set_keepalive_retries(Some(3));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(connector);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Self {
            http,
            guard,
            timeout,
            body_cap,
            targets: Mutex::new(HashMap::new()),
        }
    }

    /// `url`'s target, worked out once per URL while remembered: parsing and checking it
    /// again for every attempt was a tenth of an attempt's own work. Only
    /// the URL's text decides it (the guard's literal check; names are
    /// resolved and checked per connection), so a remembered one stays right.
    fn target(&self, url: &str) -> Target {
        let lock = || {
            self.targets
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        if let Some(known) = lock().get(url) {
            return known.clone();
        }
        let target = self.work_out(url);
        if url.len() > REMEMBERED_URL_LEN {
            return target;
        }
        let mut targets = lock();
        if targets.len() >= TARGETS {
            targets.clear();
        }
        targets.insert(url.to_owned(), target.clone());
        target
    }

    fn work_out(&self, url: &str) -> Target {
        let invalid = |error: &dyn std::fmt::Display| {
            (AttemptError::Connection, format!("invalid url: {error}"))
        };
        let mut parsed = url::Url::parse(url).map_err(|error| invalid(&error))?;
        self.guard
            .check_literal(&parsed)
            .map_err(|blocked| (AttemptError::SsrfBlocked, blocked.to_string()))?;
        // Credentials in the URL go in an `Authorization` header, never in
        // the request's authority (HTTP/2 would send them as `:authority`).
        let credentials = basic_auth(&mut parsed);
        let uri = http::Uri::try_from(parsed.as_str()).map_err(|error| invalid(&error))?;
        Ok((uri, credentials))
    }

    /// POSTs `body` to `url`; never fails, every problem is an outcome.
    pub(crate) async fn post(&self, url: &str, headers: HeaderMap, body: Bytes) -> Response {
        let started = Instant::now();
        let failed = |error: AttemptError, detail: String| Response {
            status: None,
            body: detail,
            duration: started.elapsed(),
            error: Some(error),
            retry_after: None,
        };
        let (uri, credentials) = match self.target(url) {
            Ok(target) => target,
            Err((error, detail)) => return failed(error, detail),
        };
        let mut request = http::Request::new(Full::new(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let headers = request.headers_mut();
        headers.entry(USER_AGENT).or_insert(AGENT);
        headers
            .entry(ACCEPT)
            .or_insert(HeaderValue::from_static("*/*"));
        if let Some(credentials) = credentials {
            headers.insert(AUTHORIZATION, credentials);
        }
        // From connecting to the end of the answer's body; an answer whose
        // body is late keeps its status.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let response = match tokio::time::timeout_at(deadline, self.http.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return failed(classify(&error), describe(&error)),
            Err(_) => {
                let waited = self.timeout.as_millis();
                return failed(
                    AttemptError::Timeout,
                    format!("no answer within {waited} ms"),
                );
            }
        };
        let status = response.status().as_u16();
        let retry_after = match status {
            429 | 503 => response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, SystemTime::now())),
            _ => None,
        };
        let mut answer = response.into_body();
        let mut body = Vec::new();
        let mut error = None;
        while body.len() < self.body_cap {
            match tokio::time::timeout_at(deadline, answer.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(chunk) = frame.data_ref() {
                        body.extend_from_slice(chunk);
                    }
                }
                Ok(None) => break,
                Ok(Some(Err(read_error))) => {
                    error = Some(classify(&read_error));
                    break;
                }
                Err(_) => {
                    error = Some(AttemptError::Timeout);
                    break;
                }
            }
        }
        body.truncate(self.body_cap);
        Response {
            status: Some(status),
            body: String::from_utf8_lossy(&body).into_owned(),
            duration: started.elapsed(),
            error,
            retry_after,
        }
    }
}

/// Takes the user name and password (as written, percent-encoded) out of
/// `url`; `None` when it has neither.
pub(crate) fn take_credentials(url: &mut url::Url) -> Option<(String, String)> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let taken = (
        url.username().to_owned(),
        url.password().unwrap_or_default().to_owned(),
    );
    // Neither can fail on a URL with a host, which every endpoint has.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some(taken)
}

/// Takes the user name and password out of `url`, as the value of an
/// `Authorization: Basic` header (what a client does with `user:pass@`).
fn basic_auth(url: &mut url::Url) -> Option<HeaderValue> {
    let (user, password) = take_credentials(url)?;
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .into_owned()
    };
    let (user, password) = (decode(&user), decode(&password));
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::try_from(format!("Basic {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3); a
/// date in the past means "now".
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Maps a client error onto the attempt log's error kinds.
fn classify(error: &(dyn std::error::Error + 'static)) -> AttemptError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut connecting = false;
    while let Some(current) = cause {
        if current.downcast_ref::<Blocked>().is_some() {
            return AttemptError::SsrfBlocked;
        }
        if current.downcast_ref::<rustls::Error>().is_some() {
            return AttemptError::Tls;
        }
        // An I/O error's `source` skips the error it wraps, and the TLS
        // layer wraps its errors in two: look inside each.
        let mut io = current.downcast_ref::<std::io::Error>();
        while let Some(error) = io {
            match error.kind() {
                std::io::ErrorKind::ConnectionRefused => return AttemptError::ConnectionRefused,
                std::io::ErrorKind::TimedOut => return AttemptError::Timeout,
                _ => {}
            }
            let inner = error.get_ref();
            if inner.is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) {
                return AttemptError::Tls;
            }
            io = inner.and_then(|inner| inner.downcast_ref::<std::io::Error>());
        }
        if let Some(client) = current.downcast_ref::<hyper_util::client::legacy::Error>() {
            connecting |= client.is_connect();
        }
        if let Some(hyper) = current.downcast_ref::<hyper::Error>() {
            if hyper.is_timeout() {
                return AttemptError::Timeout;
            }
        }
        cause = current.source();
    }
    if connecting {
        let text = describe(error).to_ascii_lowercase();
        if text.contains("dns") || text.contains("lookup") || text.contains("resolve") {
            AttemptError::Dns
        } else if text.contains("certificate") || text.contains("tls") {
            AttemptError::Tls
        } else {
            AttemptError::Connection
        }
    } else {
        AttemptError::InvalidResponse
    }
}

/// The error with its causes, for the attempt log (no secrets are in it:
/// only the URL the tenant configured and network errors).
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A listener on loopback that treats each connection with `serve`.
    async fn listener<F, Fut>(serve: F) -> std::net::SocketAddr
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                serve(stream).await;
            }
        });
        address
    }

    /// A client that may reach loopback.
    fn client(timeout: Duration) -> Client {
        let guard = Guard::new(vec!["127.0.0.0/8".parse().expect("a network")]);
        Client::new(guard, timeout, 64, &[]).expect("a client")
    }

    /// Long enough for anything a loaded machine does on loopback.
    const PATIENT: Duration = Duration::from_secs(30);

    async fn post(client: &Client, url: &str) -> Response {
        client
            .post(url, HeaderMap::new(), Bytes::from_static(b"{}"))
            .await
    }

    /// Reads a request's head (these requests are small) and answers it.
    async fn answer(mut stream: tokio::net::TcpStream, with: &[u8]) -> String {
        answer_on(&mut stream, with).await
    }

    async fn answer_on(stream: &mut tokio::net::TcpStream, with: &[u8]) -> String {
        let mut request = vec![0; 4096];
        let read = stream.read(&mut request).await.unwrap_or(0);
        let _ = stream.write_all(with).await;
        String::from_utf8_lossy(&request[..read]).into_owned()
    }

    /// Answers `with` (which may be nothing, or a head without all of its
    /// body) and then holds the connection open without another byte.
    fn stall(mut stream: tokio::net::TcpStream, with: &'static [u8]) {
        tokio::spawn(async move {
            answer_on(&mut stream, with).await;
            std::future::pending::<()>().await;
        });
    }

    #[tokio::test]
    async fn answers_are_read_up_to_the_cap_with_their_retry_after() {
        let address = listener(|stream| async move {
            let body = "x".repeat(100);
            let reply = format!(
                "HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            answer(stream, reply.as_bytes()).await;
        })
        .await;
        let response = post(&client(PATIENT), &format!("http://{address}/hook")).await;
        assert_eq!(response.status, Some(429));
        assert_eq!(response.error, None);
        assert_eq!(response.body, "x".repeat(64), "cut at the cap");
        assert_eq!(response.retry_after, Some(Duration::from_secs(7)));
    }

    #[tokio::test]
    async fn credentials_in_the_url_become_basic_auth() {
        let (heads, mut head) = tokio::sync::mpsc::unbounded_channel();
        let address = listener(move |stream| {
            let heads = heads.clone();
            async move {
                let request = answer(
                    stream,
                    b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
                )
                .await;
                let _ = heads.send(request);
            }
        })
        .await;
        let port = address.port();
        let client = client(PATIENT);
        let url = format!("http://us%40er:p%3Ass@127.0.0.1:{port}/hook");
        // The second time from the target the client remembers.
        for _ in 0..2 {
            let response = post(&client, &url).await;
            assert_eq!(response.status, Some(204), "{}", response.body);
            let request = head.recv().await.expect("the request's head");
            let expected = base64::engine::general_purpose::STANDARD.encode("us@er:p:ss");
            assert!(
                request.contains(&format!("authorization: Basic {expected}\r\n")),
                "{request}"
            );
            assert!(request.starts_with("POST /hook HTTP/1.1\r\n"), "{request}");
            assert!(
                request.contains(&format!("host: 127.0.0.1:{port}\r\n")),
                "{request}"
            );
            assert!(
                !request.contains("p%3Ass") && !request.contains("us%40er"),
                "{request}"
            );
        }
    }

    #[tokio::test]
    async fn an_answer_whose_body_is_late_keeps_its_status() {
        let address = listener(|stream| async move {
            stall(
                stream,
                b"HTTP/1.1 410 Gone\r\ncontent-length: 100\r\n\r\nabc",
            );
        })
        .await;
        let response = post(
            &client(Duration::from_millis(500)),
            &format!("http://{address}/hook"),
        )
        .await;
        assert_eq!(response.status, Some(410));
        assert_eq!(response.error, Some(AttemptError::Timeout));
        assert_eq!(response.body, "abc");
    }

    #[tokio::test]
    async fn failures_are_told_apart() {
        // Accepts and never answers.
        let silent = listener(|stream| async move { stall(stream, b"") }).await;
        let timeout = post(
            &client(Duration::from_millis(500)),
            &format!("http://{silent}/hook"),
        )
        .await;
        assert_eq!(
            timeout.error,
            Some(AttemptError::Timeout),
            "{}",
            timeout.body
        );
        assert_eq!(timeout.status, None);

        let patient = client(PATIENT);
        // Answers something that is not HTTP.
        let garbled = listener(|mut stream| async move {
            let _ = stream.write_all(b"SSH-2.0-not-http\r\n\r\n").await;
        })
        .await;
        let invalid = post(&patient, &format!("http://{garbled}/hook")).await;
        assert_eq!(
            invalid.error,
            Some(AttemptError::InvalidResponse),
            "{}",
            invalid.body
        );

        // A TLS handshake with a server that speaks plain HTTP.
        let plain = listener(|stream| async move {
            answer(
                stream,
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
            )
            .await;
        })
        .await;
        let tls = post(&patient, &format!("https://{plain}/hook")).await;
        assert_eq!(tls.error, Some(AttemptError::Tls), "{}", tls.body);

        // `.invalid` never resolves (RFC 6761).
        let dns = post(&patient, "http://no-such-host.invalid/hook").await;
        assert_eq!(dns.error, Some(AttemptError::Dns), "{}", dns.body);
    }

    /// TLS for a test receiver: the certificate for `localhost` and
    /// 127.0.0.1 from the test authority in `testdata/`, offering `alpn`.
    fn tls_acceptor(alpn: Vec<Vec<u8>>) -> tokio_rustls::TlsAcceptor {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let chain = vec![
            CertificateDer::from_pem_slice(include_bytes!("../testdata/leaf.pem"))
                .expect("the leaf certificate"),
        ];
        let key = PrivateKeyDer::from_pem_slice(include_bytes!("../testdata/leaf.key"))
            .expect("the leaf key");
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("a server configuration");
        config.alpn_protocols = alpn;
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// An HTTPS receiver on loopback with a certificate for `localhost`
    /// and 127.0.0.1 from the test authority in `testdata/` (valid until
    /// 2126); it answers `ok` and passes on each request's head.
    async fn tls_listener() -> (
        std::net::SocketAddr,
        tokio::sync::mpsc::UnboundedReceiver<String>,
    ) {
        let acceptor = tls_acceptor(Vec::new());
        let (heads, received) = tokio::sync::mpsc::unbounded_channel();
        let address = listener(move |stream| {
            let (acceptor, heads) = (acceptor.clone(), heads.clone());
            async move {
                tokio::spawn(async move {
                    let Ok(mut stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut request = vec![0; 4096];
                    let read = stream.read(&mut request).await.unwrap_or(0);
                    let _ = heads.send(String::from_utf8_lossy(&request[..read]).into_owned());
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                    let _ = stream.flush().await;
                });
            }
        })
        .await;
        (address, received)
    }

    /// May reach loopback by name as well as by address.
    fn loopback_guard() -> Guard {
        Guard::new(vec![
            "127.0.0.0/8".parse().expect("a network"),
            "::1/128".parse().expect("a network"),
        ])
    }

    #[tokio::test]
    async fn https_endpoints_are_delivered_to_over_verified_tls() {
        use rustls::pki_types::pem::PemObject;

        let (address, mut heads) = tls_listener().await;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(
                rustls::pki_types::CertificateDer::from_pem_slice(include_bytes!(
                    "../testdata/ca.pem"
                ))
                .expect("the test authority"),
            )
            .expect("a root");
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let client = Client::with_tls(loopback_guard(), PATIENT, 64, tls);
        let url = format!("https://localhost:{}/hook", address.port());
        let response = post(&client, &url).await;
        assert_eq!(response.error, None, "{}", response.body);
        assert_eq!(response.status, Some(200));
        assert_eq!(response.body, "ok");
        let head = heads.recv().await.expect("the request's head");
        assert!(head.starts_with("POST /hook HTTP/1.1\r\n"), "{head}");
        assert!(
            head.contains(&format!("host: localhost:{}\r\n", address.port())),
            "{head}"
        );

        // The production client trusts the public authorities only.
        let public = Client::new(loopback_guard(), PATIENT, 64, &[]).expect("a client");
        let untrusted = post(&public, &url).await;
        assert_eq!(
            untrusted.error,
            Some(AttemptError::Tls),
            "{}",
            untrusted.body
        );
        assert_eq!(untrusted.status, None);
    }

    /// An HTTPS receiver that offers HTTP/2 (ALPN `h2`, then HTTP/1.1) and
    /// speaks only HTTP/2: it answers `201` with `h2` and passes on each
    /// request's method, path and body.
    async fn h2_listener() -> (
        std::net::SocketAddr,
        tokio::sync::mpsc::UnboundedReceiver<(String, String, Vec<u8>)>,
    ) {
        let acceptor = tls_acceptor(vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        let (requests, received) = tokio::sync::mpsc::unbounded_channel();
        let address = listener(move |stream| {
            let (acceptor, requests) = (acceptor.clone(), requests.clone());
            async move {
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let Ok(mut connection) = h2::server::handshake(stream).await else {
                        return;
                    };
                    while let Some(Ok((request, mut respond))) = connection.accept().await {
                        let (head, mut body) = request.into_parts();
                        let mut bytes = Vec::new();
                        while let Some(Ok(chunk)) = body.data().await {
                            let _ = body.flow_control().release_capacity(chunk.len());
                            bytes.extend_from_slice(&chunk);
                        }
                        let _ = requests.send((
                            head.method.to_string(),
                            head.uri.path().to_owned(),
                            bytes,
                        ));
                        let answer = http::Response::builder()
                            .status(201)
                            .body(())
                            .expect("a response head");
                        if let Ok(mut stream) = respond.send_response(answer, false) {
                            let _ = stream.send_data(Bytes::from_static(b"h2"), true);
                        }
                    }
                });
            }
        })
        .await;
        (address, received)
    }

    #[tokio::test]
    async fn an_endpoint_offering_http2_is_delivered_to_over_http2() {
        let (address, mut requests) = h2_listener().await;
        let extra = crate::certificates_in(include_bytes!("../testdata/ca.pem"))
            .expect("the test authority's PEM");
        let client = Client::new(loopback_guard(), PATIENT, 64, &extra).expect("a client");
        let url = format!("https://localhost:{}/hook", address.port());
        let response = post(&client, &url).await;
        // Only an HTTP/2 exchange can get this answer: the server speaks
        // nothing else.
        assert_eq!(response.error, None, "{}", response.body);
        assert_eq!(response.status, Some(201));
        assert_eq!(response.body, "h2");
        let (method, path, body) = requests.recv().await.expect("the request");
        assert_eq!((method.as_str(), path.as_str()), ("POST", "/hook"));
        assert_eq!(body, b"{}");
    }

    #[tokio::test]
    async fn an_extra_root_makes_a_private_authoritys_endpoints_trusted() {
        let (address, _heads) = tls_listener().await;
        let extra = crate::certificates_in(include_bytes!("../testdata/ca.pem"))
            .expect("the test authority's PEM");
        assert_eq!(extra.len(), 1);
        let client = Client::new(loopback_guard(), PATIENT, 64, &extra).expect("a client");
        let url = format!("https://localhost:{}/hook", address.port());
        let response = post(&client, &url).await;
        assert_eq!(response.error, None, "{}", response.body);
        assert_eq!(response.status, Some(200));
    }

    #[test]
    fn a_file_without_certificates_is_refused_as_extra_roots() {
        assert!(crate::certificates_in(b"not a certificate").is_err());
        assert!(crate::certificates_in(include_bytes!("../testdata/leaf.key")).is_err());
        let garbled = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert!(crate::certificates_in(garbled.as_bytes()).is_err());
    }

    #[tokio::test]
    async fn hostnames_resolving_to_blocked_addresses_are_refused_at_connect() {
        let client =
            Client::new(Guard::default(), Duration::from_secs(5), 64, &[]).expect("a client");
        let response = post(&client, "http://localhost:9/hook").await;
        assert_eq!(
            response.error,
            Some(AttemptError::SsrfBlocked),
            "{}",
            response.body
        );
        // Refused again from the target the client remembers.
        for _ in 0..2 {
            let literal = post(&client, "http://127.0.0.1:9/hook").await;
            assert_eq!(literal.error, Some(AttemptError::SsrfBlocked));
        }
    }

    #[test]
    fn targets_are_remembered_within_their_bounds() {
        let client = client(PATIENT);
        let remembered = |client: &Client| client.targets.lock().expect("not poisoned").len();
        let ok = client.target("http://127.0.0.1:9/hook");
        assert!(ok.is_ok());
        assert_eq!(client.target("http://127.0.0.1:9/hook").ok(), ok.ok());
        let invalid = client.target("http://[::1/hook");
        assert!(matches!(invalid, Err((AttemptError::Connection, _))));
        assert_eq!(remembered(&client), 2, "answers and failures alike");
        let long = format!("http://127.0.0.1:9/{}", "a".repeat(REMEMBERED_URL_LEN));
        assert!(client.target(&long).is_ok());
        assert_eq!(remembered(&client), 2, "a long URL is not kept");
        for n in 0..TARGETS {
            assert!(client.target(&format!("http://127.0.0.1:9/{n}")).is_ok());
        }
        assert!(remembered(&client) <= TARGETS, "the bound holds");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
