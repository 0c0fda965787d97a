import CRocksDB

/// A cursor over one column family (`rocksdb_iterator_t`), created by `Database.makeIterator`.
///
/// Holds its `Database` (and `Snapshot`, if any) strongly because a RocksDB
/// iterator must be destroyed before the db is closed and reads the snapshot
/// for its whole life. It also owns copies of the bound keys: RocksDB's
/// `ReadOptions` keeps only a pointer to them, so they must outlive the iterator.
///
/// Not `Sendable`: positioning mutates the C object without locking.
public final class Iterator {
    private let database: Database
    private let snapshot: Snapshot?
    private let readOptions: OpaquePointer
    private let lowerBound: PinnedBytes?
    private let upperBound: PinnedBytes?
    private let raw: OpaquePointer

    init(database: Database, cf: ColumnFamily, snapshot: Snapshot?, lowerBound: [UInt8]?, upperBound: [UInt8]?, everyRecord: Bool = false) {
        self.database = database
        self.snapshot = snapshot
        let readOptions = rocksdb_readoptions_create()!
        self.readOptions = readOptions
        if everyRecord {
            // Also the records a range deletion hides (their blocks are still in the files, and a
            // compaction will read them), without filling the block cache with them.
            rocksdb_readoptions_set_ignore_range_deletions(readOptions, 1)
            rocksdb_readoptions_set_fill_cache(readOptions, 0)
        }
        if let snapshot {
            rocksdb_readoptions_set_snapshot(readOptions, snapshot.raw)
        }
        let lower = lowerBound.map(PinnedBytes.init)
        let upper = upperBound.map(PinnedBytes.init)
        self.lowerBound = lower
        self.upperBound = upper
        if let lower {
            rocksdb_readoptions_set_iterate_lower_bound(readOptions, lower.pointer, lower.count)
        }
        if let upper {
            rocksdb_readoptions_set_iterate_upper_bound(readOptions, upper.pointer, upper.count)
        }
        // rocksdb_create_iterator_cf does not fail; errors are reported via rocksdb_iter_get_error.
        self.raw = rocksdb_create_iterator_cf(database.raw, readOptions, cf.raw)!
    }

    deinit {
        // Iterator first: it still references the read options and bound buffers.
        rocksdb_iter_destroy(raw)
        rocksdb_readoptions_destroy(readOptions)
        lowerBound?.deallocate()
        upperBound?.deallocate()
    }

    /// Positions at the first key (at or after the lower bound). Does not throw; see `check()`.
    public func seekToFirst() { rocksdb_iter_seek_to_first(raw) }

    /// Positions at the last key (before the upper bound). Does not throw; see `check()`.
    public func seekToLast() { rocksdb_iter_seek_to_last(raw) }

    /// Positions at the first key `>= key`. Does not throw; see `check()`.
    public func seek(to key: [UInt8]) {
        withCBytes(key) { rocksdb_iter_seek(raw, $0, $1) }
    }

    /// Positions at the last key `<= key`. Does not throw; see `check()`.
    public func seekForPrev(_ key: [UInt8]) {
        withCBytes(key) { rocksdb_iter_seek_for_prev(raw, $0, $1) }
    }

    /// Moves to the next key. Precondition: `isValid`. Does not throw; see `check()`.
    public func next() {
        precondition(isValid, "Iterator.next() on an invalid iterator")
        rocksdb_iter_next(raw)
    }

    /// Moves to the previous key. Precondition: `isValid`. Does not throw; see `check()`.
    public func previous() {
        precondition(isValid, "Iterator.previous() on an invalid iterator")
        rocksdb_iter_prev(raw)
    }

    /// Whether the iterator is positioned at an entry. `false` at either end
    /// *or* after an error; call `check()` to tell the two apart.
    public var isValid: Bool { rocksdb_iter_valid(raw) != 0 }

    /// A copy of the current key. Precondition: `isValid`.
    public var key: [UInt8] {
        precondition(isValid, "Iterator.key on an invalid iterator")
        var length = 0
        let pointer = rocksdb_iter_key(raw, &length)
        return copyBytes(pointer, count: length)
    }

    /// A copy of the current value. Precondition: `isValid`.
    public var value: [UInt8] {
        precondition(isValid, "Iterator.value on an invalid iterator")
        var length = 0
        let pointer = rocksdb_iter_value(raw, &length)
        return copyBytes(pointer, count: length)
    }

    /// Calls `body` with views of the current key and value without copying them.
    /// The buffers point into RocksDB's memory and are valid only inside `body`
    /// (the next positioning call invalidates them), so do not let them escape.
    /// Precondition: `isValid`. Rethrows what `body` throws.
    public func withKeyAndValue<R>(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        precondition(isValid, "Iterator.withKeyAndValue on an invalid iterator")
        var keyLength = 0
        var valueLength = 0
        let keyPointer = rocksdb_iter_key(raw, &keyLength)
        let valuePointer = rocksdb_iter_value(raw, &valueLength)
        return try body(
            UnsafeRawBufferPointer(start: keyLength > 0 ? keyPointer : nil, count: keyLength),
            UnsafeRawBufferPointer(start: valueLength > 0 ? valuePointer : nil, count: valueLength)
        )
    }

    /// Throws the error that stopped the iterator, if any (`rocksdb_iter_get_error`),
    /// e.g. `.corruption` or `.ioError`. Call it when `isValid` turns false to
    /// distinguish "end of data" from "read failed".
    public func check() throws(RocksDBError) {
        var error: UnsafeMutablePointer<CChar>? = nil
        rocksdb_iter_get_error(raw, &error)
        try throwIfError("iterate", error)
    }
}

@available(*, unavailable)
extension Iterator: Sendable {}
