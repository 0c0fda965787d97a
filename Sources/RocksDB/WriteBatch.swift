import CRocksDB

/// A group of updates applied atomically by `Database.write(_:sync:)` (`rocksdb_writebatch_t`).
///
/// Not `Sendable`: building a batch mutates it without locking. Build it on
/// one task, then hand it to `write`.
public final class WriteBatch {
    let raw: OpaquePointer
    /// The database whose column families this batch refers to; set by the
    /// first update, cleared by `clear()`.
    private(set) var owner: OwnerToken?

    /// Creates an empty batch. Does not throw.
    public init() {
        raw = rocksdb_writebatch_create()!
    }

    deinit {
        rocksdb_writebatch_destroy(raw)
    }

    private func adopt(_ cf: ColumnFamily) {
        if let owner {
            precondition(owner === cf.owner, "WriteBatch mixes column families of different databases")
        } else {
            owner = cf.owner
        }
    }

    /// Queues `key = value` in `cf`. Does not throw; errors surface from `Database.write`.
    public func put(_ key: [UInt8], _ value: [UInt8], in cf: ColumnFamily) {
        adopt(cf)
        withCBytes(key) { k, kl in
            withCBytes(value) { v, vl in
                rocksdb_writebatch_put_cf(raw, cf.raw, k, kl, v, vl)
            }
        }
    }

    /// Queues the deletion of `key` in `cf`. Does not throw.
    public func delete(_ key: [UInt8], in cf: ColumnFamily) {
        adopt(cf)
        withCBytes(key) { k, kl in
            rocksdb_writebatch_delete_cf(raw, cf.raw, k, kl)
        }
    }

    /// Queues the deletion of every key in `[start, end)` of `cf` (end exclusive,
    /// RocksDB `DeleteRange` semantics). Does not throw.
    public func deleteRange(from start: [UInt8], to end: [UInt8], in cf: ColumnFamily) {
        adopt(cf)
        withCBytes(start) { s, sl in
            withCBytes(end) { e, el in
                rocksdb_writebatch_delete_range_cf(raw, cf.raw, s, sl, e, el)
            }
        }
    }

    /// Number of updates queued (`rocksdb_writebatch_count`).
    public var count: Int {
        Int(rocksdb_writebatch_count(raw))
    }

    /// Size in bytes of the batch's serialized representation (`rocksdb_writebatch_data`),
    /// roughly what the write will add to the WAL.
    public var dataSizeBytes: Int {
        var size = 0
        _ = rocksdb_writebatch_data(raw, &size)
        return size
    }

    /// Removes every queued update so the batch can be reused, possibly for another database.
    public func clear() {
        rocksdb_writebatch_clear(raw)
        owner = nil
    }
}

// WriteBatch has unsynchronized mutable state; say so explicitly rather than by omission.
@available(*, unavailable)
extension WriteBatch: Sendable {}
