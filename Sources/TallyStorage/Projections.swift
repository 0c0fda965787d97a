public import RocksDB
public import TallyCore

/// Where projection records are read: RocksDB (live reads), RocksDB under a group's overlay (the
/// writer), or memory (replay, rebuild, verify, time travel). Every projection is read and written
/// through these, so the live path and a replay run the same code.
public protocol ProjectionSource {
    /// The record at `key` in the projections keyspace, or nil.
    func projection(_ key: [UInt8]) throws(StorageError) -> [UInt8]?
}

/// A projection store that can be written: the writer's group (into the WriteBatch) or memory.
public protocol ProjectionSink: ProjectionSource {
    /// Sets (or with nil, removes) the record at `key`.
    mutating func setProjection(_ key: [UInt8], _ value: [UInt8]?)
}

/// Projections held in memory: what a replay of the log builds.
public struct MemoryProjections: ProjectionSink, Sendable {
    public private(set) var records: [ByteKey: [UInt8]] = [:]

    public init() {}

    public func projection(_ key: [UInt8]) -> [UInt8]? { records[ByteKey(key)] }

    public mutating func setProjection(_ key: [UInt8], _ value: [UInt8]?) { records[ByteKey(key)] = value }

    /// Every record in key order (byte-wise), as RocksDB orders them.
    public var sortedRecords: [(key: [UInt8], value: [UInt8])] {
        records.sorted { $0.key.bytes.lexicographicallyPrecedes($1.key.bytes) }.map { ($0.key.bytes, $0.value) }
    }
}

/// The projections, as folds of events over records. The writer applies each event it appends;
/// a replay applies every event of the log. Both call exactly this.
public enum Projector {
    /// Folds `event` into the projection records in `sink`.
    /// - Throws: `StorageError` when a record cannot be read or decoded.
    public static func apply(_ event: Event, to sink: inout some ProjectionSink) throws(StorageError) {
        switch event.payload {
        case .customerProvisioned(let e):
            try updateCustomer(e.customerId, event, &sink)
        case .customerUpdated(let e):
            try updateCustomer(e.customerId, event, &sink)
        default:
            try UsageProjector.apply(event, to: &sink)
        }
    }

    private static func updateCustomer(_ id: String, _ event: Event, _ sink: inout some ProjectionSink) throws(StorageError) {
        let current = try Projections.customer(id, in: sink)
        sink.setProjection(KeyLayout.customerKey(id), CustomerProjection.apply(event, to: current)?.encoded())
    }
}

/// Typed reads of projection records, from any source.
public enum Projections {
    public static func customer(_ id: String, in source: some ProjectionSource) throws(StorageError) -> Customer? {
        guard let bytes = try source.projection(KeyLayout.customerKey(id)) else { return nil }
        do {
            return try Customer.decode(bytes)
        } catch {
            throw .corrupt("customer \(id): \(error.reason)")
        }
    }

    /// A readable name for the projection a key belongs to, for verification reports.
    public static func describe(key: [UInt8]) -> (projection: String, key: String) {
        if let id = KeyLayout.customerId(fromKey: key) { return ("customers", id) }
        guard let separator = key.firstIndex(of: 0) else { return ("unknown", key.hexString) }
        let rest = String(decoding: key[(separator + 1)...].map { $0 == 0 ? UInt8(ascii: "/") : $0 }, as: UTF8.self)
        let names = ["$": "currencies", "f": "features", "m": "meterIndex", "p": "plans", "s": "subscriptions", "cs": "customerSubscriptions",
                     "pe": "promotionalEntitlements", "ut": "usageTotals", "us": "usageSeries", "uu": "uniqueMembers", "dk": "dimensionKeys",
                     "cg": "creditGrants", "cgl": "customerGrants", "cp": "creditPools", "cl": "creditLedger", "cx": "expirySchedule",
                     "cu": "creditUsage", "ar": "autoRecharge", "arm": "rechargeSpend"]
        return (names[String(decoding: key[..<separator], as: UTF8.self)] ?? "unknown", rest)
    }

    /// A readable form of a record, for verification reports.
    public static func describe(key: [UInt8], value: [UInt8]) -> String {
        if KeyLayout.customerId(fromKey: key) != nil, let customer = try? Customer.decode(value) {
            return "{name: \(customer.name ?? "nil"), email: \(customer.email ?? "nil"), metadata: \(customer.metadata.count) keys, createdAt: \(customer.createdAt), updatedAt: \(customer.updatedAt), lastSequence: \(customer.lastSequence)}"
        }
        return "\(value.count) bytes \(Array(value.prefix(16)).hexString)…"
    }
}

extension LedgerStore: ProjectionSource {
    public func projection(_ key: [UInt8]) throws(StorageError) -> [UInt8]? {
        try get(key, in: projections, snapshot: nil)
    }

    /// Calls `body` with every stored projection record in key order, as of `snapshot`.
    public func forEachProjection(snapshot: Snapshot?, _ body: ([UInt8], [UInt8]) throws(StorageError) -> Void) throws(StorageError) {
        let iterator = database.makeIterator(in: projections, snapshot: snapshot)
        iterator.seekToFirst()
        while iterator.isValid {
            try body(iterator.key, iterator.value)
            iterator.next()
        }
        do {
            try iterator.check()
        } catch {
            throw .rocksDB(error)
        }
    }
}

extension LedgerStore {
    /// Calls `body` with the projection records whose keys are in [lower, upper), in key order,
    /// until it returns false.
    public func scanProjections(from lower: [UInt8], to upper: [UInt8], snapshot: Snapshot? = nil, _ body: ([UInt8], [UInt8]) throws(StorageError) -> Bool) throws(StorageError) {
        let iterator = database.makeIterator(in: projections, snapshot: snapshot, lowerBound: lower, upperBound: upper)
        iterator.seekToFirst()
        while iterator.isValid {
            guard try body(iterator.key, iterator.value) else { return }
            iterator.next()
        }
        do {
            try iterator.check()
        } catch {
            throw .rocksDB(error)
        }
    }

    /// The records under `prefix`.
    public func scanProjections(prefix: [UInt8], snapshot: Snapshot? = nil, _ body: ([UInt8], [UInt8]) throws(StorageError) -> Bool) throws(StorageError) {
        try scanProjections(from: prefix, to: KeyLayout.prefixEnd(prefix), snapshot: snapshot, body)
    }
}

extension KeyLayout {
    /// The first key after every key that starts with `prefix`.
    public static func prefixEnd(_ prefix: [UInt8]) -> [UInt8] {
        var end = prefix
        while let last = end.last {
            if last < 0xFF {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
    }
}
