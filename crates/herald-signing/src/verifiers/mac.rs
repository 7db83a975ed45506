//! The primitives every scheme shares: keyed MACs, decoding a received
//! signature, and constant-time comparison.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::{Choice, ConstantTimeEq};

/// The hash function under an HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacAlgorithm {
    /// HMAC-SHA1 (Twilio, older providers).
    Sha1,
    /// HMAC-SHA256 (most providers).
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// The HMAC of the concatenation of `parts` under `key`. Passing the parts
/// separately saves copying the body into a signed-content buffer.
pub(crate) fn hmac(algorithm: HmacAlgorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match algorithm {
        HmacAlgorithm::Sha1 => mac_with::<Hmac<Sha1>>(key, parts),
        HmacAlgorithm::Sha256 => mac_with::<Hmac<Sha256>>(key, parts),
        HmacAlgorithm::Sha512 => mac_with::<Hmac<Sha512>>(key, parts),
    }
}

fn mac_with<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <M as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Whether a received signature equals the expected one, in time that does
/// not depend on where they differ (only on their lengths, which are public).
pub(crate) fn signature_matches(expected: &[u8], received: &[u8]) -> Choice {
    expected.ct_eq(received)
}

/// Whether a received credential equals a configured secret. Both are hashed
/// first, so the comparison reveals neither the position of the first
/// difference nor the secret's length.
pub(crate) fn secret_matches(secret: &[u8], received: &[u8]) -> Choice {
    Sha256::digest(secret)
        .as_slice()
        .ct_eq(Sha256::digest(received).as_slice())
}

/// The bytes of a hex string (either case), or `None` if it is not one.
pub(crate) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    fn nibble(digit: u8) -> Option<u8> {
        match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'a'..=b'f' => Some(digit - b'a' + 10),
            b'A'..=b'F' => Some(digit - b'A' + 10),
            _ => None,
        }
    }
    let pairs = text.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    pairs
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// Standard-alphabet base64 that accepts the padding present or not: what
/// matters is the decoded MAC, not how the sender padded it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The bytes of a standard base64 string, or `None` if it is not one.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    BASE64.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lowercase hex, to compare MACs with published hex vectors.
    fn encode_hex(bytes: &[u8]) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        bytes
            .iter()
            .flat_map(|byte| {
                [
                    DIGITS[usize::from(byte >> 4)],
                    DIGITS[usize::from(byte & 0xf)],
                ]
            })
            .map(char::from)
            .collect()
    }

    #[test]
    fn hmac_matches_rfc_4231_and_rfc_2202_vectors() {
        // RFC 4231 test case 2 and RFC 2202 test case 2: key "Jefe".
        let data: &[&[u8]] = &[b"what do ya want ", b"for nothing?"];
        assert_eq!(
            encode_hex(&hmac(HmacAlgorithm::Sha256, b"Jefe", data)),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            encode_hex(&hmac(HmacAlgorithm::Sha512, b"Jefe", data)),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
        assert_eq!(
            encode_hex(&hmac(HmacAlgorithm::Sha1, b"Jefe", data)),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }

    #[test]
    fn hex_decodes_both_cases_and_rejects_junk() {
        assert_eq!(decode_hex("00fFa0"), Some(vec![0x00, 0xff, 0xa0]));
        assert_eq!(decode_hex(""), Some(vec![]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex("é1"), None);
    }

    #[test]
    fn base64_padding_is_optional() {
        assert_eq!(decode_base64("aGk="), Some(b"hi".to_vec()));
        assert_eq!(decode_base64("aGk"), Some(b"hi".to_vec()));
        assert_eq!(decode_base64("a*k="), None);
    }

    #[test]
    fn comparisons_need_equal_bytes() {
        assert!(bool::from(signature_matches(b"abc", b"abc")));
        assert!(!bool::from(signature_matches(b"abc", b"abd")));
        assert!(!bool::from(signature_matches(b"abc", b"ab")));
        assert!(bool::from(secret_matches(b"token", b"token")));
        assert!(!bool::from(secret_matches(b"token", b"token ")));
    }
}
