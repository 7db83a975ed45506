//! A webhook receiver on loopback that records every request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    /// A header as text (empty when missing).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("receiver got a JSON body")
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// Always 200.
    Accept,
    /// Always 200, answering `body`.
    AcceptWith { body: &'static str },
    /// `status` for the first `times` requests, 200 after.
    FailFirst { times: usize, status: u16 },
    /// Always `status`.
    AlwaysFail { status: u16 },
    /// Answers 200 after `delay`.
    Slow { delay: Duration },
    /// 200 at once, except requests `after + 1` to `after + times` (in the
    /// order they came in), answered after `delay`.
    Stall {
        after: usize,
        times: usize,
        delay: Duration,
    },
    /// `status` with `Retry-After: seconds` for the first `times`
    /// requests, 200 after.
    RetryAfter {
        times: usize,
        status: u16,
        seconds: u64,
    },
    /// `302 Found` pointing at `to`.
    Redirect { to: SocketAddr },
}

struct Shared {
    behaviour: Behaviour,
    received: Vec<Received>,
}

/// A running receiver. Dropping it stops it.
pub struct Receiver {
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: CancellationToken,
}

impl Receiver {
    /// Starts a receiver on an ephemeral loopback port.
    pub async fn start(behaviour: Behaviour) -> Receiver {
        Self::start_at("127.0.0.1:0".parse().expect("valid address"), behaviour).await
    }

    /// Starts a receiver on `address` (to bring back one that was down).
    pub async fn start_at(address: SocketAddr, behaviour: Behaviour) -> Receiver {
        let listener = TcpListener::bind(address).await.expect("receiver binds");
        let address = listener.local_addr().expect("receiver has an address");
        let shared = Arc::new(Mutex::new(Shared {
            behaviour,
            received: Vec::new(),
        }));
        let stop = CancellationToken::new();
        let app = Router::new().fallback(record).with_state(shared.clone());
        let until = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await
                .expect("receiver serves");
        });
        Receiver {
            address,
            shared,
            stop,
        }
    }

    /// A loopback address where nothing listens (yet): connections are refused.
    pub async fn unused_address() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("address")
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The URL to register as an endpoint; `path` distinguishes endpoints.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.address, path.trim_start_matches('/'))
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().expect("receiver lock").received.clone()
    }

    /// How many requests came in, without copying them (cheap to poll
    /// while thousands arrive).
    pub fn count(&self) -> usize {
        self.shared.lock().expect("receiver lock").received.len()
    }

    /// Requests received on `path`.
    pub fn received_on(&self, path: &str) -> Vec<Received> {
        let wanted = format!("/{}", path.trim_start_matches('/'));
        self.received()
            .into_iter()
            .filter(|request| request.header("x-receiver-path") == wanted)
            .collect()
    }

    /// How many requests came in per `webhook-id`.
    pub fn count_by_message(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for request in self.received() {
            *counts.entry(request.header("webhook-id")).or_insert(0) += 1;
        }
        counts
    }

    /// Changes how later requests are answered.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.shared.lock().expect("receiver lock").behaviour = behaviour;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn record(
    State(shared): State<Arc<Mutex<Shared>>>,
    uri: axum::http::Uri,
    mut headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Ok(path) = uri.path().parse() {
        headers.insert("x-receiver-path", path);
    }
    let (behaviour, seen) = {
        let mut shared = shared.lock().expect("receiver lock");
        shared.received.push(Received {
            headers,
            body,
            at: Instant::now(),
        });
        (shared.behaviour, shared.received.len())
    };
    let code =
        |status: u16| StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match behaviour {
        Behaviour::Accept => StatusCode::OK.into_response(),
        Behaviour::AcceptWith { body } => (StatusCode::OK, body).into_response(),
        Behaviour::FailFirst { times, status } => {
            if seen <= times {
                code(status).into_response()
            } else {
                StatusCode::OK.into_response()
            }
        }
        Behaviour::AlwaysFail { status } => code(status).into_response(),
        Behaviour::Slow { delay } => {
            tokio::time::sleep(delay).await;
            StatusCode::OK.into_response()
        }
        Behaviour::Stall {
            after,
            times,
            delay,
        } => {
            if seen > after && seen <= after + times {
                tokio::time::sleep(delay).await;
            }
            StatusCode::OK.into_response()
        }
        Behaviour::RetryAfter {
            times,
            status,
            seconds,
        } => {
            if seen <= times {
                (code(status), [(header::RETRY_AFTER, seconds.to_string())]).into_response()
            } else {
                StatusCode::OK.into_response()
            }
        }
        Behaviour::Redirect { to } => (
            StatusCode::FOUND,
            [(header::LOCATION, format!("http://{to}/redirected"))],
        )
            .into_response(),
    }
}
