public import RocksDB
public import TallyCore

/// Where projection records are read: RocksDB (live reads), RocksDB under a group's overlay (the
/// writer), or memory (replay, rebuild, verify, time travel). Every projection is read and written
/// through these, so the live path and a replay run the same code.
public protocol ProjectionSource {
    /// The record at `key` in the projections keyspace, or nil.
    func projection(_ key: [UInt8]) throws(StorageError) -> [UInt8]?
    /// The record at `key` as the source holds it: bytes, or a value it keeps decoded. Sources
    /// that keep nothing decoded need not implement this.
    func projectionRecord(_ key: [UInt8]) throws(StorageError) -> ProjectionRecord?
    /// Offers a record the caller just decoded from this source's bytes, so a source with a read
    /// cache (the writer's group) decodes it once. Others ignore it.
    func rememberDecoded(_ key: [UInt8], _ value: DecodedProjection)
}

extension ProjectionSource {
    public func projectionRecord(_ key: [UInt8]) throws(StorageError) -> ProjectionRecord? {
        try projection(key).map { .bytes($0) }
    }

    public func rememberDecoded(_ key: [UInt8], _ value: DecodedProjection) {}
}

/// A projection store that can be written: the writer's group (into the WriteBatch) or memory.
public protocol ProjectionSink: ProjectionSource {
    /// Sets (or with nil, removes) the record at `key`.
    mutating func setProjection(_ key: [UInt8], _ value: [UInt8]?)
    /// Sets the record at `key` to a decoded value; a sink that keeps values decoded (memory, the
    /// writer's group) encodes it only when the bytes are needed.
    mutating func setProjection(_ key: [UInt8], decoded value: DecodedProjection)
    /// Replaces the usage cell at `key` (nil when there is none) with what `body` makes of it.
    mutating func updateUsageCell(_ key: [UInt8], _ body: (UsageCell?) -> UsageCell) throws(StorageError)
}

extension ProjectionSink {
    public mutating func setProjection(_ key: [UInt8], decoded value: DecodedProjection) {
        setProjection(key, value.encoded())
    }

    public mutating func updateUsageCell(_ key: [UInt8], _ body: (UsageCell?) -> UsageCell) throws(StorageError) {
        let cell = try Projections.usageCell(key, in: self)
        setProjection(key, decoded: .usageCell(body(cell)))
    }
}

/// The records that change with nearly every event (usage cells, grants, pools) or are read for
/// every event (features, meter indexes), held decoded so a run of events decodes and encodes
/// each of them once, not once per event. Encoding one gives exactly the stored bytes.
public enum DecodedProjection: Sendable {
    case usageCell(UsageCell)
    case strings([String])
    indirect case feature(Feature)
    indirect case grant(CreditGrant)
    indirect case pool(CreditPool)

    public func encoded() -> [UInt8] {
        switch self {
        case .usageCell(let cell): cell.encoded()
        case .strings(let strings): Projections.encodeStrings(strings)
        case .feature(let feature): feature.encoded()
        case .grant(let grant): grant.encoded()
        case .pool(let pool): pool.encoded()
        }
    }
}

/// A projection record as a source holds it.
public enum ProjectionRecord: Sendable {
    case bytes([UInt8])
    case decoded(DecodedProjection)

    public var bytes: [UInt8] {
        switch self {
        case .bytes(let bytes): bytes
        case .decoded(let value): value.encoded()
        }
    }
}

/// Projections held in memory: what a replay of the log builds.
public struct MemoryProjections: ProjectionSink, Sendable {
    private var slots: [ByteKey: ProjectionRecord] = [:]

    public init() {}

    /// Room for `expectedRecords` without growing (a replay knows about how many it will build).
    public init(expectedRecords: Int) {
        slots.reserveCapacity(expectedRecords)
    }

    /// Calls `body` with every record, encoded, in no particular order.
    public func forEachRecord(_ body: ([UInt8], [UInt8]) -> Void) {
        for (key, record) in slots { body(key.bytes, record.bytes) }
    }

    public var count: Int { slots.count }

    public var keys: Dictionary<ByteKey, ProjectionRecord>.Keys { slots.keys }

    public func projection(_ key: [UInt8]) -> [UInt8]? { slots[ByteKey(key)]?.bytes }

    public func projectionRecord(_ key: [UInt8]) -> ProjectionRecord? { slots[ByteKey(key)] }

    public mutating func setProjection(_ key: [UInt8], _ value: [UInt8]?) { slots[ByteKey(key)] = value.map { .bytes($0) } }

    public mutating func setProjection(_ key: [UInt8], decoded value: DecodedProjection) { slots[ByteKey(key)] = .decoded(value) }

    /// In place: one hash lookup for a cell that exists (most updates), no decoding or encoding.
    public mutating func updateUsageCell(_ key: [UInt8], _ body: (UsageCell?) -> UsageCell) throws(StorageError) {
        let byteKey = ByteKey(key)
        guard let index = slots.index(forKey: byteKey) else {
            slots[byteKey] = .decoded(.usageCell(body(nil)))
            return
        }
        if case .decoded(.usageCell(let cell)) = slots.values[index] {
            slots.values[index] = .decoded(.usageCell(body(cell)))
        } else {
            let cell = try Projections.usageCell(key, in: self)
            slots.values[index] = .decoded(.usageCell(body(cell)))
        }
    }

    /// The records with `lower` ≤ key < `upper`, in key order (byte-wise), as RocksDB orders them.
    public func records(from lower: [UInt8], to upper: [UInt8]) -> [(key: [UInt8], value: [UInt8])] {
        Self.inKeyOrder(slots.filter { !$0.key.bytes.lexicographicallyPrecedes(lower) && $0.key.bytes.lexicographicallyPrecedes(upper) })
    }

    /// Every record in key order (byte-wise), as RocksDB orders them.
    public var sortedRecords: [(key: [UInt8], value: [UInt8])] { Self.inKeyOrder(slots) }

    private static func inKeyOrder(_ slots: [ByteKey: ProjectionRecord]) -> [(key: [UInt8], value: [UInt8])] {
        slots.sorted { $0.key.bytes.lexicographicallyPrecedes($1.key.bytes) }.map { ($0.key.bytes, $0.value.bytes) }
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

    /// `apply` into memory, specialized in this module for MemoryProjections: a replay folds
    /// millions of events, and the generic call from another module is not specialized.
    public static func fold(_ event: Event, into projections: inout MemoryProjections) throws(StorageError) {
        try apply(event, to: &projections)
    }

    private static func updateCustomer(_ id: String, _ event: Event, _ sink: inout some ProjectionSink) throws(StorageError) {
        let current = try Projections.customer(id, in: sink)
        do {
            sink.setProjection(KeyLayout.customerKey(id), try CustomerProjection.apply(event, to: current)?.encoded())
        } catch {
            throw .inconsistentLog(error.reason)
        }
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
        let projection = projectionName(of: key)
        if projection == "customers", let id = KeyLayout.customerId(fromKey: key) { return (projection, id) }
        guard let separator = key.firstIndex(of: 0) else { return (projection, key.hexString) }
        // Parts are separated by 0. A part that is not readable text (a period tag, a sortable
        // timestamp, a big-endian sequence) is shown in hex, so the ids around it stay readable.
        let parts = key[(separator + 1)...].split(separator: 0, omittingEmptySubsequences: false).map { part in
            if let text = String(validating: part, as: UTF8.self), !text.unicodeScalars.contains(where: { $0.value < 0x20 }) { return text }
            return "<" + Array(part).hexString + ">"
        }
        let text = parts.joined(separator: "/")
        return (projection, text)
    }

    /// The projection a key belongs to, from its tag alone (cheap enough to count every record).
    public static func projectionName(of key: [UInt8]) -> String {
        guard let separator = key.firstIndex(of: 0) else { return "unknown" }
        return projectionNames[String(decoding: key[..<separator], as: UTF8.self)] ?? "unknown"
    }

    private static let projectionNames = [
        "c": "customers", "$": "currencies", "f": "features", "m": "meterIndex", "p": "plans", "s": "subscriptions", "cs": "customerSubscriptions", "csi": "customerSubscriptions",
        "ep": "entitlingPlans", "epi": "entitlingPlans", "es": "entitlingSubscriptions", "esi": "entitlingSubscriptions",
        "pe": "promotionalEntitlements", "ut": "usageTotals", "us": "usageSeries", "uu": "uniqueMembers", "dk": "dimensionKeys",
        "cg": "creditGrants", "cgl": "customerGrants", "cp": "creditPools", "cl": "creditLedger", "cx": "expirySchedule", "ca": "activationSchedule",
        "cu": "creditUsage", "ar": "autoRecharge", "arm": "rechargeSpend",
    ]

    /// A readable form of a record, for verification reports.
    public static func describe(key: [UInt8], value: [UInt8]) -> String {
        if KeyLayout.customerId(fromKey: key) != nil, let customer = try? Customer.decode(value) {
            return "{name: \(customer.name ?? "nil"), email: \(customer.email ?? "nil"), metadata: \(customer.metadata.count) keys, createdAt: \(customer.createdAt), updatedAt: \(customer.updatedAt), lastSequence: \(customer.lastSequence)}"
        }
        // The money and usage records, as an auditor reads them: amounts, not bytes.
        switch projectionName(of: key) {
        case "creditPools":
            if let pool = try? CreditPool.decode(value) {
                return "{balance: \(pool.ledgerBalance), overdraft: \(pool.overdraft), openGrants: \(pool.openGrants.count), awaitingActivation: \(pool.awaitingActivation.count)}"
            }
        case "creditGrants":
            if let grant = try? CreditGrant.decode(value) {
                return "{customer: \(grant.customerId), currency: \(grant.currencyId), amount: \(grant.amount), consumed: \(grant.consumed), repaid: \(grant.repaid), expired: \(grant.expiredAmount), voided: \(grant.voidedAmount), remaining: \(grant.remaining)}"
            }
        case "usageTotals", "usageSeries", "creditUsage":
            if let cell = try? UsageCell.decode(value) {
                return "{value: \(cell.value), eventCount: \(cell.eventCount)}"
            }
        case "autoRecharge":
            if let config = try? AutoRecharge.decode(value) {
                return "{isEnabled: \(config.isEnabled), threshold: \(config.thresholdValue), target: \(config.targetBalance), maxSpendLimit: \(config.maxSpendLimit.map { "\($0)" } ?? "none")}"
            }
        default:
            break
        }
        return "\(value.count) bytes \(Array(value.prefix(16)).hexString)…"
    }
}

extension LedgerStore: ProjectionSource {
    public func projection(_ key: [UInt8]) throws(StorageError) -> [UInt8]? {
        try get(key, in: projections, snapshot: nil)
    }

    /// RocksDB's estimate of how many projection records are stored (a capacity hint).
    public var estimatedProjectionRecords: Int {
        database.property("rocksdb.estimate-num-keys", in: projections).flatMap { Int($0) } ?? 0
    }

    /// The stored record at `key` as of `snapshot`.
    public func projection(_ key: [UInt8], snapshot: Snapshot?) throws(StorageError) -> [UInt8]? {
        try get(key, in: projections, snapshot: snapshot)
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
