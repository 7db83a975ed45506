//! Prefixed, time-sortable identifiers (`app_…`, `ep_…`, `msg_…`).
//!
//! The body is a ULID, so ids sort by creation time: list pagination can use
//! the id itself as the cursor. One macro makes every id type, so they all
//! parse, print and compare the same way.

use std::sync::Mutex;

use ulid::{Generator, Ulid};

/// Monotonic within one process: two ids made in the same millisecond still
/// sort in creation order, which keeps cursors stable.
static GENERATOR: Mutex<Option<Generator>> = Mutex::new(None);

fn next_ulid() -> Ulid {
    let mut guard = GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let generator = guard.get_or_insert_with(Generator::new);
    // Overflow needs 2^80 ids in one millisecond; fall back to a fresh random one.
    generator.generate().unwrap_or_else(|_| Ulid::new())
}

macro_rules! prefixed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with, `_` included.
            pub const PREFIX: &'static str = concat!($prefix, "_");

            /// A new id for an object created now.
            pub fn generate() -> Self {
                Self(format!("{}{}", Self::PREFIX, next_ulid()))
            }

            /// The smallest id of an object created at `at`: every id made
            /// earlier sorts below it, which turns a time cut-off into a
            /// primary-key range (retention purges walk ids, not timestamps).
            pub fn first_at(at: crate::Timestamp) -> Self {
                let millis = u64::try_from(at.0).unwrap_or(0);
                Self(format!("{}{}", Self::PREFIX, Ulid::from_parts(millis, 0)))
            }

            /// Accepts a string only if it has this kind's prefix and a ULID body.
            pub fn parse(value: &str) -> Option<Self> {
                let body = value.strip_prefix(Self::PREFIX)?;
                Ulid::from_string(body).ok()?;
                Some(Self(value.to_owned()))
            }

            /// Wraps a value read back from storage, which only ever holds ids
            /// this type produced.
            pub fn from_stored(value: String) -> Self {
                Self(value)
            }

            /// The textual id.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// An application (tenant).
    AppId, "app"
);
prefixed_id!(
    /// An endpoint of an application.
    EndpointId, "ep"
);
prefixed_id!(
    /// A message (one event for one application).
    MessageId, "msg"
);
prefixed_id!(
    /// One HTTP attempt of a delivery.
    AttemptId, "atmpt"
);
prefixed_id!(
    /// A background task such as an endpoint recovery.
    TaskId, "qtask"
);
prefixed_id!(
    /// An inbound source: a public URL `/in/{source}` with a verifier.
    SourceId, "src"
);
prefixed_id!(
    /// One request received (accepted or rejected) by an inbound source.
    InboundRequestId, "req"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_parse_back() {
        let id = AppId::generate();
        assert!(id.as_str().starts_with("app_"));
        assert_eq!(AppId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(EndpointId::parse(id.as_str()), None);
        assert_eq!(AppId::parse("app_not-a-ulid"), None);
    }

    #[test]
    fn ids_sort_in_creation_order() {
        let ids: Vec<MessageId> = (0..1000).map(|_| MessageId::generate()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn first_at_bounds_the_ids_made_before_and_after_it() {
        let before = MessageId::generate();
        let now = crate::Timestamp(
            i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock after 1970")
                    .as_millis(),
            )
            .expect("fits"),
        );
        let bound = MessageId::first_at(crate::Timestamp(now.0 + 2));
        assert!(MessageId::parse(bound.as_str()).is_some());
        assert!(before < bound);
        assert!(MessageId::first_at(crate::Timestamp(now.0 - 60_000)) < before);
    }
}
