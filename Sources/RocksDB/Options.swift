import CRocksDB

/// How RocksDB replays the write-ahead log on open. Raw values are those of
/// `rocksdb_options_set_wal_recovery_mode` (`rocksdb::WALRecoveryMode`).
public enum WALRecoveryMode: Int32, Sendable {
    /// Ignore a torn record at the very end of the log (a crash mid-append); fail on anything else.
    case tolerateCorruptedTailRecords = 0
    /// Fail the open on any WAL corruption, even at the tail.
    case absoluteConsistency = 1
    /// Replay up to the first corruption and stop there (RocksDB's own default).
    case pointInTime = 2
    /// Skip every corrupted record and keep going; for salvage only.
    case skipAnyCorruptedRecords = 3
}

/// Open-time settings for `Database`. Plain values, so they can be built anywhere
/// and passed across actors; they are turned into a `rocksdb_options_t` only inside `Database.init`.
public struct DatabaseOptions: Sendable {
    /// Create the database directory and files if they do not exist.
    public var createIfMissing = true
    /// `rocksdb_options_set_paranoid_checks`: fail loudly on detected corruption rather than limp on.
    public var paranoidChecks = true
    /// `rocksdb_options_set_wal_recovery_mode`.
    public var walRecoveryMode: WALRecoveryMode = .tolerateCorruptedTailRecords
    /// Open with `rocksdb_open_for_read_only_column_families`: no lock on writes, every mutation fails.
    public var readOnly = false
    /// `rocksdb_options_set_max_open_files`; `-1` keeps every table file open.
    public var maxOpenFiles: Int32 = -1
    /// `rocksdb_options_set_write_buffer_size` per column family; `nil` keeps RocksDB's default (64 MiB).
    public var writeBufferSizeBytes: Int? = nil
    /// Bloom filter bits per key on every column family's SST files: point reads of keys that are
    /// not there (a new idempotency key, a new customer) skip the files. nil = no filter.
    public var bloomFilterBitsPerKey: Double? = 10
    /// A bloom filter over each memtable's whole keys, this fraction of the write buffer in size:
    /// a point read of a key that is not there (every new idempotency key) skips the memtable's
    /// skiplist search. nil = none.
    public var memtableBloomSizeRatio: Double? = 0.02
    /// Shared LRU cache for SST blocks. nil = RocksDB's default (8 MiB per column family).
    public var blockCacheBytes: Int? = 64 << 20
    /// `rocksdb_options_set_keep_log_file_num`: RocksDB starts a new info log (`LOG`, the old one
    /// renamed `LOG.old.<time>`) at every open, read-only ones included, and keeps this many.
    /// RocksDB's own default is 1000.
    public var infoLogFilesKept = 10

    public init() {}
}

/// RocksDB's per-thread performance counters (`rocksdb::PerfContext`). By default every thread
/// counts (`kEnableCount`): each key comparison in a memtable insert bumps a thread-local counter,
/// which from a shared library costs a `__tls_get_addr` call per comparison (~5 % of the writer
/// thread's samples in a strict reportUsage). Tally never reads the counters.
public enum PerfCounters {
    /// Stops the counting on the calling thread only (`rocksdb_set_perf_level(kDisable)`).
    public static func disableOnThisThread() {
        rocksdb_set_perf_level(1)  // rocksdb::PerfLevel::kDisable
    }
}
