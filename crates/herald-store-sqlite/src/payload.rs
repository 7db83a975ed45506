//! Message payloads as stored: large ones compressed.
//!
//! Payloads are JSON, and the large ones (a pushed branch's commits, an
//! invoice with its lines) run to tens of kilobytes that LZ4 shrinks
//! several-fold at a few microseconds per ten kilobytes. Stored compressed
//! they take fewer pages in the database, in the WAL and in every commit's
//! write. Small payloads, most of them, stay plain text.
//!
//! A compressed payload is a BLOB: a format byte, then an LZ4 block with
//! its plain size prepended. A TEXT value is a plain payload, so rows
//! written before compression existed read as they always did. PostgreSQL
//! needs none of this: it compresses large values itself (TOAST).

use herald_store::StoreError;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::ToSql;

/// Payloads shorter than this are stored as they are.
const THRESHOLD: usize = 1024;

/// The format byte of an LZ4 block with its size prepended.
const LZ4: u8 = 1;

/// The largest plain size a stored payload may claim, far above any
/// payload limit: a corrupt size cannot make a read allocate gigabytes.
const MAX_PLAIN: usize = 256 * 1024 * 1024;

/// A payload's compressed form, when storing it so is worth it. Made
/// before a write job is handed to the writer, so the one thread every
/// commit waits on does not compress.
pub(crate) struct Packed(Option<Vec<u8>>);

/// A payload as it is bound into the `INSERT`.
pub(crate) enum Stored<'a> {
    Plain(&'a str),
    Compressed(&'a [u8]),
}

impl ToSql for Stored<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Stored::Plain(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Stored::Compressed(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
        })
    }
}

impl Packed {
    /// How `payload`, the one this was packed from, is stored.
    pub(crate) fn stored<'a>(&'a self, payload: &'a str) -> Stored<'a> {
        match &self.0 {
            Some(bytes) => Stored::Compressed(bytes),
            None => Stored::Plain(payload),
        }
    }
}

/// Compresses `payload` if that saves an eighth.
pub(crate) fn pack(payload: &str) -> Packed {
    // Beyond what `decode` trusts a size claim for, it stays plain.
    if payload.len() < THRESHOLD || payload.len() > MAX_PLAIN {
        return Packed(None);
    }
    let block = lz4_flex::compress_prepend_size(payload.as_bytes());
    if 1 + block.len() > payload.len() - payload.len() / 8 {
        return Packed(None);
    }
    let mut stored = Vec::with_capacity(1 + block.len());
    stored.push(LZ4);
    stored.extend_from_slice(&block);
    Packed(Some(stored))
}

/// The payload a stored value holds.
pub(crate) fn decode(value: ValueRef<'_>) -> Result<String, StoreError> {
    let plain = match value {
        ValueRef::Text(text) => text.to_vec(),
        ValueRef::Blob([LZ4, block @ ..]) => {
            let claimed = block
                .first_chunk::<4>()
                .map(|size| u32::from_le_bytes(*size) as usize);
            let Some(size) = claimed.filter(|size| *size <= MAX_PLAIN) else {
                return Err(corrupt("a compressed payload claims an impossible size"));
            };
            let plain = lz4_flex::decompress_size_prepended(block)
                .map_err(|error| corrupt(&format!("a compressed payload: {error}")))?;
            // A cut-off block can decode to fewer bytes than it claims.
            if plain.len() != size {
                return Err(corrupt("a compressed payload is shorter than it claims"));
            }
            plain
        }
        ValueRef::Blob(_) => return Err(corrupt("a payload in an unknown format")),
        _ => return Err(corrupt("a payload that is neither text nor a blob")),
    };
    String::from_utf8(plain).map_err(|_| corrupt("a payload that is not UTF-8"))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(payload: &str) -> Vec<u8> {
        match pack(payload).0 {
            None => panic!("stored plain: {} bytes", payload.len()),
            Some(bytes) => bytes,
        }
    }

    /// A large, repetitive JSON document, as webhooks carry.
    fn invoice(lines: usize) -> String {
        let lines: Vec<String> = (0..lines)
            .map(|n| {
                format!(
                    r#"{{"id":"il_{n:06}","object":"line_item","amount":{},"currency":"eur","description":"Seat {n} of the team plan","period":{{"start":1700000000,"end":1702592000}}}}"#,
                    n * 100
                )
            })
            .collect();
        format!(r#"{{"object":"invoice","lines":[{}]}}"#, lines.join(","))
    }

    #[test]
    fn small_payloads_stay_plain_text() {
        let payload = r#"{"type":"invoice.paid","id":"in_1"}"#;
        assert!(matches!(pack(payload).stored(payload), Stored::Plain(text) if text == payload));
        assert_eq!(
            decode(ValueRef::Text(payload.as_bytes())).expect("decodes"),
            payload
        );
    }

    #[test]
    fn large_json_is_stored_compressed_and_read_back_whole() {
        let payload = invoice(200);
        let bytes = stored(&payload);
        assert!(
            bytes.len() * 3 < payload.len(),
            "{} bytes stored for {}",
            bytes.len(),
            payload.len()
        );
        assert_eq!(decode(ValueRef::Blob(&bytes)).expect("decodes"), payload);
    }

    #[test]
    fn payloads_that_do_not_shrink_stay_plain() {
        // Each character follows from the last by a step LZ4 finds no
        // repeats in.
        let mut state: u32 = 0x2545_f491;
        let payload: String = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                char::from(b'!' + (state % 90) as u8)
            })
            .collect();
        assert!(pack(&payload).0.is_none());
    }

    #[test]
    fn damaged_values_are_reported_not_trusted() {
        let mut bytes = stored(&invoice(50));
        let unknown = [9, 1, 2, 3];
        assert!(matches!(
            decode(ValueRef::Blob(&unknown)),
            Err(StoreError::Corrupt(_))
        ));
        // A size far beyond any payload is refused before anything is allocated.
        bytes[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(ValueRef::Blob(&bytes)),
            Err(StoreError::Corrupt(_))
        ));
        let truncated = stored(&invoice(50));
        assert!(matches!(
            decode(ValueRef::Blob(&truncated[..truncated.len() / 2])),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            decode(ValueRef::Integer(7)),
            Err(StoreError::Corrupt(_))
        ));
    }
}
