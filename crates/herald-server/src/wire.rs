//! Wire-level pieces shared by the API resources: list pages, PATCH fields,
//! time parameters.

use chrono::{DateTime, NaiveDateTime, Utc};
use herald_core::Timestamp;
use herald_store::{Cursor, Page, PageRequest};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// Largest page a list answers.
const MAX_LIMIT: usize = 250;
const DEFAULT_LIMIT: usize = 50;

/// A list answer: `{data, iterator, prevIterator, done}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListResponse<T> {
    pub(crate) data: Vec<T>,
    pub(crate) iterator: Option<String>,
    pub(crate) prev_iterator: Option<String>,
    pub(crate) done: bool,
}

/// The paging parameters every plain list takes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Items per page, 1 to 250 (50 by default).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<usize>,
    /// Where to continue: an answer's `iterator` (forwards) or
    /// `prevIterator` (backwards).
    iterator: Option<String>,
    /// `ascending` or `descending`.
    order: Option<String>,
}

impl ListParams {
    /// The page asked for; lists without `order` go oldest first.
    pub(crate) fn page(&self) -> Result<PageRequest, ApiError> {
        page_request(
            self.limit,
            self.iterator.as_deref(),
            self.order.as_deref(),
            false,
        )
    }
}

/// Builds a page request from `limit`, `iterator` and `order`. An iterator
/// starting with `-` (a `prevIterator`) pages backwards.
pub(crate) fn page_request(
    limit: Option<usize>,
    iterator: Option<&str>,
    order: Option<&str>,
    newest_first_by_default: bool,
) -> Result<PageRequest, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::invalid_query(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let newest_first = match order {
        None => newest_first_by_default,
        Some("ascending") => false,
        Some("descending") => true,
        Some(_) => {
            return Err(ApiError::invalid_query(
                "order",
                "must be 'ascending' or 'descending'",
            ))
        }
    };
    let cursor = match iterator.filter(|text| !text.is_empty()) {
        None => Cursor::Start,
        Some(text) => match text.strip_prefix('-') {
            Some(before) => Cursor::Before(before.to_owned()),
            None => Cursor::After(text.to_owned()),
        },
    };
    Ok(PageRequest {
        limit,
        cursor,
        newest_first,
    })
}

/// Turns a store page into a list answer; `key` gives an item's cursor.
pub(crate) fn list_response<T, U>(
    page: Page<T>,
    request: &PageRequest,
    key: impl Fn(&T) -> String,
    out: impl Fn(T) -> U,
) -> ListResponse<U> {
    let first = page.items.first().map(&key);
    let last = page.items.last().map(&key);
    let going_back = matches!(request.cursor, Cursor::Before(_));
    let incoming = match &request.cursor {
        Cursor::Start => None,
        Cursor::After(id) | Cursor::Before(id) => Some(id.clone()),
    };
    ListResponse {
        iterator: last.or(incoming),
        prev_iterator: first.map(|id| format!("-{id}")),
        done: if going_back { false } else { !page.has_more },
        data: page.items.into_iter().map(out).collect(),
    }
}

/// A PATCH field: absent (leave as is), `null` (clear) or a value.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(deserializer)? {
            Some(value) => Patch::Value(value),
            None => Patch::Null,
        })
    }
}

impl<T> Patch<T> {
    /// Applies the patch to an optional field.
    pub(crate) fn apply(self, field: &mut Option<T>) {
        match self {
            Patch::Absent => {}
            Patch::Null => *field = None,
            Patch::Value(value) => *field = Some(value),
        }
    }

    /// The new value if one was given.
    pub(crate) fn into_value(self) -> Option<T> {
        match self {
            Patch::Value(value) => Some(value),
            Patch::Absent | Patch::Null => None,
        }
    }
}

/// Parses a time given as RFC 3339, or without offset (taken as UTC, which
/// is what the Python SDK sends for naive datetimes).
pub(crate) fn parse_time(field: &str, text: &str, in_query: bool) -> Result<Timestamp, ApiError> {
    let parsed = DateTime::parse_from_rfc3339(text)
        .map(|value| value.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|naive| naive.and_utc())
        });
    match parsed {
        Ok(value) => Ok(Timestamp::from_datetime(value)),
        Err(_) => {
            let message = "must be an RFC 3339 date-time";
            Err(if in_query {
                ApiError::invalid_query(field, message)
            } else {
                ApiError::invalid(field, message)
            })
        }
    }
}

/// Parses an optional time query parameter.
pub(crate) fn query_time(field: &str, text: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    text.map(|text| parse_time(field, text, true)).transpose()
}

/// Splits a comma-joined list parameter (`event_types=a,b`).
pub(crate) fn comma_list(text: Option<&str>) -> Vec<String> {
    text.map(|text| {
        text.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prev_iterators_page_backwards() {
        let request = page_request(Some(2), Some("-app_b"), None, false).unwrap();
        assert_eq!(request.cursor, Cursor::Before("app_b".into()));
        assert!(page_request(Some(0), None, None, false).is_err());
        assert!(page_request(Some(251), None, None, false).is_err());
    }

    #[test]
    fn naive_and_offset_times_both_parse() {
        let naive = parse_time("since", "2024-01-01T00:00:00", true).unwrap();
        let offset = parse_time("since", "2024-01-01T00:00:00+00:00", true).unwrap();
        let zulu = parse_time("since", "2024-01-01T00:00:00.000Z", true).unwrap();
        assert_eq!(naive, offset);
        assert_eq!(offset, zulu);
        assert!(parse_time("since", "yesterday", true).is_err());
    }

    #[test]
    fn patch_tells_absent_from_null() {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            uid: Patch<String>,
        }
        let absent: Body = serde_json::from_str("{}").unwrap();
        let null: Body = serde_json::from_str(r#"{"uid":null}"#).unwrap();
        let value: Body = serde_json::from_str(r#"{"uid":"x"}"#).unwrap();
        assert_eq!(absent.uid, Patch::Absent);
        assert_eq!(null.uid, Patch::Null);
        assert_eq!(value.uid, Patch::Value("x".into()));
    }
}
