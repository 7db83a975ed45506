//! The writer's WAL file, written once per commit instead of twice per page.
//!
//! SQLite appends each page of a commit to the WAL with two `pwrite` calls
//! (the 24-byte frame header, then the page), then syncs. At ~40 pages per
//! commit that is ~80 system calls, each paying the kernel's entry and the
//! file system's per-call work: on a 2-core virtual machine with costly
//! system calls, ~5 µs each, a fifth of the writer thread's time. A VFS
//! shim over SQLite's own (`unix`) gathers the WAL writes of a commit in
//! memory and hands them to the file in one call when SQLite syncs, reads,
//! or asks the WAL's size, so the file sees the same bytes in the same
//! order, only in fewer calls.
//!
//! Durability is unchanged because of one rule: nothing buffered is ever
//! needed before the next sync, read or size check of this same file.
//! With `synchronous = FULL` SQLite syncs the WAL at every commit before it
//! publishes the commit in the WAL index, which is what other connections
//! read by, so a reader only ever looks for frames already written; the
//! writer connection's own reads of the WAL flush first. The shim must only
//! be used with `synchronous = FULL`, which `connect_writer` sets; with
//! NORMAL, commits would be published unsynced (and are then written out
//! when the write lock is let go, with an error logged). Once the database
//! is locked exclusively (`locking_mode = EXCLUSIVE`) writes go straight
//! through. A failed flush fails the sync (or read) that
//! caused it with an I/O error, which rolls the transaction back, so the
//! commit fails and nothing is acknowledged; what a rolled-back transaction
//! left in the buffer is dropped when it lets go of the WAL write lock.

// SQLite's VFS is a C interface of function tables over raw pointers.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void, CStr};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name connections open the shim by.
pub(crate) const VFS_NAME: &str = "herald-wal";
const VFS_NAME_C: &CStr = c"herald-wal";

/// The most `unix` writes in one call: it masks a larger length to its low
/// 17 bits (and reports a disk full when that leaves nothing to write).
const UNIX_WRITE_LIMIT: usize = 0x1_ffff;

/// The size of a WAL frame header, written on its own before each page.
const FRAME_HEADER: usize = 24;

/// The WAL-index lock a writer holds for its whole write transaction.
const WAL_WRITE_LOCK: c_int = 0;

/// A flush happens before the buffer would grow past this, so a huge
/// transaction never holds more than this much in memory.
const CAPACITY: usize = 4 * 1024 * 1024;

/// Registers the shim once; answers whether connections can use it (not
/// when the default VFS is not `unix`, or SQLite refused).
pub(crate) fn install() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let installed = register();
        if !installed {
            tracing::debug!("WAL write buffering unavailable; the default VFS is used");
        }
        installed
    })
}

fn register() -> bool {
    // SAFETY: a null name asks for the default VFS; SQLite initialises
    // itself first if needed.
    let root = unsafe { ffi::sqlite3_vfs_find(std::ptr::null()) };
    if root.is_null() {
        return false;
    }
    // SAFETY: a registered VFS lives as long as the process.
    let root_vfs = unsafe { &*root };
    // Only `unix` is known to need nothing from the VFS pointer its
    // functions get but what is copied below.
    // SAFETY: a registered VFS has a NUL-terminated name.
    if root_vfs.zName.is_null() || unsafe { CStr::from_ptr(root_vfs.zName) } != c"unix" {
        return false;
    }
    let Ok(shim_size) = c_int::try_from(std::mem::size_of::<ShimFile>()) else {
        return false;
    };
    let mut vfs = *root_vfs;
    vfs.szOsFile = root_vfs.szOsFile + shim_size;
    vfs.pNext = std::ptr::null_mut();
    vfs.zName = VFS_NAME_C.as_ptr();
    vfs.pAppData = root.cast();
    vfs.xOpen = Some(open);
    let vfs: &'static mut ffi::sqlite3_vfs = Box::leak(Box::new(vfs));
    // The `unix` functions copied above use the VFS pointer only for its
    // name, path length and app data; every one of them ignores it except
    // `unixOpen`, which `open` calls with the real `unix` VFS instead.
    // SAFETY: the VFS is leaked, so it outlives every connection.
    unsafe { ffi::sqlite3_vfs_register(vfs, 0) == ffi::SQLITE_OK }
}

/// What SQLite allocates per open file (`szOsFile` bytes): our header, then
/// the `unix` file it wraps.
#[repr(C)]
struct ShimFile {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    /// Present for WAL files only (and only where buffering is safe).
    buffer: *mut Buffer,
    /// On a database file: its open WAL file, whose buffer is dropped when
    /// a write transaction ends. On a WAL file: its database file.
    link: *mut ShimFile,
}

/// Bytes written but not yet handed to the file: one contiguous run.
#[derive(Default)]
struct Buffer {
    offset: i64,
    bytes: Vec<u8>,
    /// A commit frame's header is among the bytes.
    holds_commit: bool,
    /// The last flush could not write everything.
    failed: bool,
    /// Writes go straight through: the database was locked exclusively
    /// (`locking_mode = EXCLUSIVE`), where the WAL write lock, whose
    /// release drops a rolled-back transaction's bytes, is never taken.
    bypass: bool,
}

/// # Safety
/// `vfs` is our registered VFS and `file` points to `szOsFile` bytes.
unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: per this function's contract, and `register` put the `unix`
    // VFS in our app data.
    unsafe {
        let root = (*vfs).pAppData.cast::<ffi::sqlite3_vfs>();
        let shim = file.cast::<ShimFile>();
        let real = file
            .cast::<u8>()
            .add(std::mem::size_of::<ShimFile>())
            .cast::<ffi::sqlite3_file>();
        (*shim).base.pMethods = std::ptr::null();
        (*shim).real = real;
        (*shim).buffer = std::ptr::null_mut();
        (*shim).link = std::ptr::null_mut();
        let Some(root_open) = (*root).xOpen else {
            return ffi::SQLITE_CANTOPEN;
        };
        let code = root_open(root, name, real, flags, out_flags);
        if (*real).pMethods.is_null() {
            return code;
        }
        (*shim).base.pMethods = &METHODS;
        if flags & ffi::SQLITE_OPEN_WAL != 0 {
            let database = ffi::sqlite3_database_file_object(name).cast::<ShimFile>();
            if buffering_is_safe(database) {
                (*shim).buffer = Box::into_raw(Box::default());
                (*shim).link = database;
                (*database).link = shim;
            }
        }
        code
    }
}

/// Whether the WAL of `database` may be buffered: the database must be ours
/// (so its lock calls tell us when a write transaction ends) and its device
/// must allow power-safe overwrites. Without them SQLite pads a commit's
/// last frame to a sector boundary and syncs in the middle of that frame,
/// writing its tail after the sync, which a buffer would still hold when
/// the commit becomes visible.
///
/// # Safety
/// `database` is null or the main database file SQLite gave for a WAL.
unsafe fn buffering_is_safe(database: *mut ShimFile) -> bool {
    // SAFETY: per this function's contract.
    unsafe {
        if database.is_null() || !std::ptr::eq((*database).base.pMethods, &METHODS) {
            return false;
        }
        let (real, methods) = real(database.cast());
        let characteristics = methods.xDeviceCharacteristics.map_or(0, |get| get(real));
        characteristics & ffi::SQLITE_IOCAP_POWERSAFE_OVERWRITE != 0
    }
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

/// The wrapped file and its methods.
///
/// # Safety
/// `file` is a `ShimFile` that `open` opened and `close` has not closed.
unsafe fn real(
    file: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    // SAFETY: per this function's contract; an opened `unix` file keeps
    // its static method table until closed.
    unsafe {
        let real = (*file.cast::<ShimFile>()).real;
        (real, &*(*real).pMethods)
    }
}

/// Hands what is buffered to the file in as few writes as `unix` takes.
/// On failure what was not written stays buffered, so no later sync can
/// succeed without it, and the error is always an I/O error: SQLite rolls
/// the whole transaction back on one (a "disk full" from a read would only
/// undo the statement, leaving the transaction to commit frames that were
/// never written). The buffer is dropped when the transaction ends.
///
/// # Safety
/// As for [`real`].
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: per this function's contract.
    unsafe {
        let buffer = (*file.cast::<ShimFile>()).buffer;
        if buffer.is_null() || (*buffer).bytes.is_empty() {
            return ffi::SQLITE_OK;
        }
        let buffer = &mut *buffer;
        #[cfg(test)]
        tests::FLUSHES.with(|count| count.set(count.get() + 1));
        let (real, methods) = real(file);
        let Some(write) = methods.xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let mut written = 0;
        while written < buffer.bytes.len() {
            let end = buffer.bytes.len().min(written + UNIX_WRITE_LIMIT);
            let chunk = &buffer.bytes[written..end];
            #[cfg(test)]
            if tests::FAIL_NEXT_FLUSH.with(|fail| fail.replace(false)) {
                break;
            }
            // A chunk is at most UNIX_WRITE_LIMIT bytes, which fits.
            let length = chunk.len() as c_int;
            if write(real, chunk.as_ptr().cast(), length, buffer.offset) != ffi::SQLITE_OK {
                break;
            }
            written = end;
            buffer.offset += i64::from(length);
        }
        buffer.bytes.drain(..written);
        buffer.failed = !buffer.bytes.is_empty();
        if buffer.failed {
            ffi::SQLITE_IOERR_WRITE
        } else {
            buffer.holds_commit = false;
            ffi::SQLITE_OK
        }
    }
}

/// Flushes, then runs `then` on the wrapped file if that worked.
///
/// # Safety
/// As for [`real`].
unsafe fn flushed(
    file: *mut ffi::sqlite3_file,
    then: impl FnOnce(*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) -> c_int,
) -> c_int {
    // SAFETY: per this function's contract.
    unsafe {
        match flush(file) {
            ffi::SQLITE_OK => {
                let (real, methods) = real(file);
                then(real, methods)
            }
            code => code,
        }
    }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes each file it opened once, last.
    unsafe {
        let flushed = flush(file);
        let (real, methods) = real(file);
        let closed = methods.xClose.map_or(ffi::SQLITE_OK, |close| close(real));
        let shim = file.cast::<ShimFile>();
        if !(*shim).buffer.is_null() {
            drop(Box::from_raw((*shim).buffer));
            (*shim).buffer = std::ptr::null_mut();
        }
        // Whichever of a database and its WAL closes first unlinks both.
        let link = (*shim).link;
        if !link.is_null() {
            (*link).link = std::ptr::null_mut();
            (*shim).link = std::ptr::null_mut();
        }
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            closed
        }
    }
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    data: *mut c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: SQLite calls only files `open` opened; arguments passed on.
    unsafe {
        flushed(file, |real, methods| {
            methods.xRead.map_or(ffi::SQLITE_IOERR_READ, |read| {
                read(real, data, amount, offset)
            })
        })
    }
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: as in `read`; `data` holds `amount` bytes.
    unsafe {
        let buffer = (*file.cast::<ShimFile>()).buffer;
        let length = usize::try_from(amount).unwrap_or(0);
        if buffer.is_null() || (*buffer).bypass || length == 0 || length > CAPACITY {
            return flushed(file, |real, methods| {
                methods.xWrite.map_or(ffi::SQLITE_IOERR_WRITE, |write| {
                    write(real, data, amount, offset)
                })
            });
        }
        let follows = {
            let buffer = &*buffer;
            let end = buffer.offset + buffer.bytes.len() as i64;
            buffer.bytes.is_empty() || (offset == end && buffer.bytes.len() + length <= CAPACITY)
        };
        if !follows {
            let code = flush(file);
            if code != ffi::SQLITE_OK {
                return code;
            }
        }
        let buffer = &mut *buffer;
        if buffer.bytes.is_empty() {
            buffer.offset = offset;
        }
        #[cfg(test)]
        tests::BUFFERED.with(|count| count.set(count.get() + 1));
        let data = std::slice::from_raw_parts(data.cast::<u8>(), length);
        // A frame header whose "database size after commit" is set.
        if length == FRAME_HEADER && data[4..8] != [0; 4] {
            buffer.holds_commit = true;
        }
        buffer.bytes.extend_from_slice(data);
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    // SAFETY: as in `read`.
    unsafe {
        flushed(file, |real, methods| {
            methods
                .xTruncate
                .map_or(ffi::SQLITE_IOERR_TRUNCATE, |truncate| truncate(real, size))
        })
    }
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: as in `read`.
    unsafe {
        flushed(file, |real, methods| {
            methods
                .xSync
                .map_or(ffi::SQLITE_IOERR_FSYNC, |sync| sync(real, flags))
        })
    }
}

unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    // SAFETY: as in `read`.
    unsafe {
        flushed(file, |real, methods| {
            methods
                .xFileSize
                .map_or(ffi::SQLITE_IOERR_FSTAT, |file_size| file_size(real, size))
        })
    }
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: as in `read`; a linked WAL is open (closing unlinks it).
    unsafe {
        let wal = (*file.cast::<ShimFile>()).link;
        if level >= ffi::SQLITE_LOCK_EXCLUSIVE && !wal.is_null() && !(*wal).buffer.is_null() {
            let code = flush(wal.cast());
            if code != ffi::SQLITE_OK {
                return code;
            }
            (*(*wal).buffer).bypass = true;
        }
        let (real, methods) = real(file);
        methods
            .xLock
            .map_or(ffi::SQLITE_IOERR_LOCK, |lock| lock(real, level))
    }
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: as in `read`.
    unsafe {
        let (real, methods) = real(file);
        methods
            .xUnlock
            .map_or(ffi::SQLITE_IOERR_UNLOCK, |unlock| unlock(real, level))
    }
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    // SAFETY: as in `read`.
    unsafe {
        let (real, methods) = real(file);
        methods
            .xCheckReservedLock
            .map_or(ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, |check| {
                check(real, out)
            })
    }
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    // Some controls size or inspect the file: all see it written out.
    // SAFETY: as in `read`.
    unsafe {
        flushed(file, |real, methods| {
            methods
                .xFileControl
                .map_or(ffi::SQLITE_NOTFOUND, |control| control(real, op, arg))
        })
    }
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: as in `read`.
    unsafe {
        let (real, methods) = real(file);
        methods.xSectorSize.map_or(4096, |size| size(real))
    }
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: as in `read`.
    unsafe {
        let (real, methods) = real(file);
        methods
            .xDeviceCharacteristics
            .map_or(0, |characteristics| characteristics(real))
    }
}

unsafe extern "C" fn shm_map(
    file: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: as in `read`; `unix` files have version 3 methods.
    unsafe {
        let (real, methods) = real(file);
        methods.xShmMap.map_or(ffi::SQLITE_IOERR_SHMMAP, |map| {
            map(real, region, size, extend, out)
        })
    }
}

unsafe extern "C" fn shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: as in `shm_map`; a linked WAL is open (closing unlinks it).
    unsafe {
        let (real, methods) = real(file);
        let code = methods.xShmLock.map_or(ffi::SQLITE_IOERR_SHMLOCK, |lock| {
            lock(real, offset, n, flags)
        });
        // The WAL write lock taken or let go: a write transaction starts or
        // ends. A commit's frames were flushed by its sync; anything still
        // buffered belongs to a transaction that was rolled back, lies past
        // the WAL's last commit, and must not be written later, over
        // frames another connection may commit there in between.
        let write_lock =
            offset == WAL_WRITE_LOCK && n == 1 && flags & ffi::SQLITE_SHM_EXCLUSIVE != 0;
        let wal = (*file.cast::<ShimFile>()).link;
        if write_lock && code == ffi::SQLITE_OK && !wal.is_null() {
            end_write_transaction(wal);
        }
        code
    }
}

/// Drops what a rolled-back transaction left in `wal`'s buffer. A commit
/// frame still there means a commit was published without a sync
/// (`synchronous` below FULL, which the writer never sets): it is written
/// out rather than lost.
///
/// # Safety
/// `wal` is an open WAL `ShimFile`.
unsafe fn end_write_transaction(wal: *mut ShimFile) {
    // SAFETY: per this function's contract.
    unsafe {
        let buffer = (*wal).buffer;
        if buffer.is_null() || (*buffer).bytes.is_empty() {
            return;
        }
        if (*buffer).holds_commit && !(*buffer).failed {
            tracing::error!("a commit reached the WAL without a sync; writing it out");
            let _ = flush(wal.cast());
        }
        let buffer = &mut *buffer;
        buffer.bytes.clear();
        buffer.holds_commit = false;
        buffer.failed = false;
    }
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: as in `shm_map`.
    unsafe {
        let (real, methods) = real(file);
        if let Some(barrier) = methods.xShmBarrier {
            barrier(real);
        }
    }
}

unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    // SAFETY: as in `shm_map`.
    unsafe {
        let (real, methods) = real(file);
        methods
            .xShmUnmap
            .map_or(ffi::SQLITE_OK, |unmap| unmap(real, delete))
    }
}

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // A memory-mapped read must see what was written, like `read`.
    // SAFETY: as in `shm_map`.
    unsafe {
        flushed(file, |real, methods| match methods.xFetch {
            Some(fetch) => fetch(real, offset, amount, out),
            None => {
                *out = std::ptr::null_mut();
                ffi::SQLITE_OK
            }
        })
    }
}

unsafe extern "C" fn unfetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    page: *mut c_void,
) -> c_int {
    // SAFETY: as in `shm_map`.
    unsafe {
        let (real, methods) = real(file);
        methods
            .xUnfetch
            .map_or(ffi::SQLITE_OK, |unfetch| unfetch(real, offset, page))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use rusqlite::Connection;

    thread_local! {
        /// Buffers handed to a file by this thread's connections.
        pub(super) static FLUSHES: Cell<u64> = const { Cell::new(0) };
        /// Writes this thread's connections buffered.
        pub(super) static BUFFERED: Cell<u64> = const { Cell::new(0) };
        /// Makes this thread's next flush fail before writing anything.
        pub(super) static FAIL_NEXT_FLUSH: Cell<bool> = const { Cell::new(false) };
    }

    fn counts() -> (u64, u64) {
        (FLUSHES.with(Cell::get), BUFFERED.with(Cell::get))
    }

    fn rows(connection: &Connection) -> i64 {
        connection
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .expect("count")
    }

    fn insert(connection: &Connection, rows: i64, size: usize) {
        let mut statement = connection
            .prepare_cached("INSERT INTO t (v) VALUES (?1)")
            .expect("prepare");
        for n in 0..rows {
            let value = format!("{n:08}").repeat(size / 8);
            statement.execute([value]).expect("insert");
        }
    }

    fn integrity(connection: &Connection) -> String {
        connection
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap_or_else(|error| error.to_string())
    }

    /// A schema and a transaction too big for a tiny page cache, so its
    /// pages spill to the WAL (into the buffer) before it ends.
    fn spilling_writer(path: &std::path::Path) -> Connection {
        let writer = crate::connect_writer(path).expect("open the writer");
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
                 CREATE TABLE u (id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
            )
            .expect("schema");
        insert(&writer, 50, 400);
        writer
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA cache_size = 20;")
            .expect("settings");
        writer
    }

    #[test]
    fn a_rolled_back_transaction_leaves_nothing_to_write_over_a_later_commit() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let path = directory.path().join("t.db");
        let writer = spilling_writer(&path);
        writer.execute_batch("BEGIN IMMEDIATE").expect("begin");
        insert(&writer, 100, 20_000);
        writer.execute_batch("ROLLBACK").expect("rollback");

        // Another process (`herald token create`) commits where the
        // rolled-back frames would have gone.
        let other = Connection::open(&path).expect("open another connection");
        other
            .execute_batch("PRAGMA synchronous = FULL")
            .expect("settings");
        for n in 0..20 {
            other
                .execute(
                    "INSERT INTO u (v) VALUES (?1)",
                    [format!("{n:08}").repeat(2_500)],
                )
                .expect("insert");
        }
        drop(other);

        writer
            .execute("INSERT INTO t (v) VALUES ('after')", [])
            .expect("the writer's next commit");
        drop(writer);
        let reopened = Connection::open(&path).expect("reopen");
        assert_eq!(integrity(&reopened), "ok");
        let others: i64 = reopened
            .query_row("SELECT count(*) FROM u", [], |row| row.get(0))
            .expect("count");
        assert_eq!(others, 20, "the other connection's commit is intact");
        assert_eq!(rows(&reopened), 51);
    }

    #[test]
    fn a_failed_flush_during_a_read_rolls_the_whole_transaction_back() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let path = directory.path().join("t.db");
        let writer = spilling_writer(&path);
        writer.execute_batch("BEGIN IMMEDIATE").expect("begin");
        insert(&writer, 300, 20_000);
        // A job under its own savepoint, as the writer runs them; its
        // statement reads spilled pages back, which flushes first.
        writer.execute_batch("SAVEPOINT job").expect("savepoint");
        FAIL_NEXT_FLUSH.with(|fail| fail.set(true));
        let failed = writer.execute("UPDATE t SET v = 'changed' WHERE id % 7 = 0", []);
        assert!(failed.is_err(), "the statement fails");
        assert!(
            writer.is_autocommit(),
            "the whole transaction was rolled back, not only the statement"
        );
        assert_eq!(rows(&writer), 50);
        writer
            .execute("INSERT INTO t (v) VALUES ('after')", [])
            .expect("the next commit");
        drop(writer);
        let reopened = Connection::open(&path).expect("reopen");
        assert_eq!(integrity(&reopened), "ok");
        assert_eq!(rows(&reopened), 51);
    }

    #[test]
    fn commits_without_a_sync_are_still_written() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let path = directory.path().join("t.db");
        let writer = crate::connect_writer(&path).expect("open the writer");
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
            )
            .expect("schema");
        insert(&writer, 50, 400);
        drop(writer);
        let reopened = Connection::open(&path).expect("reopen");
        assert_eq!(rows(&reopened), 50);
        assert_eq!(integrity(&reopened), "ok");
    }

    #[test]
    fn in_exclusive_locking_mode_writes_go_straight_through() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let path = directory.path().join("t.db");
        let writer = spilling_writer(&path);
        writer
            .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN IMMEDIATE")
            .expect("exclusive");
        insert(&writer, 100, 20_000);
        writer.execute_batch("ROLLBACK").expect("rollback");
        writer
            .execute_batch("PRAGMA locking_mode = NORMAL; SELECT count(*) FROM t;")
            .expect("back to normal");
        let other = Connection::open(&path).expect("open another connection");
        for n in 0..20 {
            other
                .execute(
                    "INSERT INTO u (v) VALUES (?1)",
                    [format!("{n:08}").repeat(2_500)],
                )
                .expect("insert");
        }
        drop(other);
        assert_eq!(rows(&writer), 50);
        drop(writer);
        let reopened = Connection::open(&path).expect("reopen");
        assert_eq!(integrity(&reopened), "ok");
        let others: i64 = reopened
            .query_row("SELECT count(*) FROM u", [], |row| row.get(0))
            .expect("count");
        assert_eq!(others, 20);
    }

    #[test]
    fn without_power_safe_overwrites_the_wal_is_not_buffered() {
        assert!(super::install(), "the shim is registered");
        let directory = tempfile::tempdir().expect("a temporary directory");
        let path = directory.path().join("t.db");
        let uri = format!("file:{}?psow=0", path.display());
        let writer = Connection::open_with_flags_and_vfs(
            &uri,
            rusqlite::OpenFlags::default(),
            super::VFS_NAME,
        )
        .expect("open the writer");
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
            )
            .expect("schema");
        let reader = crate::connect(&path).expect("open a reader");
        let (_, buffered_before) = counts();
        for round in 1..=20 {
            insert(&writer, 1, 400);
            assert_eq!(rows(&reader), round);
        }
        assert_eq!(counts().1, buffered_before, "nothing was buffered");
    }

    #[test]
    fn commits_reach_the_wal_in_one_write_and_every_reader_sees_them_whole() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let path = directory.path().join("t.db");
        let writer = crate::connect_writer(&path).expect("open the writer");
        assert!(super::install(), "the shim is registered");
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
            )
            .expect("schema");
        let reader = crate::connect(&path).expect("open a reader");

        let (flushes_before, buffered_before) = counts();
        let mut expected = 0;
        for round in 0..100 {
            let transaction = writer.unchecked_transaction().expect("begin");
            insert(&transaction, 20, 400);
            transaction.commit().expect("commit");
            expected += 20;
            assert_eq!(rows(&reader), expected, "a reader sees every commit whole");
            if round == 50 {
                writer
                    .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                    .expect("checkpoint");
            }
        }
        let (flushes, buffered) = counts();
        let (flushes, buffered) = (flushes - flushes_before, buffered - buffered_before);
        assert!(
            (100..=110).contains(&flushes),
            "about one write per commit, not one per page: {flushes}"
        );
        assert!(buffered >= 8 * flushes, "{buffered} writes in {flushes}");

        // A transaction larger than the buffer and than the page cache: it
        // spills to the WAL mid-way and reads its own pages back.
        writer
            .execute_batch("PRAGMA cache_size = 64;")
            .expect("small cache");
        let transaction = writer.unchecked_transaction().expect("begin");
        insert(&transaction, 3_000, 2_000);
        assert_eq!(rows(&transaction), expected + 3_000);
        transaction.commit().expect("commit");
        expected += 3_000;
        assert_eq!(rows(&reader), expected);

        drop(reader);
        drop(writer);
        let reopened = Connection::open(&path).expect("reopen without the shim");
        assert_eq!(rows(&reopened), expected);
        let check: String = reopened
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .expect("integrity check");
        assert_eq!(check, "ok");
    }
}
