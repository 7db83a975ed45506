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

impl<T> Page<T> {
    /// Pages a list read whole because it is bounded anyway (a message's
    /// deliveries: one per endpoint of its app), by the same rules as the
    /// stores' keyset pages, so such a list pages like every other one.
    pub fn of_all(mut items: Vec<T>, request: &PageRequest, key: impl Fn(&T) -> &str) -> Page<T> {
        items.sort_by(|a, b| key(a).cmp(key(b)));
        if request.newest_first {
            items.reverse();
        }
        // Whether `item` comes after `id` in list order.
        let later = |item: &T, id: &str| {
            let order = key(item).cmp(id);
            if request.newest_first {
                order.is_lt()
            } else {
                order.is_gt()
            }
        };
        let limit = request.limit.max(1);
        match &request.cursor {
            Cursor::Start | Cursor::After(_) => {
                if let Cursor::After(id) = &request.cursor {
                    items.retain(|item| later(item, id));
                }
                let has_more = items.len() > limit;
                items.truncate(limit);
                Page { items, has_more }
            }
            Cursor::Before(id) => {
                items.retain(|item| !later(item, id) && key(item) != id);
                let has_more = items.len() > limit;
                let skip = items.len().saturating_sub(limit);
                Page {
                    items: items.into_iter().skip(skip).collect(),
                    has_more,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(limit: usize, cursor: Cursor, newest_first: bool) -> PageRequest {
        PageRequest {
            limit,
            cursor,
            newest_first,
        }
    }

    fn page(cursor: Cursor, newest_first: bool) -> Page<&'static str> {
        let all = vec!["c", "a", "e", "b", "d"];
        Page::of_all(all, &request(2, cursor, newest_first), |item| item)
    }

    #[test]
    fn a_list_read_whole_pages_forwards_in_list_order() {
        let first = page(Cursor::Start, false);
        assert_eq!(
            (first.items.clone(), first.has_more),
            (vec!["a", "b"], true)
        );
        let second = page(Cursor::After("b".into()), false);
        assert_eq!((second.items, second.has_more), (vec!["c", "d"], true));
        let last = page(Cursor::After("d".into()), false);
        assert_eq!((last.items, last.has_more), (vec!["e"], false));
        let newest = page(Cursor::After("d".into()), true);
        assert_eq!((newest.items, newest.has_more), (vec!["c", "b"], true));
    }

    #[test]
    fn a_list_read_whole_pages_backwards_to_the_items_just_before_the_cursor() {
        let back = page(Cursor::Before("e".into()), false);
        assert_eq!((back.items, back.has_more), (vec!["c", "d"], true));
        let start = page(Cursor::Before("b".into()), false);
        assert_eq!((start.items, start.has_more), (vec!["a"], false));
        let newest = page(Cursor::Before("a".into()), true);
        assert_eq!((newest.items, newest.has_more), (vec!["c", "b"], true));
    }
}
