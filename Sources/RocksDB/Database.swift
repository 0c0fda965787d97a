import CRocksDB

/// An open RocksDB database with its column families (`rocksdb_t`).
///
/// `@unchecked Sendable`: every stored property is a `let` set in `init` and
/// never changed, and RocksDB documents `DB` as safe for concurrent reads and
/// writes from multiple threads without external locking. The shared read and
/// write options are only ever passed to RocksDB as `const`, which is likewise
/// safe to share. Objects that need the db open (`Iterator`, `Snapshot`) hold it
/// strongly, so `deinit` — which destroys the column-family handles and then
/// closes the db — runs only once nothing can still use the handle.
public final class Database: @unchecked Sendable {
    /// The directory the database was opened at.
    public let path: String

    let raw: OpaquePointer
    let owner = OwnerToken()
    private let options: OpaquePointer
    private let families: [ColumnFamily]
    private let familiesByName: [String: ColumnFamily]
    private let readOptions: OpaquePointer
    private let syncWriteOptions: OpaquePointer
    private let asyncWriteOptions: OpaquePointer

    /// Opens the database at `path` with the column families `columnFamilies`.
    ///
    /// `"default"` is always opened too. Column families that do not exist yet
    /// are created (`create_missing_column_families`; not in read-only mode, where
    /// naming a missing one fails). Column families that exist on disk but are not
    /// named are opened as well, because RocksDB refuses to open a database
    /// without all of its column families; this way an extra CF never makes open fail.
    /// Every column family gets the same options.
    ///
    /// - Throws: `RocksDBError` with operation `"open"`, e.g. `.ioError` when the
    ///   LOCK file is held by another open of the same path, `.invalidArgument`
    ///   when the database is missing and `createIfMissing` is false, or
    ///   `.corruption` when the files are damaged.
    public init(path: String, columnFamilies: [String], options databaseOptions: DatabaseOptions = DatabaseOptions()) throws(RocksDBError) {
        let options = Self.makeOptions(databaseOptions)

        // Ask the MANIFEST which CFs exist. Failure here means "no database yet"
        // in the common case; any real problem is reported by the open below,
        // with RocksDB's own message.
        let existing = (try? Self.listColumnFamilies(path: path, options: options)) ?? []
        var names = ["default"]
        for name in columnFamilies + existing where !names.contains(name) {
            names.append(name)
        }

        let cNames = names.map(makeCString)
        defer { cNames.forEach { $0.deallocate() } }
        let namePointers: [UnsafePointer<CChar>?] = cNames.map { UnsafePointer($0) }
        let familyOptions: [OpaquePointer?] = Array(repeating: options, count: names.count)
        var handles: [OpaquePointer?] = Array(repeating: nil, count: names.count)
        var error: UnsafeMutablePointer<CChar>? = nil
        let db: OpaquePointer?
        if databaseOptions.readOnly {
            db = rocksdb_open_for_read_only_column_families(
                options, path, Int32(names.count), namePointers, familyOptions, &handles,
                0,  // error_if_wal_file_exists: no, replay it in memory like a normal open would.
                &error)
        } else {
            db = rocksdb_open_column_families(
                options, path, Int32(names.count), namePointers, familyOptions, &handles, &error)
        }
        do throws(RocksDBError) {
            try throwIfError("open", error)
        } catch {
            rocksdb_options_destroy(options)
            throw error
        }
        guard let db else {
            rocksdb_options_destroy(options)
            throw RocksDBError(operation: "open", message: "rocksdb returned no database handle")
        }

        let owner = self.owner
        let families = zip(names, handles).map { name, handle in
            ColumnFamily(name: name, raw: handle!, owner: owner)
        }
        self.path = path
        self.raw = db
        self.options = options
        self.families = families
        self.familiesByName = Dictionary(uniqueKeysWithValues: families.map { ($0.name, $0) })
        self.readOptions = rocksdb_readoptions_create()!
        self.syncWriteOptions = rocksdb_writeoptions_create()!
        rocksdb_writeoptions_set_sync(syncWriteOptions, 1)
        self.asyncWriteOptions = rocksdb_writeoptions_create()!
    }

    deinit {
        // RocksDB requires column-family handles to be destroyed before the db is closed.
        for family in families {
            rocksdb_column_family_handle_destroy(family.raw)
        }
        rocksdb_close(raw)
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_writeoptions_destroy(syncWriteOptions)
        rocksdb_writeoptions_destroy(asyncWriteOptions)
        rocksdb_options_destroy(options)
    }

    private static func makeOptions(_ databaseOptions: DatabaseOptions) -> OpaquePointer {
        let options = rocksdb_options_create()!
        // Two background threads: one flush, one compaction, instead of RocksDB's single shared thread.
        rocksdb_options_increase_parallelism(options, 2)
        rocksdb_options_set_create_if_missing(options, databaseOptions.createIfMissing ? 1 : 0)
        rocksdb_options_set_create_missing_column_families(options, 1)
        rocksdb_options_set_paranoid_checks(options, databaseOptions.paranoidChecks ? 1 : 0)
        rocksdb_options_set_wal_recovery_mode(options, databaseOptions.walRecoveryMode.rawValue)
        rocksdb_options_set_max_open_files(options, databaseOptions.maxOpenFiles)
        rocksdb_options_set_keep_log_file_num(options, databaseOptions.infoLogFilesKept)
        if let size = databaseOptions.writeBufferSizeBytes {
            rocksdb_options_set_write_buffer_size(options, size)
        }
        if let ratio = databaseOptions.memtableBloomSizeRatio {
            rocksdb_options_set_memtable_prefix_bloom_size_ratio(options, ratio)
            rocksdb_options_set_memtable_whole_key_filtering(options, 1)
        }
        if databaseOptions.bloomFilterBitsPerKey != nil || databaseOptions.blockCacheBytes != nil {
            // The options keep their own references (shared_ptr) to the filter policy, the cache
            // and the table factory, so the C handles made here are released at once.
            let table = rocksdb_block_based_options_create()
            if let bits = databaseOptions.bloomFilterBitsPerKey {
                rocksdb_block_based_options_set_filter_policy(table, rocksdb_filterpolicy_create_bloom(bits))
            }
            if let bytes = databaseOptions.blockCacheBytes {
                let cache = rocksdb_cache_create_lru(bytes)
                rocksdb_block_based_options_set_block_cache(table, cache)
                rocksdb_cache_destroy(cache)
            }
            rocksdb_options_set_block_based_table_factory(options, table)
            rocksdb_block_based_options_destroy(table)
        }
        return options
    }

    /// The column family `name`, which must have been opened (named in `init` or
    /// already present on disk). Does not throw; traps if `name` is not open.
    public func columnFamily(_ name: String) -> ColumnFamily {
        guard let family = familiesByName[name] else {
            preconditionFailure("column family \"\(name)\" is not open in \(path)")
        }
        return family
    }

    private func checkOwned(_ cf: ColumnFamily) {
        precondition(cf.owner === owner, "column family \"\(cf.name)\" belongs to another Database")
    }

    private func readOptions(for snapshot: Snapshot?) -> OpaquePointer {
        guard let snapshot else { return readOptions }
        precondition(snapshot.database === self, "snapshot belongs to another Database")
        return snapshot.readOptions
    }

    private func writeOptions(sync: Bool) -> OpaquePointer {
        sync ? syncWriteOptions : asyncWriteOptions
    }

    /// Reads `key` from `cf`, as of `snapshot` if given. Returns `nil` when the key is absent.
    /// - Throws: `RocksDBError` with operation `"get"` (e.g. `.corruption`, `.ioError`).
    public func get(_ key: [UInt8], in cf: ColumnFamily, snapshot: Snapshot? = nil) throws(RocksDBError) -> [UInt8]? {
        checkOwned(cf)
        let options = readOptions(for: snapshot)
        var error: UnsafeMutablePointer<CChar>? = nil
        // The pinned variant returns NULL for "not found" unambiguously, whereas
        // rocksdb_get's malloc(0) for an empty value may also be NULL.
        let slice = withCBytes(key) { rocksdb_get_pinned_cf(raw, options, cf.raw, $0, $1, &error) }
        try throwIfError("get", error)
        guard let slice else { return nil }
        defer { rocksdb_pinnableslice_destroy(slice) }
        var length = 0
        let pointer = rocksdb_pinnableslice_value(slice, &length)
        return copyBytes(pointer, count: length)
    }

    /// Stores `key = value` in `cf`. With `sync`, the WAL is fsync'd before returning.
    /// - Throws: `RocksDBError` with operation `"put"` (e.g. `.ioError`, `.notSupported` when read-only).
    public func put(_ key: [UInt8], _ value: [UInt8], in cf: ColumnFamily, sync: Bool) throws(RocksDBError) {
        checkOwned(cf)
        var error: UnsafeMutablePointer<CChar>? = nil
        withCBytes(key) { k, kl in
            withCBytes(value) { v, vl in
                rocksdb_put_cf(raw, writeOptions(sync: sync), cf.raw, k, kl, v, vl, &error)
            }
        }
        try throwIfError("put", error)
    }

    /// Deletes `key` from `cf` (not an error if absent). With `sync`, the WAL is fsync'd before returning.
    /// - Throws: `RocksDBError` with operation `"delete"` (e.g. `.ioError`, `.notSupported` when read-only).
    public func delete(_ key: [UInt8], in cf: ColumnFamily, sync: Bool) throws(RocksDBError) {
        checkOwned(cf)
        var error: UnsafeMutablePointer<CChar>? = nil
        withCBytes(key) { rocksdb_delete_cf(raw, writeOptions(sync: sync), cf.raw, $0, $1, &error) }
        try throwIfError("delete", error)
    }

    /// Applies every update in `batch` atomically. With `sync`, the WAL is fsync'd
    /// before returning, so the batch survives a power loss once this returns.
    /// - Throws: `RocksDBError` with operation `"write"` (e.g. `.ioError`, `.notSupported` when read-only).
    public func write(_ batch: WriteBatch, sync: Bool) throws(RocksDBError) {
        if let batchOwner = batch.owner {
            precondition(batchOwner === owner, "WriteBatch was built for another Database")
        }
        var error: UnsafeMutablePointer<CChar>? = nil
        rocksdb_write(raw, writeOptions(sync: sync), batch.raw, &error)
        try throwIfError("write", error)
    }

    /// A new iterator over `cf`, reading as of `snapshot` if given (otherwise an
    /// implicit snapshot taken now). `lowerBound` is inclusive, `upperBound`
    /// exclusive; RocksDB stops at them without visiting keys outside.
    /// Does not throw; iteration errors are reported by `Iterator.check()`.
    public func makeIterator(in cf: ColumnFamily, snapshot: Snapshot? = nil, lowerBound: [UInt8]? = nil, upperBound: [UInt8]? = nil) -> Iterator {
        checkOwned(cf)
        if let snapshot {
            precondition(snapshot.database === self, "snapshot belongs to another Database")
        }
        return Iterator(database: self, cf: cf, snapshot: snapshot, lowerBound: lowerBound, upperBound: upperBound)
    }

    /// An iterator over every record of `cf` as of `snapshot`, including those a range deletion
    /// hides, that does not fill the block cache: for reading every block to check its checksum.
    public func makeCheckingIterator(in cf: ColumnFamily, snapshot: Snapshot? = nil) -> Iterator {
        checkOwned(cf)
        return Iterator(database: self, cf: cf, snapshot: snapshot, lowerBound: nil, upperBound: nil, everyRecord: true)
    }

    /// A consistent read view as of now, released when the `Snapshot` is deinitialized. Does not throw.
    public func snapshot() -> Snapshot {
        Snapshot(database: self)
    }

    /// Writes an openable copy of the database to `path` (`rocksdb_checkpoint_create`),
    /// hard-linking table files where possible. `path` must not exist yet.
    /// `logSizeForFlush` 0 flushes the memtables first so the copy needs no WAL replay.
    /// - Throws: `RocksDBError` with operation `"checkpoint"` (e.g. `.invalidArgument`
    ///   when `path` exists, `.ioError`).
    public func createCheckpoint(at path: String, logSizeForFlush: UInt64 = 0) throws(RocksDBError) {
        var error: UnsafeMutablePointer<CChar>? = nil
        let checkpoint = rocksdb_checkpoint_object_create(raw, &error)
        try throwIfError("checkpoint", error)
        guard let checkpoint else {
            throw RocksDBError(operation: "checkpoint", message: "rocksdb returned no checkpoint object")
        }
        defer { rocksdb_checkpoint_object_destroy(checkpoint) }
        var createError: UnsafeMutablePointer<CChar>? = nil
        rocksdb_checkpoint_create(checkpoint, path, logSizeForFlush, &createError)
        try throwIfError("checkpoint", createError)
    }

    /// Flushes the memtables of every column family to table files and waits for it.
    /// - Throws: `RocksDBError` with operation `"flush"` (e.g. `.ioError`, `.notSupported` when read-only).
    public func flush() throws(RocksDBError) {
        let flushOptions = rocksdb_flushoptions_create()!
        defer { rocksdb_flushoptions_destroy(flushOptions) }
        rocksdb_flushoptions_set_wait(flushOptions, 1)
        // The 7.8 C API has no multi-CF flush, so flush them one by one.
        for family in families {
            var error: UnsafeMutablePointer<CChar>? = nil
            rocksdb_flush_cf(raw, flushOptions, family.raw, &error)
            try throwIfError("flush", error)
        }
    }

    /// The value of the RocksDB property `name` (e.g. `"rocksdb.estimate-num-keys"`)
    /// for `cf`, or for the default column family when `cf` is nil.
    /// Returns `nil` for unknown properties. Does not throw.
    public func property(_ name: String, in cf: ColumnFamily? = nil) -> String? {
        if let cf {
            checkOwned(cf)
            return takeCString(rocksdb_property_value_cf(raw, cf.raw, name))
        }
        return takeCString(rocksdb_property_value(raw, name))
    }

    /// Compacts the keys in `[from, to]` of `cf` (nil = unbounded on that side),
    /// synchronously. Does not throw: the C API reports no status for it.
    public func compactRange(in cf: ColumnFamily, from: [UInt8]? = nil, to: [UInt8]? = nil) {
        checkOwned(cf)
        // nil pointers mean "unbounded" to rocksdb_compact_range_cf.
        func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafePointer<CChar>?, Int) -> R) -> R {
            guard let bytes else { return body(nil, 0) }
            return withCBytes(bytes) { body($0, $1) }
        }
        withOptionalBytes(from) { start, startLength in
            withOptionalBytes(to) { limit, limitLength in
                rocksdb_compact_range_cf(raw, cf.raw, start, startLength, limit, limitLength)
            }
        }
    }

    /// Deletes the database at `path` and all its files (`rocksdb_destroy_db`).
    /// Must not be open. Succeeds if nothing is there.
    /// - Throws: `RocksDBError` with operation `"destroy"` (e.g. `.ioError` when it is locked).
    public static func destroy(path: String) throws(RocksDBError) {
        let options = rocksdb_options_create()!
        defer { rocksdb_options_destroy(options) }
        var error: UnsafeMutablePointer<CChar>? = nil
        rocksdb_destroy_db(options, path, &error)
        try throwIfError("destroy", error)
    }

    /// The names of the column families stored in the database at `path`
    /// (read from its MANIFEST; the database need not be open).
    /// - Throws: `RocksDBError` with operation `"listColumnFamilies"`, e.g. `.ioError`
    ///   when there is no database at `path`.
    public static func listColumnFamilies(path: String) throws(RocksDBError) -> [String] {
        let options = rocksdb_options_create()!
        defer { rocksdb_options_destroy(options) }
        return try listColumnFamilies(path: path, options: options)
    }

    private static func listColumnFamilies(path: String, options: OpaquePointer) throws(RocksDBError) -> [String] {
        var count = 0
        var error: UnsafeMutablePointer<CChar>? = nil
        let list = rocksdb_list_column_families(options, path, &count, &error)
        // Release the array before checking the error: 7.8's C API mallocs it
        // (zero-length) even when the call fails, so it must be freed either way.
        defer { if let list { rocksdb_list_column_families_destroy(list, count) } }
        try throwIfError("listColumnFamilies", error)
        guard let list else { return [] }
        return (0..<count).compactMap { index in list[index].map { String(cString: $0) } }
    }
}
