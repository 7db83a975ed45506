//! The fuzzing harness: turns arbitrary bytes into a request for one
//! verifier and runs it. The cargo-fuzz targets in `fuzz/` call [`run`]
//! (feature `fuzzing`), and a seeded unit test below calls it on stable
//! with a few thousand generated inputs per verifier. Both only assert that
//! nothing panics: whatever a sender puts in headers, body or URL, a
//! verifier answers `Ok` or `Err`.
//!
//! Input layout: two control bytes (bit `i` includes the target's header
//! `i`; bit 15 upper-cases header names; bits 8–12 pick the generic HMAC's
//! options), then fields separated by `0xFF` (a byte never in UTF-8): the
//! current time as decimal text, the public URL, the body, then one value per
//! header of the target in order.

use crate::verifiers::{
    ApiKeyConfig, BasicAuthConfig, GitHubConfig, GitLabConfig, HmacAlgorithm, HmacConfig,
    InboundRequest, Secret, ShopifyConfig, SignatureEncoding, SlackConfig, StandardWebhooksConfig,
    StripeConfig, TwilioConfig, Verifier, VerifyError,
};
use herald_core::HmacKey;

/// Which verifier an input drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Standard Webhooks / Svix.
    StandardWebhooks,
    /// Stripe.
    Stripe,
    /// GitHub.
    GitHub,
    /// Slack.
    Slack,
    /// Shopify.
    Shopify,
    /// Twilio.
    Twilio,
    /// GitLab.
    GitLab,
    /// Generic HMAC, its options taken from the input.
    Hmac,
    /// Basic auth.
    BasicAuth,
    /// API key.
    ApiKey,
}

impl Target {
    /// Every target, for loops.
    pub const ALL: [Target; 10] = [
        Target::StandardWebhooks,
        Target::Stripe,
        Target::GitHub,
        Target::Slack,
        Target::Shopify,
        Target::Twilio,
        Target::GitLab,
        Target::Hmac,
        Target::BasicAuth,
        Target::ApiKey,
    ];

    fn header_names(self) -> &'static [&'static str] {
        match self {
            Target::StandardWebhooks => &[
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "svix-id",
                "svix-timestamp",
                "svix-signature",
            ],
            Target::Stripe => &["Stripe-Signature"],
            Target::GitHub => &["X-Hub-Signature-256"],
            Target::Slack => &["X-Slack-Signature", "X-Slack-Request-Timestamp"],
            Target::Shopify => &["X-Shopify-Hmac-Sha256"],
            Target::Twilio => &["X-Twilio-Signature"],
            Target::GitLab => &["X-Gitlab-Token"],
            Target::Hmac => &["X-Signature", "X-Timestamp"],
            Target::BasicAuth => &["Authorization"],
            Target::ApiKey => &["X-Api-Key"],
        }
    }

    fn verifier(self, control: u16) -> Verifier {
        let secret = || Secret::new("fuzzing-secret").expect("not empty");
        match self {
            Target::StandardWebhooks => Verifier::StandardWebhooks(StandardWebhooksConfig {
                secret: HmacKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                    .expect("a valid key"),
            }),
            Target::Stripe => Verifier::Stripe(StripeConfig { secret: secret() }),
            Target::GitHub => Verifier::GitHub(GitHubConfig { secret: secret() }),
            Target::Slack => Verifier::Slack(SlackConfig { secret: secret() }),
            Target::Shopify => Verifier::Shopify(ShopifyConfig { secret: secret() }),
            Target::Twilio => Verifier::Twilio(TwilioConfig { secret: secret() }),
            Target::GitLab => Verifier::GitLab(GitLabConfig { secret: secret() }),
            Target::Hmac => Verifier::Hmac(HmacConfig {
                header: "X-Signature".into(),
                algorithm: match (control >> 8) % 3 {
                    0 => HmacAlgorithm::Sha1,
                    1 => HmacAlgorithm::Sha256,
                    _ => HmacAlgorithm::Sha512,
                },
                encoding: if control & (1 << 10) == 0 {
                    SignatureEncoding::Hex
                } else {
                    SignatureEncoding::Base64
                },
                prefix: (control & (1 << 11) != 0).then(|| "sha256=".into()),
                timestamp_header: (control & (1 << 12) != 0).then(|| "X-Timestamp".into()),
                secret: secret(),
            }),
            Target::BasicAuth => Verifier::BasicAuth(BasicAuthConfig {
                username: "herald".into(),
                password: secret(),
            }),
            Target::ApiKey => Verifier::ApiKey(ApiKeyConfig {
                header: "X-Api-Key".into(),
                value: secret(),
            }),
        }
    }
}

/// Used when the input's time field is not a number.
const DEFAULT_NOW: i64 = 1_700_000_000;

/// Decodes `data` (see the module docs) and verifies it with `target`'s
/// verifier, returning its verdict; panics only if the verifier does.
pub fn run(target: Target, data: &[u8]) -> Result<(), VerifyError> {
    let (control, rest) = match data {
        [high, low, rest @ ..] => (u16::from_be_bytes([*high, *low]), rest),
        _ => (0, data),
    };
    let mut fields = rest.split(|byte| *byte == 0xFF);
    let now = fields
        .next()
        .and_then(|text| std::str::from_utf8(text).ok())
        .and_then(|text| text.parse::<i64>().ok())
        .unwrap_or(DEFAULT_NOW);
    let public_url = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let body = fields.next().unwrap_or_default();
    let uppercase = control & (1 << 15) != 0;
    let headers: Vec<(String, String)> = target
        .header_names()
        .iter()
        .zip(fields)
        .enumerate()
        .filter(|(index, _)| control & (1 << index) != 0)
        .map(|(_, (name, value))| {
            let name = if uppercase {
                name.to_ascii_uppercase()
            } else {
                (*name).to_owned()
            };
            (name, String::from_utf8_lossy(value).into_owned())
        })
        .collect();
    let request = InboundRequest {
        body,
        headers: &headers,
        public_url: &public_url,
    };
    target.verifier(control).verify(&request, now)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// SplitMix64: a tiny, well-mixed generator with a fixed seed, so every
    /// run feeds the same inputs and a failure reproduces.
    struct SplitMix64(u64);

    impl SplitMix64 {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, bound: usize) -> usize {
            usize::try_from(self.next() % bound as u64).expect("below a usize bound")
        }
    }

    /// Pieces of real headers, spliced into values so random inputs reach
    /// the parsers' inner branches.
    const PIECES: &[&str] = &[
        "t=",
        "v1=",
        "v0=",
        "v1,",
        "v1a,",
        ",",
        " ",
        "=",
        ":",
        ".",
        "sha256=",
        "Basic ",
        "Bearer ",
        "whsec_",
        "1700000000",
        "1614265330",
        "-1",
        "99999999999999999999",
        "0",
        "deadbeef",
        "DEADBEEF",
        "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "aGVyYWxk",
        "==",
        "%2B",
        "&",
        "+",
        "?",
        "#",
        "://",
        "[::1]",
        ":443",
        "bodySHA256=",
        "é",
        "\u{0}",
        "https://herald.example/in/src_1?a=1",
    ];

    fn random_bytes(random: &mut SplitMix64, len: usize) -> Vec<u8> {
        (0..len).map(|_| random.next() as u8).collect()
    }

    fn hex(random: &mut SplitMix64, len: usize) -> String {
        random_bytes(random, len)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    fn base64(random: &mut SplitMix64, len: usize) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(random_bytes(random, len))
    }

    fn timestamp(random: &mut SplitMix64) -> String {
        (DEFAULT_NOW + random.below(1000) as i64 - 500).to_string()
    }

    /// A value shaped like what the provider really sends in `header`, with
    /// a random (so wrong) MAC.
    fn plausible(random: &mut SplitMix64, header: &str) -> String {
        match header {
            "webhook-id" | "svix-id" => format!("msg_{}", hex(random, 8)),
            "webhook-timestamp"
            | "svix-timestamp"
            | "X-Slack-Request-Timestamp"
            | "X-Timestamp" => timestamp(random),
            "webhook-signature" | "svix-signature" => (0..1 + random.below(3))
                .map(|_| format!("v1,{}", base64(random, 32)))
                .collect::<Vec<_>>()
                .join(" "),
            "Stripe-Signature" => format!(
                "t={},v1={},v1={}",
                timestamp(random),
                hex(random, 32),
                hex(random, 32)
            ),
            "X-Hub-Signature-256" => format!("sha256={}", hex(random, 32)),
            "X-Slack-Signature" => format!("v0={}", hex(random, 32)),
            "X-Shopify-Hmac-Sha256" => base64(random, 32),
            "X-Twilio-Signature" => base64(random, 20),
            "Authorization" => format!("Basic {}", base64(random, 12)),
            "X-Signature" => match random.below(3) {
                0 => hex(random, 32),
                1 => format!("sha256={}", hex(random, 32)),
                _ => base64(random, 64),
            },
            _ => hex(random, 8),
        }
    }

    /// Up to a few pieces and raw bytes (never the `0xFF` separator).
    fn noise(random: &mut SplitMix64, out: &mut Vec<u8>) {
        for _ in 0..random.below(6) {
            if random.below(4) == 0 {
                out.push(u8::try_from(random.below(255)).expect("below 255"));
            } else {
                out.extend_from_slice(PIECES[random.below(PIECES.len())].as_bytes());
            }
        }
    }

    fn input(random: &mut SplitMix64, target: Target) -> Vec<u8> {
        let mut data = Vec::new();
        data.extend_from_slice(&(random.next() as u16).to_be_bytes());
        let now = match random.below(4) {
            0 => i64::MIN.to_string(),
            1 => i64::MAX.to_string(),
            2 => timestamp(random),
            _ => String::new(),
        };
        data.extend_from_slice(now.as_bytes());
        data.push(0xFF);
        noise(random, &mut data); // URL
        data.push(0xFF);
        noise(random, &mut data); // body
        for header in target.header_names() {
            data.push(0xFF);
            // Half the values are plausible, half of those then damaged.
            match random.below(4) {
                0 => data.extend_from_slice(plausible(random, header).as_bytes()),
                1 => {
                    let mut value = plausible(random, header).into_bytes();
                    let at = random.below(value.len() + 1);
                    let mut inserted = Vec::new();
                    noise(random, &mut inserted);
                    value.splice(at..at, inserted);
                    data.extend_from_slice(&value);
                }
                _ => noise(random, &mut data),
            }
        }
        data
    }

    #[test]
    fn no_verifier_panics_on_thousands_of_seeded_inputs() {
        let mut random = SplitMix64(0x4845_5241_4C44); // "HERALD"
        for target in Target::ALL {
            let mut codes = BTreeSet::new();
            for _ in 0..3000 {
                let data = input(&mut random, target);
                // Random headers never verify (a MAC cannot be guessed);
                // `run` returning at all is the main check.
                let error = run(target, &data).expect_err("random input verified");
                codes.insert(error.code());
            }
            // The generator gets past the parsers: some inputs are well
            // formed enough to be judged on their signature.
            assert!(codes.contains("bad_signature"), "{target:?}: {codes:?}");
            assert!(codes.contains("missing_header"), "{target:?}: {codes:?}");
            // Raw bytes, without any structure.
            for _ in 0..500 {
                let data: Vec<u8> = (0..random.below(64)).map(|_| random.next() as u8).collect();
                assert!(run(target, &data).is_err(), "{target:?} accepted {data:?}");
            }
        }
    }

    #[test]
    fn the_harness_can_express_a_valid_request() {
        // The Standard Webhooks published vector, through the byte layout:
        // headers 0..=2 (the `webhook-*` family) present.
        let mut data = vec![0x00, 0b0000_0111];
        data.extend_from_slice(b"1614265330\xFFhttps://herald.example/\xFF");
        data.extend_from_slice(br#"{"test": 2432232314}"#);
        data.extend_from_slice(b"\xFFmsg_p5jXN8AQM9LWM0D4loKWxJek\xFF1614265330\xFF");
        data.extend_from_slice(b"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!(run(Target::StandardWebhooks, &data), Ok(()));
        data[1] = 0b0000_0011;
        assert_eq!(
            run(Target::StandardWebhooks, &data),
            Err(VerifyError::missing("webhook-signature"))
        );
    }
}
