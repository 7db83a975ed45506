//! SQLite's own page cache, wrapped so that a commit does not walk all of it.
//!
//! When a b-tree split hands out new pages out of order, SQLite swaps their
//! numbers, parking one page for a moment under a number no page ever has
//! (the page holding the lock byte at 1 GiB). The default cache remembers
//! the largest number it ever held, and at every commit SQLite asks it to
//! drop the pages past the end of the database. Once the parked number has
//! been seen, that request walks the whole hash table — 8,192 buckets and
//! every cached page for the writer's 32 MiB — to find nothing: a profile of
//! the end-to-end benchmark put 11 % of the writer thread there, since
//! nearly every commit splits a page somewhere.
//!
//! The wrapper passes every call through to the default cache and keeps its
//! own account of the largest page number each cache can hold, leaving out
//! the parked one while it is back under its real number. A truncation is
//! passed on only when a page can lie past the limit. Installed once per
//! process, before the first connection opens; if SQLite was already set
//! up (another library opened a database first), it stays out of the way.

// SQLite's page cache interface is a C vtable: each function takes the raw
// handles SQLite gives back to it. Nothing else in Herald needs `unsafe`.
#![allow(unsafe_code)]

use std::os::raw::{c_int, c_uint, c_void};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use rusqlite::ffi;

/// Where SQLite's lock byte lives; its page is never used for data, which
/// is why a split borrows its number.
const PENDING_BYTE: u32 = 0x4000_0000;

/// The default cache's functions, as SQLite had them before we wrapped them.
struct Inner(ffi::sqlite3_pcache_methods2);

// SAFETY: a table of C function pointers and SQLite's own argument for them,
// written once before any cache exists and only read afterwards.
unsafe impl Send for Inner {}
unsafe impl Sync for Inner {}

static INNER: OnceLock<Inner> = OnceLock::new();

/// Installs the wrapper if SQLite has not been initialised yet; later calls
/// do nothing. Returns whether the wrapper is in place.
pub(crate) fn install() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| match try_install() {
        Ok(()) => true,
        Err(code) => {
            tracing::debug!(
                code,
                "SQLite was set up before Herald; default page cache kept"
            );
            false
        }
    })
}

fn try_install() -> Result<(), c_int> {
    let mut inner = std::mem::MaybeUninit::<ffi::sqlite3_pcache_methods2>::zeroed();
    // SAFETY: GETPCACHE2 writes one `sqlite3_pcache_methods2` through the
    // pointer; a zeroed one is a valid value of that C struct to start from.
    let code = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_GETPCACHE2, inner.as_mut_ptr()) };
    if code != ffi::SQLITE_OK {
        return Err(code);
    }
    // SAFETY: filled in by SQLite above (or left zeroed, which is checked
    // next).
    let inner = unsafe { inner.assume_init() };
    let complete = inner.xInit.is_some()
        && inner.xShutdown.is_some()
        && inner.xCreate.is_some()
        && inner.xCachesize.is_some()
        && inner.xPagecount.is_some()
        && inner.xFetch.is_some()
        && inner.xUnpin.is_some()
        && inner.xRekey.is_some()
        && inner.xTruncate.is_some()
        && inner.xDestroy.is_some()
        && inner.xShrink.is_some();
    if !complete {
        return Err(ffi::SQLITE_MISUSE);
    }
    // Set before SQLite can call our functions (they read it); `install`
    // runs this once, so it is never set already.
    if INNER.set(Inner(inner)).is_err() {
        return Err(ffi::SQLITE_MISUSE);
    }
    let ours = ffi::sqlite3_pcache_methods2 {
        iVersion: 1,
        pArg: std::ptr::null_mut(),
        xInit: Some(init),
        xShutdown: Some(shutdown),
        xCreate: Some(create),
        xCachesize: Some(cache_size),
        xPagecount: Some(page_count),
        xFetch: Some(fetch),
        xUnpin: Some(unpin),
        xRekey: Some(rekey),
        xTruncate: Some(truncate),
        xDestroy: Some(destroy),
        xShrink: Some(shrink),
    };
    // SAFETY: PCACHE2 copies the struct; SQLite is not initialised yet (it
    // answers SQLITE_MISUSE otherwise, and keeps its default).
    let code = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_PCACHE2, &ours) };
    if code != ffi::SQLITE_OK {
        return Err(code);
    }
    Ok(())
}

fn inner() -> &'static ffi::sqlite3_pcache_methods2 {
    match INNER.get() {
        Some(Inner(methods)) => methods,
        // Our functions are only handed to SQLite after INNER is set.
        None => unreachable!("the page cache wrapper runs only once installed"),
    }
}

/// One cache, as SQLite sees it: the default cache's handle and our account.
struct Cache {
    inner: *mut ffi::sqlite3_pcache,
    /// The number a split parks a page under, for this cache's page size.
    parking: c_uint,
    /// No page held has a larger number, the parked one aside.
    highest: AtomicU32,
    /// Pages parked right now (0 or 1).
    parked: AtomicU32,
}

impl Cache {
    /// # Safety
    /// `cache` must be a handle `create` returned and `destroy` has not freed.
    unsafe fn from_handle<'a>(cache: *mut ffi::sqlite3_pcache) -> &'a Cache {
        // SAFETY: per this function's contract, it points to a live `Cache`.
        unsafe { &*(cache as *const Cache) }
    }

    fn saw(&self, key: c_uint) {
        self.highest.fetch_max(key, Ordering::Relaxed);
    }
}

unsafe extern "C" fn init(_: *mut c_void) -> c_int {
    let inner = inner();
    // SAFETY: the default cache's own function, with its own argument.
    unsafe { inner.xInit.map_or(ffi::SQLITE_MISUSE, |f| f(inner.pArg)) }
}

unsafe extern "C" fn shutdown(_: *mut c_void) {
    let inner = inner();
    if let Some(f) = inner.xShutdown {
        // SAFETY: as in `init`.
        unsafe { f(inner.pArg) }
    }
}

unsafe extern "C" fn create(
    page_size: c_int,
    extra: c_int,
    purgeable: c_int,
) -> *mut ffi::sqlite3_pcache {
    let Some(create) = inner().xCreate else {
        return std::ptr::null_mut();
    };
    // SAFETY: SQLite's arguments, passed on unchanged.
    let handle = unsafe { create(page_size, extra, purgeable) };
    if handle.is_null() {
        return handle;
    }
    let page_size = c_uint::try_from(page_size).unwrap_or(1).max(1);
    let cache = Box::new(Cache {
        inner: handle,
        parking: PENDING_BYTE / page_size + 1,
        highest: AtomicU32::new(0),
        parked: AtomicU32::new(0),
    });
    Box::into_raw(cache).cast()
}

unsafe extern "C" fn cache_size(cache: *mut ffi::sqlite3_pcache, pages: c_int) {
    // SAFETY: SQLite passes handles `create` returned.
    let cache = unsafe { Cache::from_handle(cache) };
    if let Some(f) = inner().xCachesize {
        // SAFETY: the default cache's handle, with SQLite's argument.
        unsafe { f(cache.inner, pages) }
    }
}

unsafe extern "C" fn page_count(cache: *mut ffi::sqlite3_pcache) -> c_int {
    // SAFETY: as in `cache_size`.
    let cache = unsafe { Cache::from_handle(cache) };
    // SAFETY: as in `cache_size`.
    inner().xPagecount.map_or(0, |f| unsafe { f(cache.inner) })
}

unsafe extern "C" fn fetch(
    cache: *mut ffi::sqlite3_pcache,
    key: c_uint,
    create: c_int,
) -> *mut ffi::sqlite3_pcache_page {
    // SAFETY: as in `cache_size`.
    let cache = unsafe { Cache::from_handle(cache) };
    if create != 0 {
        cache.saw(key);
    }
    match inner().xFetch {
        // SAFETY: as in `cache_size`.
        Some(f) => unsafe { f(cache.inner, key, create) },
        None => std::ptr::null_mut(),
    }
}

unsafe extern "C" fn unpin(
    cache: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    discard: c_int,
) {
    // SAFETY: as in `cache_size`.
    let cache = unsafe { Cache::from_handle(cache) };
    if let Some(f) = inner().xUnpin {
        // SAFETY: `page` came from the default cache through `fetch`.
        unsafe { f(cache.inner, page, discard) }
    }
}

unsafe extern "C" fn rekey(
    cache: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    old: c_uint,
    new: c_uint,
) {
    // SAFETY: as in `cache_size`.
    let cache = unsafe { Cache::from_handle(cache) };
    if let Some(f) = inner().xRekey {
        // SAFETY: as in `unpin`.
        unsafe { f(cache.inner, page, old, new) }
    }
    if old == cache.parking {
        // Saturating: a parked page is only ever moved back once.
        let _ = cache
            .parked
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
    if new == cache.parking {
        #[cfg(test)]
        tests::PARKED.with(|count| count.set(count.get() + 1));
        cache.parked.fetch_add(1, Ordering::Relaxed);
    } else {
        cache.saw(new);
    }
}

unsafe extern "C" fn truncate(cache: *mut ffi::sqlite3_pcache, limit: c_uint) {
    // SAFETY: as in `cache_size`.
    let cache = unsafe { Cache::from_handle(cache) };
    let highest = cache.highest.load(Ordering::Relaxed);
    if cache.parked.load(Ordering::Relaxed) == 0 && highest < limit {
        return;
    }
    #[cfg(test)]
    tests::PASSED_ON.with(|count| count.set(count.get() + 1));
    if let Some(f) = inner().xTruncate {
        // SAFETY: as in `cache_size`.
        unsafe { f(cache.inner, limit) }
    }
    cache
        .highest
        .store(highest.min(limit.saturating_sub(1)), Ordering::Relaxed);
    if limit <= cache.parking {
        cache.parked.store(0, Ordering::Relaxed);
    }
}

unsafe extern "C" fn destroy(cache: *mut ffi::sqlite3_pcache) {
    // SAFETY: SQLite destroys each handle `create` returned once, last.
    let cache = unsafe { Box::from_raw(cache.cast::<Cache>()) };
    if let Some(f) = inner().xDestroy {
        // SAFETY: the default cache's handle, destroyed once with ours.
        unsafe { f(cache.inner) }
    }
}

unsafe extern "C" fn shrink(cache: *mut ffi::sqlite3_pcache) {
    // SAFETY: as in `cache_size`.
    let cache = unsafe { Cache::from_handle(cache) };
    if let Some(f) = inner().xShrink {
        // SAFETY: as in `cache_size`.
        unsafe { f(cache.inner) }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use rusqlite::Connection;

    thread_local! {
        /// Pages this thread's connections parked during a split.
        pub(super) static PARKED: Cell<u64> = const { Cell::new(0) };
        /// Truncations this thread's connections passed on.
        pub(super) static PASSED_ON: Cell<u64> = const { Cell::new(0) };
    }

    fn counts() -> (u64, u64) {
        (PARKED.with(Cell::get), PASSED_ON.with(Cell::get))
    }

    /// Rows whose keys land all over an index, so that its pages split in
    /// every order.
    fn insert(connection: &Connection, from: u64, count: u64) {
        let mut statement = connection
            .prepare_cached("INSERT INTO t (k, v) VALUES (?1, ?2)")
            .expect("prepare");
        for n in from..from + count {
            let key = format!("{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            statement
                .execute(rusqlite::params![key, "x".repeat(200)])
                .expect("insert");
        }
    }

    fn rows(connection: &Connection) -> u64 {
        connection
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .expect("count")
    }

    #[test]
    fn commits_after_splits_leave_the_cache_alone_and_rollbacks_still_drop_pages() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let connection = crate::connect(&directory.path().join("t.db")).expect("open");
        assert!(super::install(), "installed before the first connection");
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA cache_size = -32768;
                 CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT NOT NULL);",
            )
            .expect("schema");

        let (parked_before, passed_before) = counts();
        for batch in 0..200 {
            let transaction = connection.unchecked_transaction().expect("begin");
            insert(&transaction, batch * 50, 50);
            transaction.commit().expect("commit");
        }
        let (parked, passed) = counts();
        assert!(
            parked > parked_before,
            "the inserts split pages out of order"
        );
        assert_eq!(passed, passed_before, "no commit truncated the cache");

        // A transaction that grows the file and is rolled back must drop
        // the pages it added, or a later read would see them.
        let transaction = connection.unchecked_transaction().expect("begin");
        insert(&transaction, 1_000_000, 2_000);
        assert_eq!(rows(&transaction), 12_000);
        transaction.rollback().expect("rollback");
        assert!(counts().1 > passed, "the rollback truncated the cache");
        assert_eq!(rows(&connection), 10_000);
        insert(&connection, 2_000_000, 500);
        assert_eq!(rows(&connection), 10_500);
        let check: String = connection
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .expect("integrity check");
        assert_eq!(check, "ok");
    }
}
