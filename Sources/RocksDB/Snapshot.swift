import CRocksDB

/// A consistent, point-in-time read view of a `Database` (`rocksdb_create_snapshot`).
///
/// Holds its database strongly, because the snapshot must be released with
/// `rocksdb_release_snapshot` on the same, still-open db; that happens in `deinit`.
/// Keeping a snapshot alive pins old versions of data and holds back compaction
/// cleanup, so drop it when done.
///
/// `@unchecked Sendable`: all stored properties are immutable, a RocksDB snapshot
/// is an immutable sequence number, and the read options carrying it are only
/// ever passed to RocksDB as `const`, which is safe from concurrent threads.
public final class Snapshot: @unchecked Sendable {
    let database: Database
    let raw: OpaquePointer
    /// Read options with this snapshot set, built once so every read through the
    /// snapshot does not need to allocate its own.
    let readOptions: OpaquePointer

    init(database: Database) {
        self.database = database
        // rocksdb_create_snapshot never fails; it only records the current sequence number.
        self.raw = rocksdb_create_snapshot(database.raw)!
        self.readOptions = rocksdb_readoptions_create()!
        rocksdb_readoptions_set_snapshot(readOptions, raw)
    }

    deinit {
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_release_snapshot(database.raw, raw)
    }
}
