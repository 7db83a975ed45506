//! The backend conformance suite: every `Store` implementation runs it
//! against a fresh database from its own tests.
