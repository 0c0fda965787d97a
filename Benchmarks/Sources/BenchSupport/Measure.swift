import Foundation
public import RocksDB
import TallyStorage

/// Read-only looks into a (possibly running) daemon's database, for same-run baselines.
public enum DaemonDatabase {
    /// Opens `<dataDir>/db` read-only with the ledger's column families.
    public static func openReadOnly(dataDir: String) throws -> Database {
        var options = DatabaseOptions()
        options.readOnly = true
        options.createIfMissing = false
        return try Database(path: dataDir + "/db", columnFamilies: KeyLayout.columnFamilies, options: options)
    }

    /// The last `count` event records (values of the events column family), oldest first.
    public static func lastEventRecords(dataDir: String, count: Int) throws -> [[UInt8]] {
        let db = try openReadOnly(dataDir: dataDir)
        let iterator = db.makeIterator(in: db.columnFamily(KeyLayout.eventsFamily))
        iterator.seekToLast()
        var records: [[UInt8]] = []
        while iterator.isValid, records.count < count {
            records.append(iterator.value)
            iterator.previous()
        }
        return records.reversed()
    }

    /// The first `count` records of `family` whose keys start with `prefix`.
    public static func records(dataDir: String, family: String, prefix: [UInt8], count: Int) throws -> [(key: [UInt8], value: [UInt8])] {
        let db = try openReadOnly(dataDir: dataDir)
        let iterator = db.makeIterator(in: db.columnFamily(family), lowerBound: prefix, upperBound: KeyLayout.prefixEnd(prefix))
        iterator.seek(to: prefix)
        var records: [(key: [UInt8], value: [UInt8])] = []
        while iterator.isValid, records.count < count {
            records.append((iterator.key, iterator.value))
            iterator.next()
        }
        try iterator.check()
        return records
    }

    /// The key of the last event: its sequence.
    public static func lastSequence(dataDir: String) throws -> UInt64 {
        let db = try openReadOnly(dataDir: dataDir)
        let iterator = db.makeIterator(in: db.columnFamily(KeyLayout.eventsFamily))
        iterator.seekToLast()
        return iterator.isValid ? (KeyLayout.sequence(fromEventKey: iterator.key) ?? 0) : 0
    }

    /// A plain range scan of `[from, to)` in `family`, touching every key and value byte;
    /// returns the number of records and bytes.
    public static func scan(_ db: Database, family: String, from: [UInt8]?, to: [UInt8]?) throws -> (records: Int, bytes: Int) {
        let iterator = db.makeIterator(in: db.columnFamily(family), lowerBound: from, upperBound: to)
        if let from { iterator.seek(to: from) } else { iterator.seekToFirst() }
        var records = 0
        var bytes = 0
        var checksum: UInt8 = 0
        while iterator.isValid {
            iterator.withKeyAndValue { key, value in
                bytes += key.count + value.count
                if let last = value.last { checksum &+= last }
            }
            records += 1
            iterator.next()
        }
        try iterator.check()
        if checksum == 0x5A && records < 0 { print(checksum) } // keep the loop honest
        return (records, bytes)
    }
}

extension SampleRecords {
    /// Arbitrary pre-encoded event records (e.g. the daemon's own, read back), no projections.
    public init(eventRecords: [[UInt8]]) {
        self.init(events: eventRecords, customers: [])
    }

    /// The daemon's own event records, with idempotency records and usage cells for
    /// `RawBaseline.WriteSet.ingest`.
    public init(eventRecords: [[UInt8]], idempotency: [(key: [UInt8], value: [UInt8])], cells: [(key: [UInt8], value: [UInt8])]) {
        precondition(!idempotency.isEmpty && !cells.isEmpty, "the ingest write set needs idempotency records and usage cells")
        self.init(events: eventRecords, customers: [], idempotency: idempotency, cells: cells)
    }
}

/// Per-sync latencies (seconds) of `write(128 B) + fdatasync` on a file in `directory`.
public func fdatasyncLatencies(in directory: String, syncs: Int, bytesPerWrite: Int = 128) throws -> [Double] {
    let path = (directory as NSString).appendingPathComponent("tally-bench-fsync-lat.\(getpid())")
    let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
    guard fd >= 0 else { throw BenchError("open \(path)") }
    defer {
        close(fd)
        unlink(path)
    }
    let payload = [UInt8](repeating: 0x5A, count: bytesPerWrite)
    let clock = ContinuousClock()
    var latencies: [Double] = []
    latencies.reserveCapacity(syncs)
    for _ in 0..<syncs {
        let start = clock.now
        let written = payload.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        guard written == bytesPerWrite else { throw BenchError("write \(path)") }
        guard fdatasync(fd) == 0 else { throw BenchError("fdatasync \(path)") }
        latencies.append((clock.now - start).seconds)
    }
    return latencies
}
