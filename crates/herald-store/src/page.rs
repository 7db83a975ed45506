//! Cursor pagination by id. Ids sort by creation time, so "after this id" is
//! a stable cursor even while new objects arrive.

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// From the start of the list.
    Start,
    /// The objects that come after this id in list order.
    After(String),
    /// The objects that come before this id in list order (going back).
    Before(String),
}

/// One page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub cursor: Cursor,
    /// Newest first when true (messages, attempts); oldest first otherwise.
    pub newest_first: bool,
}

/// One page of results, in list order.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Whether more items follow in the direction the request went.
    pub has_more: bool,
}

impl<T> Page<T> {
    /// Transforms the items, keeping the paging facts.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            has_more: self.has_more,
        }
    }
}
