//! Validated values: once one of these exists it is known good, so nothing
//! downstream re-checks it (parse, don't validate).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn check_name(value: &str, field: &str, max_len: usize) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if value.len() > max_len {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max_len} characters"),
        ));
    }
    if !value.chars().all(is_name_char) {
        return Err(ValidationError::new(
            field,
            "may contain only letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

macro_rules! name_value {
    ($(#[$meta:meta])* $name:ident, $field:literal, $max:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates `value`.
            pub fn parse(value: &str) -> Result<Self, ValidationError> {
                check_name(value, $field, $max)?;
                Ok(Self(value.to_owned()))
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_value!(
    /// A caller-chosen unique name for an object, usable wherever its id is.
    Uid, "uid", 256
);
name_value!(
    /// An event type name such as `invoice.paid`.
    EventTypeName, "eventType", 256
);
name_value!(
    /// A channel a message is published on and an endpoint may subscribe to.
    Channel, "channels", 128
);

/// An endpoint URL: absolute `http` or `https` with a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EndpointUrl(String);

impl EndpointUrl {
    /// Longest URL accepted; longer ones are almost always mistakes.
    pub const MAX_LEN: usize = 65_536;

    /// Validates `value` as an endpoint URL.
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        if value.len() > Self::MAX_LEN {
            return Err(ValidationError::new("url", "is too long"));
        }
        let parsed = url::Url::parse(value)
            .map_err(|error| ValidationError::new("url", format!("is not a valid URL: {error}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ValidationError::new("url", "must use http or https"));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(ValidationError::new("url", "must have a host"));
        }
        Ok(Self(value.to_owned()))
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_the_svix_alphabet_only() {
        assert!(EventTypeName::parse("invoice.paid").is_ok());
        assert!(Uid::parse("customer-42_a.b").is_ok());
        let error = EventTypeName::parse("invoice paid").unwrap_err();
        assert_eq!(error.field, "eventType");
        assert!(Uid::parse("").is_err());
        assert!(Channel::parse(&"x".repeat(129)).is_err());
    }

    #[test]
    fn endpoint_urls_must_be_absolute_http() {
        assert!(EndpointUrl::parse("https://example.com/hook").is_ok());
        assert!(EndpointUrl::parse("http://127.0.0.1:8080/").is_ok());
        assert_eq!(
            EndpointUrl::parse("ftp://example.com").unwrap_err().field,
            "url"
        );
        assert!(EndpointUrl::parse("not a url").is_err());
        assert!(EndpointUrl::parse("/relative").is_err());
    }
}
