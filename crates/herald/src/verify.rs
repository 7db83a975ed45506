//! `herald verify`: checks a captured webhook's signature offline, with the
//! same verifiers the gateway runs for inbound sources — for the receiver
//! who wants to know whether a request Herald (or Stripe, GitHub, …) sent
//! them really verifies, without writing code first.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use herald_core::{Clock, SystemClock};
use herald_signing::verifiers::InboundRequest;
use serde_json::{Map, Value};

/// Exit status when the request does not verify.
const NOT_VERIFIED: u8 = 1;
/// Exit status when the command line itself cannot be used, as for clap's
/// own usage errors.
const BAD_INPUT: u8 = 2;

#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The sender's scheme: `svix` (Standard Webhooks, as Herald signs),
    /// `stripe`, `github`, `slack`, `shopify`, another Svix Ingest type, or
    /// `generic-webhook` with `--config` naming the verifier.
    #[arg(long = "type", value_name = "TYPE", default_value = "svix")]
    source_type: String,
    /// The signing secret (`whsec_…` for Standard Webhooks).
    #[arg(long, env = "HERALD_VERIFY_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// A source config as JSON, as `POST /ingest/api/v1/source` takes it;
    /// `--secret` fills in its `secret` (or its verifier's, for the generic
    /// schemes that take one: twilio, gitlab, hmac).
    #[arg(long, value_name = "JSON")]
    config: Option<String>,
    /// A request header, `Name: value`; repeat for each one.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// The URL the sender called (Twilio signs it).
    #[arg(long, default_value = "")]
    url: String,
    /// Check as of this Unix time instead of now: for a request captured
    /// earlier, as schemes that sign a timestamp allow five minutes.
    #[arg(long, value_name = "UNIX_SECONDS")]
    at: Option<i64>,
    /// The raw body, exactly as received; standard input when absent or `-`.
    body: Option<PathBuf>,
}

/// Runs the check and says what it found; the exit status tells scripts.
pub(crate) fn run(args: VerifyArgs) -> ExitCode {
    match check(args) {
        Ok(Ok(source_type)) => {
            println!("verified: the request carries a valid {source_type} signature");
            ExitCode::SUCCESS
        }
        Ok(Err(reason)) => {
            eprintln!("not verified: {reason}");
            ExitCode::from(NOT_VERIFIED)
        }
        Err(problem) => {
            eprintln!("herald verify: {problem}");
            ExitCode::from(BAD_INPUT)
        }
    }
}

/// The outer error is unusable input; the inner one the verdict.
fn check(args: VerifyArgs) -> Result<Result<String, String>, String> {
    let config = config(args.config.as_deref(), args.secret)?;
    let (verifier, signed_url) = herald_server::source_verifier(&args.source_type, &config)
        .map_err(|problem| problem.to_string())?;
    let headers = args
        .headers
        .iter()
        .map(|line| header(line))
        .collect::<Result<Vec<_>, _>>()?;
    let body = body(args.body.as_ref())?;
    let now = match args.at {
        Some(at) => at,
        None => SystemClock.now().unix_seconds(),
    };
    let request = InboundRequest {
        body: &body,
        headers: &headers,
        public_url: signed_url.as_deref().unwrap_or(&args.url),
    };
    Ok(verifier
        .verify(&request, now)
        .map(|()| args.source_type)
        .map_err(|failure| failure.to_string()))
}

/// The source config, with `secret` put where the scheme reads it: in the
/// generic verifier's object when there is one, else at the top.
fn config(json: Option<&str>, secret: Option<String>) -> Result<Value, String> {
    let mut config = match json {
        None => Value::Object(Map::new()),
        Some(text) => serde_json::from_str(text)
            .map_err(|problem| format!("--config is not JSON: {problem}"))?,
    };
    let Some(secret) = secret else {
        return Ok(config);
    };
    let Some(object) = config.as_object_mut() else {
        return Err("--config must be a JSON object".into());
    };
    let target = match object.get_mut("verifier").and_then(Value::as_object_mut) {
        Some(verifier) => verifier,
        None => object,
    };
    target.insert("secret".into(), Value::String(secret));
    Ok(config)
}

fn header(line: &str) -> Result<(String, String), String> {
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| format!("--header '{line}' is not 'Name: value'"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("--header '{line}' has no name"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

fn body(path: Option<&PathBuf>) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    match path.filter(|path| path.as_os_str() != "-") {
        Some(path) => {
            body = std::fs::read(path)
                .map_err(|problem| format!("cannot read {}: {problem}", path.display()))?;
        }
        None => {
            std::io::stdin()
                .read_to_end(&mut body)
                .map_err(|problem| format!("cannot read standard input: {problem}"))?;
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_goes_where_the_scheme_reads_it() {
        let top = config(None, Some("s3cret".into())).expect("config");
        assert_eq!(top, serde_json::json!({"secret": "s3cret"}));
        let generic = config(
            Some(r#"{"verifier": {"type": "gitlab"}}"#),
            Some("token".into()),
        )
        .expect("config");
        assert_eq!(
            generic,
            serde_json::json!({"verifier": {"type": "gitlab", "secret": "token"}})
        );
        assert!(config(Some("[1]"), Some("s".into())).is_err());
        assert!(config(Some("{"), None).is_err());
    }

    #[test]
    fn headers_are_split_at_the_first_colon() {
        assert_eq!(
            header("Stripe-Signature: t=1,v1=ab:cd").expect("header"),
            ("Stripe-Signature".into(), "t=1,v1=ab:cd".into())
        );
        assert!(header("no colon").is_err());
        assert!(header(": value").is_err());
    }
}
