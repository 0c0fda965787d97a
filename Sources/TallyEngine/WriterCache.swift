import TallyStorage

/// Projection records the writer read or committed, kept from one group to the next, so a stream
/// of commands on the same customers reads each record from RocksDB once, not once per command
/// (a strict reportUsage reads ~15: customer, feature, entitlement, totals, pool, grants,
/// auto-recharge).
///
/// Why an entry stays right: while the daemon runs, only the writer thread changes projections
/// (start-up recovery runs before it starts; restores run while the daemon is stopped). A record
/// the writer read from RocksDB, or committed itself, is therefore what RocksDB holds until the
/// writer changes it again, and every change reaches `absorb` once its synced commit succeeded. A
/// commit that failed may or may not be in the log, so `removeAll` drops everything and the next
/// group reads RocksDB again. Only the writer thread touches a cache; readers on other threads
/// read RocksDB and never see it.
final class WriterCache {
    /// The record at a key, as the group held it (bytes or decoded); nil: known to be absent.
    private var records: [ByteKey: ProjectionRecord?] = [:]
    let recordsMax: Int

    init(recordsMax: Int) {
        precondition(recordsMax >= 0, "recordsMax must not be negative")
        self.recordsMax = recordsMax
    }

    var count: Int { records.count }

    /// The committed record at `key`: `.some(nil)` when it is known not to exist, nil when the
    /// cache does not know.
    subscript(key: ByteKey) -> ProjectionRecord?? { records[key] }

    /// Takes what a group read and what it set (nil: removed), after its commit succeeded (or when
    /// it wrote nothing). When they might not fit, everything older goes first: the cache is only a
    /// shortcut, dropping it costs reads, never correctness. A group larger than the whole cache (a
    /// big ingest batch) is not kept.
    func absorb(reads: [ByteKey: ProjectionRecord?], changes: [ByteKey: ProjectionRecord?]) {
        let incoming = reads.count + changes.count
        if records.count + incoming > recordsMax { records.removeAll(keepingCapacity: true) }
        guard incoming <= recordsMax else { return }
        records.merge(reads) { _, read in read }
        // After the reads: a record the group changed is what it set, not what it read first.
        records.merge(changes) { _, changed in changed }
    }

    /// Forgets everything (after a failed commit, whose outcome is unknown).
    func removeAll() {
        records.removeAll()
    }
}
