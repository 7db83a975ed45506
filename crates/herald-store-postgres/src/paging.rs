//! Keyset pagination shared by every list query.

use deadpool_postgres::GenericClient;
use herald_store::{Cursor, Page, PageRequest};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::error::Result;

/// One bound value of a query built at run time.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// Boxes a value as a [`Param`].
pub(crate) fn param(value: impl ToSql + Sync + Send + 'static) -> Param {
    Box::new(value)
}

/// A `SELECT … WHERE …` under construction, with its bound values.
pub(crate) struct Select {
    sql: String,
    params: Vec<Param>,
}

impl Select {
    /// Starts from `SELECT {columns} FROM {from} WHERE true`.
    pub(crate) fn new(columns: &str, from: &str) -> Self {
        Self {
            sql: format!("SELECT {columns} FROM {from} WHERE true"),
            params: Vec::new(),
        }
    }

    /// Adds `AND {condition}`; each `?` in it becomes the next `$n`, bound
    /// to `values` in order.
    pub(crate) fn and(mut self, condition: &str, values: impl IntoIterator<Item = Param>) -> Self {
        self.sql.push_str(" AND ");
        let mut values = values.into_iter();
        for piece in condition.split_inclusive('?') {
            match piece.strip_suffix('?') {
                Some(text) => {
                    self.sql.push_str(text);
                    self.params
                        .push(values.next().expect("one value per placeholder"));
                    self.sql.push_str(&format!("${}", self.params.len()));
                }
                None => self.sql.push_str(piece),
            }
        }
        self
    }

    /// Adds `AND {column} = ANY(?)` unless `values` is empty.
    pub(crate) fn and_any(self, column: &str, values: &[String]) -> Self {
        if values.is_empty() {
            return self;
        }
        self.and(&format!("{column} = ANY(?)"), [param(values.to_vec())])
    }

    /// Runs the query one page at a time, keyed on `key` (a unique column
    /// that sorts in creation order).
    pub(crate) async fn page<T>(
        self,
        client: &impl GenericClient,
        key: &str,
        request: &PageRequest,
        decode: fn(&Row) -> Result<T>,
    ) -> Result<Page<T>> {
        let (forward, backward) = if request.newest_first {
            ("<", ">")
        } else {
            (">", "<")
        };
        let (list_order, reverse_order) = if request.newest_first {
            ("DESC", "ASC")
        } else {
            ("ASC", "DESC")
        };
        let (select, order, reversed) = match &request.cursor {
            Cursor::Start => (self, list_order, false),
            Cursor::After(id) => (
                self.and(&format!("{key} {forward} ?"), [param(id.clone())]),
                list_order,
                false,
            ),
            Cursor::Before(id) => (
                self.and(&format!("{key} {backward} ?"), [param(id.clone())]),
                reverse_order,
                true,
            ),
        };
        let limit = request.limit.max(1);
        let sql = format!("{} ORDER BY {key} {order} LIMIT {}", select.sql, limit + 1);
        let mut items = select.rows(client, &sql, decode).await?;
        let has_more = items.len() > limit;
        items.truncate(limit);
        if reversed {
            items.reverse();
        }
        Ok(Page { items, has_more })
    }

    /// Runs the query unpaged.
    pub(crate) async fn all<T>(
        self,
        client: &impl GenericClient,
        decode: fn(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let sql = self.sql.clone();
        self.rows(client, &sql, decode).await
    }

    async fn rows<T>(
        &self,
        client: &impl GenericClient,
        sql: &str,
        decode: fn(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let statement = client.prepare_cached(sql).await?;
        let params: Vec<&(dyn ToSql + Sync)> = self
            .params
            .iter()
            .map(|value| value.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = client.query(&statement, &params).await?;
        rows.iter().map(decode).collect()
    }
}
