//! In-process caches of what every message and delivery reads: the app a
//! message is posted to, and a delivery's message and endpoint. Valid because this process is the only one writing the file
//! (see the lock in `lib.rs`): every change passes through this store and
//! invalidates here.
//!
//! Endpoints can change, so a read that raced with a change must not put a
//! stale copy back: each change bumps a generation, and a value read from
//! the database is cached only if no change happened since the read began.
//! Messages never change; they are cached as they are created and evicted
//! oldest first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use herald_core::model::{App, Endpoint, Message};
use herald_core::{EndpointId, MessageId};

/// Messages kept for delivery; a few seconds of traffic at full speed.
const MESSAGES: usize = 16_384;

#[derive(Default)]
struct Endpoints {
    generation: u64,
    by_id: HashMap<EndpointId, Arc<Endpoint>>,
}

/// Apps by the reference they were looked up with (id or uid).
#[derive(Default)]
struct Apps {
    generation: u64,
    by_ref: HashMap<String, Arc<App>>,
}

/// Apps kept; beyond this the cache starts over (apps are few and small).
const APPS: usize = 65_536;

#[derive(Default)]
struct Messages {
    by_id: HashMap<MessageId, Arc<Message>>,
    order: VecDeque<MessageId>,
}

/// The caches; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Caches {
    apps: Arc<Mutex<Apps>>,
    endpoints: Arc<Mutex<Endpoints>>,
    messages: Arc<Mutex<Messages>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain maps: a panic while holding the lock cannot break them.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Caches {
    /// The generation to hand to [`Caches::store_app`] after a read.
    pub(crate) fn app_generation(&self) -> u64 {
        lock(&self.apps).generation
    }

    pub(crate) fn app(&self, reference: &str) -> Option<Arc<App>> {
        lock(&self.apps).by_ref.get(reference).cloned()
    }

    /// Caches an app found by `reference` at `generation`, unless apps changed since.
    pub(crate) fn store_app(&self, reference: &str, app: App, generation: u64) {
        let mut apps = lock(&self.apps);
        if apps.generation != generation {
            return;
        }
        if apps.by_ref.len() >= APPS {
            apps.by_ref.clear();
        }
        apps.by_ref.insert(reference.to_owned(), Arc::new(app));
    }

    /// Forgets every app (an app was changed or deleted).
    pub(crate) fn apps_changed(&self) {
        let mut apps = lock(&self.apps);
        apps.generation += 1;
        apps.by_ref.clear();
    }

    /// The generation to hand to [`Caches::store_endpoint`] after a read.
    pub(crate) fn endpoint_generation(&self) -> u64 {
        lock(&self.endpoints).generation
    }

    pub(crate) fn endpoint(&self, id: &EndpointId) -> Option<Arc<Endpoint>> {
        lock(&self.endpoints).by_id.get(id).cloned()
    }

    /// Caches an endpoint read at `generation`, unless it changed since.
    pub(crate) fn store_endpoint(&self, endpoint: Endpoint, generation: u64) {
        let mut endpoints = lock(&self.endpoints);
        if endpoints.generation == generation {
            endpoints
                .by_id
                .insert(endpoint.id.clone(), Arc::new(endpoint));
        }
    }

    /// Forgets every endpoint (any endpoint write, app deletion).
    pub(crate) fn endpoints_changed(&self) {
        let mut endpoints = lock(&self.endpoints);
        endpoints.generation += 1;
        endpoints.by_id.clear();
    }

    pub(crate) fn message(&self, id: &MessageId) -> Option<Arc<Message>> {
        lock(&self.messages).by_id.get(id).cloned()
    }

    /// Remembers a message just committed.
    pub(crate) fn store_message(&self, message: Message) {
        let mut messages = lock(&self.messages);
        if messages.by_id.contains_key(&message.id) {
            return;
        }
        messages.order.push_back(message.id.clone());
        messages.by_id.insert(message.id.clone(), Arc::new(message));
        while messages.order.len() > MESSAGES {
            if let Some(oldest) = messages.order.pop_front() {
                messages.by_id.remove(&oldest);
            }
        }
    }

    /// Forgets one message (its content was deleted).
    pub(crate) fn forget_message(&self, id: &MessageId) {
        self.forget_messages(std::slice::from_ref(id));
    }

    /// Forgets messages whose content was deleted, in one pass over the
    /// cache however many they are.
    pub(crate) fn forget_messages(&self, ids: &[MessageId]) {
        let mut messages = lock(&self.messages);
        let before = messages.by_id.len();
        for id in ids {
            messages.by_id.remove(id);
        }
        if messages.by_id.len() != before {
            let Messages { by_id, order } = &mut *messages;
            order.retain(|kept| by_id.contains_key(kept));
        }
    }

    /// Forgets every message (app deletion).
    pub(crate) fn messages_deleted(&self) {
        let mut messages = lock(&self.messages);
        messages.by_id.clear();
        messages.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_with_a_change_is_not_cached() {
        let caches = Caches::default();
        let generation = caches.endpoint_generation();
        caches.endpoints_changed();
        let endpoint = sample_endpoint();
        let id = endpoint.id.clone();
        caches.store_endpoint(endpoint.clone(), generation);
        assert!(caches.endpoint(&id).is_none());
        caches.store_endpoint(endpoint, caches.endpoint_generation());
        assert!(caches.endpoint(&id).is_some());
    }

    fn sample_endpoint() -> Endpoint {
        use herald_core::model::Metadata;
        use herald_core::{AppId, EndpointUrl, SigningKey, Timestamp};
        Endpoint {
            id: EndpointId::generate(),
            app_id: AppId::generate(),
            uid: None,
            url: EndpointUrl::parse("https://example.com").unwrap(),
            description: String::new(),
            version: 1,
            disabled: false,
            filter_types: None,
            channels: None,
            rate_limit: None,
            metadata: Metadata::new(),
            headers: Default::default(),
            key: SigningKey::generate(),
            retired_keys: Vec::new(),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }
}
