//! Keyset pagination shared by every list query.

use herald_store::{Cursor, Page, PageRequest, StoreError};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, Row};

use crate::error::backend;

/// A `SELECT … WHERE …` under construction, with its bound values.
pub(crate) struct Select {
    sql: String,
    params: Vec<Value>,
}

impl Select {
    /// Starts from `SELECT {columns} FROM {from} WHERE 1 = 1`.
    pub(crate) fn new(columns: &str, from: &str) -> Self {
        Self {
            sql: format!("SELECT {columns} FROM {from} WHERE 1 = 1"),
            params: Vec::new(),
        }
    }

    /// Adds `AND {condition}` with `?` placeholders bound to `values` in order.
    pub(crate) fn and(mut self, condition: &str, values: impl IntoIterator<Item = Value>) -> Self {
        self.sql.push_str(" AND ");
        self.sql.push_str(condition);
        self.params.extend(values);
        self
    }

    /// Adds `AND {column} IN (?, …)` unless `values` is empty.
    pub(crate) fn and_in(self, column: &str, values: &[String]) -> Self {
        if values.is_empty() {
            return self;
        }
        let placeholders = vec!["?"; values.len()].join(", ");
        self.and(
            &format!("{column} IN ({placeholders})"),
            values.iter().cloned().map(Value::Text),
        )
    }

    /// Runs the query one page at a time, keyed on `key` (a unique column
    /// that sorts in creation order).
    pub(crate) fn page<T>(
        self,
        connection: &Connection,
        key: &str,
        request: &PageRequest,
        decode: fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let (forward, backward) = if request.newest_first {
            ("<", ">")
        } else {
            (">", "<")
        };
        let (ascending, descending) = ("ASC", "DESC");
        let list_order = if request.newest_first {
            descending
        } else {
            ascending
        };
        let reverse_order = if request.newest_first {
            ascending
        } else {
            descending
        };
        let (select, order, reversed) = match &request.cursor {
            Cursor::Start => (self, list_order, false),
            Cursor::After(id) => (
                self.and(&format!("{key} {forward} ?"), [Value::Text(id.clone())]),
                list_order,
                false,
            ),
            Cursor::Before(id) => (
                self.and(&format!("{key} {backward} ?"), [Value::Text(id.clone())]),
                reverse_order,
                true,
            ),
        };
        let limit = request.limit.max(1);
        let sql = format!("{} ORDER BY {key} {order} LIMIT {}", select.sql, limit + 1);
        let mut items = select.rows(connection, &sql, decode)?;
        let has_more = items.len() > limit;
        items.truncate(limit);
        if reversed {
            items.reverse();
        }
        Ok(Page { items, has_more })
    }

    /// Runs the query unpaged.
    pub(crate) fn all<T>(
        self,
        connection: &Connection,
        decode: fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let sql = self.sql.clone();
        self.rows(connection, &sql, decode)
    }

    fn rows<T>(
        &self,
        connection: &Connection,
        sql: &str,
        decode: fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut statement = connection.prepare_cached(sql).map_err(backend)?;
        let mut rows = statement
            .query(params_from_iter(self.params.iter()))
            .map_err(backend)?;
        let mut items = Vec::new();
        while let Some(row) = rows.next().map_err(backend)? {
            items.push(decode(row)?);
        }
        Ok(items)
    }
}
