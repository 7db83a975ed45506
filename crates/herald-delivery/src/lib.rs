//! Herald's delivery engine.
//!
//! A [`dispatcher`] leases due deliveries from the store and hands each to a
//! task of the worker pool; the [`attempt`] module signs and sends one, the
//! [`client`] makes the HTTP request through the [`ssrf`] guard, and the
//! result is written back (attempt + new delivery state) in one store call.
//!
//! Invariant: every leased delivery ends in `record_attempt` or its lease
//! expires and it is leased again — work is never dropped, only repeated.

mod attempt;
mod client;
mod config;
mod dispatcher;
mod error;
mod health;
pub mod metrics;
pub mod operational;
mod rate;
mod retention;
mod slots;
pub mod ssrf;

pub use config::DeliveryConfig;
pub use dispatcher::{Engine, EngineHandle, Offer};
pub use error::DeliveryError;
pub use health::HealthConfig;

/// The certificates (DER) of a PEM file, for
/// [`DeliveryConfig::extra_roots`]; an error if it holds none, or anything
/// that does not decode.
pub fn certificates_in(pem: &[u8]) -> Result<Vec<Vec<u8>>, DeliveryError> {
    use rustls::pki_types::pem::PemObject;
    let certificates = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .map(|certificate| certificate.map(|der| der.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| DeliveryError::Client(format!("not a PEM certificate: {error}")))?;
    if certificates.is_empty() {
        return Err(DeliveryError::Client("no PEM certificate in it".into()));
    }
    Ok(certificates)
}
