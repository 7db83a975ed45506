//! Listen sessions: requests that arrived at a session's relay URL, waiting
//! for the `herald listen` process that polls it to answer them.
//!
//! Kept in memory on the node that serves them: a session is a developer's
//! terminal, gone when it stops polling, and a request not answered within
//! the relay's wait is answered `504` for the sender to retry.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};

/// Sessions kept at once; creating one more drops those idle longest.
const MAX_SESSIONS: usize = 1024;

/// A session nobody polled for this long is dropped when room is needed.
const IDLE_SESSION: Duration = Duration::from_secs(3600);

/// A listener counts as connected this long after its last poll ended:
/// `herald listen` polls again at once, so only a stopped one stays away.
const LISTENER_GONE_AFTER: Duration = Duration::from_secs(10);

/// Requests waiting for a poll per session, at most.
const MAX_QUEUED: usize = 1000;

/// Bytes of request bodies waiting for a poll per session, at most: the
/// relay URL is public, and what waits is held in memory.
const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;

/// Bytes of request bodies waiting over all sessions, at most.
const MAX_TOTAL_QUEUED_BYTES: usize = 64 * 1024 * 1024;

/// A request that arrived at a relay URL.
#[derive(Debug, Clone)]
pub(crate) struct Relayed {
    pub(crate) method: String,
    pub(crate) query: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

/// The local server's answer, as the listener reported it.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// Why a request could not be relayed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RelayError {
    /// Nobody is polling the session.
    NoListener,
    /// Too many requests wait for the listener already.
    Full,
    /// The listener took the request and did not answer in time.
    TimedOut,
}

/// Why no session could be opened.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// As many sessions as allowed are in use.
    Full,
    /// The server is stopping.
    Stopping,
}

/// Every session of this node.
#[derive(Default)]
pub(crate) struct Sessions {
    registry: Mutex<Registry>,
    /// Body bytes waiting over all sessions.
    total_queued: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Registry {
    sessions: HashMap<String, Arc<Session>>,
    /// Set once the server stops: nothing opens after.
    stopped: bool,
}

impl Sessions {
    /// The session `id`, made if there is none.
    pub(crate) fn open(&self, id: &str) -> Result<Arc<Session>, OpenError> {
        let mut registry = lock(&self.registry);
        if registry.stopped {
            return Err(OpenError::Stopping);
        }
        let sessions = &mut registry.sessions;
        if let Some(session) = sessions.get(id) {
            return Ok(session.clone());
        }
        if sessions.len() >= MAX_SESSIONS {
            // A session in use (polled, listened to, or with requests
            // waiting) is never the one to go.
            sessions.retain(|_, session| {
                session.in_use() || session.last_seen().elapsed() < IDLE_SESSION
            });
            if sessions.len() >= MAX_SESSIONS {
                let oldest = sessions
                    .iter()
                    .filter(|(_, session)| !session.in_use())
                    .min_by_key(|(_, session)| session.last_seen())
                    .map(|(id, _)| id.clone());
                match oldest.and_then(|id| sessions.remove(&id)) {
                    Some(oldest) => oldest.end(),
                    None => return Err(OpenError::Full),
                }
            }
        }
        let session = Arc::new(Session::new(self.total_queued.clone()));
        sessions.insert(id.to_owned(), session.clone());
        Ok(session)
    }

    /// Ends every session and opens no more (the server is stopping): long
    /// polls return at once instead of holding the shutdown up.
    pub(crate) fn end_all(&self) {
        let sessions: Vec<_> = {
            let mut registry = lock(&self.registry);
            registry.stopped = true;
            registry.sessions.drain().collect()
        };
        for (_, session) in sessions {
            session.end();
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.registry).sessions.get(id).cloned()
    }

    /// Ends session `id`; whether there was one. Requests waiting for it
    /// are answered at once (their waits see the replies dropped).
    pub(crate) fn close(&self, id: &str) -> bool {
        let removed = lock(&self.registry).sessions.remove(id);
        match removed {
            Some(session) => {
                session.end();
                true
            }
            None => false,
        }
    }
}

/// One session: what waits for its listener.
pub(crate) struct Session {
    state: Mutex<State>,
    arrived: Notify,
    /// Body bytes waiting over all sessions (shared with them).
    total_queued: Arc<AtomicUsize>,
}

struct State {
    /// Not yet handed to a poll.
    queued: VecDeque<(u64, Relayed, oneshot::Sender<Reply>)>,
    /// Body bytes in `queued`.
    queued_bytes: usize,
    /// Handed to a poll, waiting for the listener's answer.
    taken: HashMap<u64, oneshot::Sender<Reply>>,
    next_id: u64,
    /// Polls waiting right now.
    polling: usize,
    /// When the session was made.
    made: Instant,
    /// When a poll last ended; `None` before the first.
    last_seen: Option<Instant>,
    /// Closed: nothing more is relayed.
    ended: bool,
}

impl State {
    /// Whether a listener polls the session (or did a moment ago).
    fn listened(&self) -> bool {
        let recently = self
            .last_seen
            .is_some_and(|seen| seen.elapsed() < LISTENER_GONE_AFTER);
        !self.ended && (self.polling > 0 || recently)
    }
}

impl Session {
    fn new(total_queued: Arc<AtomicUsize>) -> Self {
        Self {
            state: Mutex::new(State {
                queued: VecDeque::new(),
                queued_bytes: 0,
                taken: HashMap::new(),
                next_id: 1,
                polling: 0,
                made: Instant::now(),
                last_seen: None,
                ended: false,
            }),
            arrived: Notify::new(),
            total_queued,
        }
    }

    /// Counts `bytes` of bodies as no longer waiting.
    fn dequeued(&self, state: &mut State, bytes: usize) {
        state.queued_bytes = state.queued_bytes.saturating_sub(bytes);
        self.total_queued.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Answers every waiting request as unrelayable, and any later one,
    /// and ends the polls waiting.
    fn end(&self) {
        {
            let mut state = lock(&self.state);
            state.ended = true;
            state.queued.clear();
            let bytes = state.queued_bytes;
            self.dequeued(&mut state, bytes);
            state.taken.clear();
        }
        self.arrived.notify_waiters();
    }

    #[cfg(test)]
    fn polled_now(&self) -> bool {
        lock(&self.state).polling > 0
    }

    /// Whether the session is being used: polled, listened to a moment
    /// ago, or with requests waiting.
    fn in_use(&self) -> bool {
        let state = lock(&self.state);
        state.listened() || !state.queued.is_empty() || !state.taken.is_empty()
    }

    /// Counts the session as listened to from now: its listener just
    /// opened it and is about to poll.
    pub(crate) fn touch(&self) {
        lock(&self.state).last_seen = Some(Instant::now());
    }

    /// When the session was last used: a poll's end, or its making.
    fn last_seen(&self) -> Instant {
        let state = lock(&self.state);
        state.last_seen.unwrap_or(state.made)
    }

    #[cfg(test)]
    fn has_listener(&self) -> bool {
        lock(&self.state).listened()
    }

    /// Hands `request` to the session's listener and waits up to `wait`
    /// for its answer.
    pub(crate) async fn relay(
        &self,
        request: Relayed,
        wait: Duration,
    ) -> Result<Reply, RelayError> {
        let (reply, answer) = oneshot::channel();
        let id = {
            let mut state = lock(&self.state);
            if !state.listened() {
                return Err(RelayError::NoListener);
            }
            let size = request.body.len();
            let bytes = state.queued_bytes + size;
            let total = self.total_queued.load(Ordering::Relaxed) + size;
            if state.queued.len() >= MAX_QUEUED
                || bytes > MAX_QUEUED_BYTES
                || total > MAX_TOTAL_QUEUED_BYTES
            {
                return Err(RelayError::Full);
            }
            let id = state.next_id;
            state.next_id += 1;
            state.queued_bytes = bytes;
            self.total_queued.fetch_add(size, Ordering::Relaxed);
            state.queued.push_back((id, request, reply));
            id
        };
        // However this wait ends (answered, timed out, or the sender gone
        // and this future dropped), the request is forgotten.
        let _waiting = Waiting { session: self, id };
        self.arrived.notify_waiters();
        let answered = tokio::time::timeout(wait, answer).await;
        match answered {
            Ok(Ok(reply)) => Ok(reply),
            // The session was closed under it.
            Ok(Err(_)) => Err(RelayError::NoListener),
            Err(_) => Err(RelayError::TimedOut),
        }
    }

    /// Takes up to `limit` waiting requests, waiting up to `wait` for the
    /// first if there is none.
    pub(crate) async fn poll(&self, limit: usize, wait: Duration) -> Vec<(u64, Relayed)> {
        let _polling = Polling::start(self);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            // Registered before looking, so an arrival in between wakes it.
            arrived.as_mut().enable();
            let taken = self.take(limit);
            let ended = lock(&self.state).ended;
            if !taken.is_empty() || ended || tokio::time::Instant::now() >= deadline {
                return taken;
            }
            tokio::select! {
                () = arrived => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    fn take(&self, limit: usize) -> Vec<(u64, Relayed)> {
        let mut state = lock(&self.state);
        let mut taken = Vec::new();
        while taken.len() < limit {
            let Some((id, request, reply)) = state.queued.pop_front() else {
                break;
            };
            self.dequeued(&mut state, request.body.len());
            state.taken.insert(id, reply);
            taken.push((id, request));
        }
        taken
    }

    /// Delivers the listener's answer to request `id`; whether it was
    /// still waiting.
    pub(crate) fn answer(&self, id: u64, reply: Reply) -> bool {
        let waiting = lock(&self.state).taken.remove(&id);
        waiting.is_some_and(|waiting| waiting.send(reply).is_ok())
    }
}

/// A relayed request waiting for its answer; forgets it when dropped.
struct Waiting<'a> {
    session: &'a Session,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.session.state);
        let id = self.id;
        if let Some(index) = state.queued.iter().position(|(queued, _, _)| *queued == id) {
            if let Some((_, request, _)) = state.queued.remove(index) {
                self.session.dequeued(&mut state, request.body.len());
            }
        }
        state.taken.remove(&id);
    }
}

/// A poll in progress, counted until it ends however it ends (answered,
/// or its client went away).
struct Polling<'a>(&'a Session);

impl<'a> Polling<'a> {
    fn start(session: &'a Session) -> Self {
        lock(&session.state).polling += 1;
        Self(session)
    }
}

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.0.state);
        state.polling = state.polling.saturating_sub(1);
        state.last_seen = Some(Instant::now());
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section leaves the maps consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str) -> Relayed {
        Relayed {
            method: "POST".into(),
            query: Some(query.into()),
            headers: Vec::new(),
            body: Bytes::from_static(b"{}"),
        }
    }

    #[tokio::test]
    async fn nothing_is_relayed_to_a_session_nobody_polled() {
        let session = Sessions::default().open("s1").expect("opens");
        let relayed = session.relay(request(""), Duration::from_secs(5)).await;
        assert_eq!(relayed.err(), Some(RelayError::NoListener));
    }

    fn empty_reply() -> Reply {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A session whose listener polled a moment ago.
    async fn listened(sessions: &Sessions) -> Arc<Session> {
        let session = sessions.open("s1").expect("opens");
        assert!(session.poll(1, Duration::ZERO).await.is_empty());
        session
    }

    #[tokio::test]
    async fn a_relayed_request_is_answered_with_what_the_listener_reports() {
        let sessions = Sessions::default();
        let session = listened(&sessions).await;
        let relaying = {
            let session = session.clone();
            tokio::spawn(async move { session.relay(request("a=1"), Duration::from_secs(5)).await })
        };
        let taken = session.poll(10, Duration::from_secs(5)).await;
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].1.query.as_deref(), Some("a=1"));
        let answered = session.answer(
            taken[0].0,
            Reply {
                status: 201,
                headers: vec![("x-local".into(), "yes".into())],
                body: b"made".to_vec(),
            },
        );
        assert!(answered);
        let reply = relaying.await.expect("joins").expect("answered");
        assert_eq!(reply.status, 201);
        assert_eq!(reply.body, b"made");
        // Answered once: a second answer finds nobody waiting.
        assert!(!session.answer(taken[0].0, empty_reply()));
    }

    #[tokio::test]
    async fn a_request_taken_and_not_answered_times_out_and_is_forgotten() {
        let session = listened(&Sessions::default()).await;
        let relaying = {
            let session = session.clone();
            tokio::spawn(async move { session.relay(request(""), Duration::from_millis(50)).await })
        };
        let taken = session.poll(10, Duration::from_secs(5)).await;
        assert_eq!(taken.len(), 1);
        assert_eq!(
            relaying.await.expect("joins").err(),
            Some(RelayError::TimedOut)
        );
        assert!(!session.answer(taken[0].0, empty_reply()));
    }

    #[tokio::test]
    async fn a_poll_with_nothing_waiting_returns_empty_after_its_wait() {
        let session = Sessions::default().open("s1").expect("opens");
        assert!(session.poll(10, Duration::from_millis(20)).await.is_empty());
        assert!(session.has_listener(), "it polled a moment ago");
    }

    #[tokio::test]
    async fn a_relay_whose_sender_went_away_leaves_nothing_behind() {
        let session = listened(&Sessions::default()).await;
        let relaying = {
            let session = session.clone();
            tokio::spawn(
                async move { session.relay(request("a=1"), Duration::from_secs(60)).await },
            )
        };
        eventually_queued(&session, 1).await;
        relaying.abort();
        let _ = relaying.await;
        let state = lock(&session.state);
        assert!(state.queued.is_empty());
        assert_eq!(state.queued_bytes, 0);
    }

    #[tokio::test]
    async fn bodies_waiting_for_a_listener_are_bounded_in_bytes() {
        let session = listened(&Sessions::default()).await;
        let mut big = request("");
        big.body = Bytes::from(vec![b'x'; MAX_QUEUED_BYTES / 2 + 1]);
        let first = {
            let (session, big) = (session.clone(), big.clone());
            tokio::spawn(async move { session.relay(big, Duration::from_secs(60)).await })
        };
        eventually_queued(&session, 1).await;
        let second = session.relay(big, Duration::from_secs(60)).await;
        assert_eq!(second.err(), Some(RelayError::Full));
        first.abort();
    }

    #[tokio::test]
    async fn ending_a_session_ends_its_polls_at_once() {
        let sessions = Sessions::default();
        let session = sessions.open("s1").expect("opens");
        let polling = {
            let session = session.clone();
            tokio::spawn(async move { session.poll(10, Duration::from_secs(60)).await })
        };
        while !session.polled_now() {
            tokio::task::yield_now().await;
        }
        sessions.end_all();
        let taken = tokio::time::timeout(Duration::from_secs(5), polling)
            .await
            .expect("the poll ended with the session")
            .expect("joins");
        assert!(taken.is_empty());
        assert!(sessions.get("s1").is_none());
    }

    #[tokio::test]
    async fn bodies_waiting_are_bounded_over_all_sessions_too() {
        let sessions = Sessions::default();
        let mut body = request("");
        // Shared, not copied: the test holds one such body in memory.
        body.body = Bytes::from(vec![b'x'; MAX_QUEUED_BYTES - 1]);
        let mut waiting = Vec::new();
        let per_session = MAX_TOTAL_QUEUED_BYTES / (MAX_QUEUED_BYTES - 1);
        for n in 0..=per_session {
            let session = sessions.open(&format!("s{n}")).expect("opens");
            session.touch();
            if n < per_session {
                let (relaying, body) = (session.clone(), body.clone());
                waiting.push(tokio::spawn(async move {
                    relaying.relay(body, Duration::from_secs(60)).await
                }));
                eventually_queued(&session, 1).await;
            } else {
                let over = session.relay(body.clone(), Duration::from_secs(60)).await;
                assert_eq!(over.err(), Some(RelayError::Full));
            }
        }
        for relay in waiting {
            relay.abort();
        }
    }

    #[tokio::test]
    async fn sessions_in_use_are_not_evicted_and_none_open_once_stopping() {
        let sessions = Sessions::default();
        for n in 0..MAX_SESSIONS {
            sessions.open(&format!("s{n}")).expect("opens").touch();
        }
        assert_eq!(sessions.open("one-more").err(), Some(OpenError::Full));
        sessions.end_all();
        assert_eq!(sessions.open("s1").err(), Some(OpenError::Stopping));
    }

    async fn eventually_queued(session: &Session, count: usize) {
        while lock(&session.state).queued.len() < count {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn closing_a_session_ends_the_requests_waiting_for_it() {
        let sessions = Sessions::default();
        let session = listened(&sessions).await;
        let relaying = {
            let session = session.clone();
            tokio::spawn(async move { session.relay(request(""), Duration::from_secs(5)).await })
        };
        let taken = session.poll(10, Duration::from_secs(5)).await;
        assert_eq!(taken.len(), 1);
        assert!(sessions.close("s1"));
        assert!(sessions.get("s1").is_none());
        assert!(!session.has_listener());
        assert_eq!(
            relaying.await.expect("joins").err(),
            Some(RelayError::NoListener)
        );
    }
}
