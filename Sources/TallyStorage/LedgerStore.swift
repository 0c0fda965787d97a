public import RocksDB
public import TallyCore

/// The environment failed under the ledger: RocksDB reported an error, or stored bytes are damaged.
public enum StorageError: Error, Sendable, CustomStringConvertible {
    case rocksDB(RocksDBError)
    /// Bytes on disk that do not decode or do not chain: never served, always reported.
    case corrupt(String)
    /// Nothing is damaged, but the ledger cannot be used as asked: no database where one was
    /// named, a file the daemon must write that it may not. The text says what and what to do.
    case unusable(String)

    /// Damaged data (ours or RocksDB's checksums), as opposed to an I/O failure that may pass.
    public var isDamage: Bool {
        switch self {
        case .rocksDB(let error): error.kind == .corruption
        case .corrupt: true
        case .unusable: false
        }
    }

    public var description: String {
        switch self {
        case .rocksDB(let error): error.description
        case .corrupt(let what): "ledger data is corrupt: \(what)"
        case .unusable(let what): what
        }
    }

    /// Events that decode but contradict the ones before them (a grant drawn that was never made,
    /// an update of a customer that does not exist): a damaged or edited log, reported, not trapped.
    public static func inconsistentLog(_ what: String) -> StorageError {
        .corrupt("the log contradicts itself: \(what)")
    }
}

/// What an idempotency key remembers: the fingerprint of the original params and its answer.
public struct IdempotencyRecord: Sendable, Equatable {
    public static let fingerprintBytes = 32
    public var fingerprint: [UInt8]
    public var result: CommandResult

    public init(fingerprint: [UInt8], result: CommandResult) {
        precondition(fingerprint.count == Self.fingerprintBytes)
        self.fingerprint = fingerprint
        self.result = result
    }

    public func encoded() -> [UInt8] { fingerprint + result.encoded() }

    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> IdempotencyRecord {
        guard bytes.count > fingerprintBytes else { throw DecodingError("idempotency record too short") }
        return IdempotencyRecord(
            fingerprint: Array(bytes[..<fingerprintBytes]),
            result: try CommandResult.decode(Array(bytes[fingerprintBytes...]))
        )
    }
}

/// The ledger's RocksDB: the log, the projections and the idempotency records, read and written
/// through the key layout. Thread-safe for concurrent reads; the engine's single writer is the only
/// caller of `write`.
public final class LedgerStore: Sendable {
    public let database: Database
    let events: ColumnFamily
    let projections: ColumnFamily
    let idempotency: ColumnFamily
    let meta: ColumnFamily
    /// The tag of a ledger restored from a snapshot (`KeyLayout.lineageKey`), nil for one never
    /// restored; read when the store opens.
    public let lineage: String?

    /// Opens (or creates) the store in `path`, with paranoid checks and a WAL recovery mode that
    /// reports corruption instead of dropping acknowledged writes.
    /// - Throws: `StorageError.rocksDB` when RocksDB cannot open it (lock held, corruption, I/O).
    public init(path: String, readOnly: Bool = false) throws(StorageError) {
        var options = DatabaseOptions()
        options.readOnly = readOnly
        options.createIfMissing = !readOnly
        options.paranoidChecks = true
        options.walRecoveryMode = .tolerateCorruptedTailRecords
        do {
            database = try Database(path: path, columnFamilies: KeyLayout.columnFamilies, options: options)
        } catch {
            throw .rocksDB(error)
        }
        events = database.columnFamily(KeyLayout.eventsFamily)
        projections = database.columnFamily(KeyLayout.projectionsFamily)
        idempotency = database.columnFamily(KeyLayout.idempotencyFamily)
        meta = database.columnFamily(KeyLayout.metaFamily)
        do {
            lineage = try database.get(KeyLayout.lineageKey, in: meta).map { String(decoding: $0, as: UTF8.self) }
        } catch {
            throw .rocksDB(error)
        }
    }

    /// Records a new lineage tag, synced: the restore's mark on the copy it installs.
    public func setLineage(_ tag: String) throws(StorageError) {
        do {
            try database.put(KeyLayout.lineageKey, Array(tag.utf8), in: meta, sync: true)
        } catch {
            throw .rocksDB(error)
        }
    }

    /// An id the daemon makes up for the event at `sequence`: `grant_4`, or after a restore
    /// `grant_4-k7q2m9xd` (the lineage), never the id of a thing the restore took back.
    public func generatedId(_ prefix: String, sequence: UInt64) -> String {
        lineage.map { "\(prefix)_\(sequence)-\($0)" } ?? "\(prefix)_\(sequence)"
    }

    /// A new lineage tag: 8 random characters of `[a-z0-9]`.
    public static func newLineage() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        return String((0..<8).map { _ in alphabet.randomElement()! })
    }

    // MARK: The log

    /// The last event in the log, decoded, or nil for an empty log.
    public func lastEvent(snapshot: Snapshot? = nil) throws(StorageError) -> EventRecord? {
        try last(snapshot: snapshot) { (iterator: RocksDB.Iterator) throws(StorageError) in try decodeEvent(key: iterator.key, value: iterator.value) }
    }

    /// The last event's sequence (0 for an empty log), from its key alone: the record is not
    /// decoded, so a damaged last event does not hide where the log ends.
    public func lastSequence(snapshot: Snapshot? = nil) throws(StorageError) -> UInt64 {
        try last(snapshot: snapshot) { (iterator: RocksDB.Iterator) throws(StorageError) in try sequence(ofEventKey: iterator.key) } ?? 0
    }

    /// The last event's sequence and hash when it is past `sequence`, else nil; the record is
    /// hashed, not decoded, and only then.
    public func lastEvent(after sequence: UInt64) throws(StorageError) -> (sequence: UInt64, hash: [UInt8])? {
        try last(snapshot: nil) { (iterator: RocksDB.Iterator) throws(StorageError) -> (sequence: UInt64, hash: [UInt8])? in
            let last = try self.sequence(ofEventKey: iterator.key)
            return last > sequence ? (last, EventRecord.hash(sequence: last, record: iterator.value)) : nil
        } ?? nil
    }

    /// `read` of the log's last record, or nil for an empty log.
    private func last<T>(snapshot: Snapshot?, _ read: (RocksDB.Iterator) throws(StorageError) -> T) throws(StorageError) -> T? {
        let iterator = database.makeIterator(in: events, snapshot: snapshot)
        iterator.seekToLast()
        guard iterator.isValid else {
            try check(iterator)
            return nil
        }
        return try read(iterator)
    }

    /// Up to `limit` events with sequence > `after`, in order.
    public func events(after: UInt64, limit: Int, snapshot: Snapshot? = nil) throws(StorageError) -> [EventRecord] {
        var records: [EventRecord] = []
        try forEachEvent(after: after, snapshot: snapshot) { record throws(StorageError) in
            records.append(record)
            return records.count < limit
        }
        return records
    }

    /// Calls `body` for every event after `after`, in order, until it returns false.
    public func forEachEvent(
        after: UInt64,
        through last: UInt64 = .max,
        snapshot: Snapshot? = nil,
        _ body: (EventRecord) throws(StorageError) -> Bool
    ) throws(StorageError) {
        let upper = last == .max ? nil : KeyLayout.eventKey(last + 1)
        let iterator = database.makeIterator(in: events, snapshot: snapshot, upperBound: upper)
        iterator.seek(to: KeyLayout.eventKey(after &+ 1))
        if after == .max { return }
        while iterator.isValid {
            let record = try decodeEvent(key: iterator.key, value: iterator.value)
            guard try body(record) else { return }
            iterator.next()
        }
        try check(iterator)
    }

    private func sequence(ofEventKey key: [UInt8]) throws(StorageError) -> UInt64 {
        guard let sequence = KeyLayout.sequence(fromEventKey: key) else {
            throw .corrupt("event key of \(key.count) bytes in the events column family")
        }
        return sequence
    }

    private func decodeEvent(key: [UInt8], value: [UInt8]) throws(StorageError) -> EventRecord {
        let sequence = try sequence(ofEventKey: key)
        do {
            return try EventRecord(sequence: sequence, bytes: value)
        } catch {
            throw .corrupt("event \(sequence): \(error.reason)")
        }
    }

    // MARK: Projections

    /// Customers in id order (by UTF-8 bytes), starting after `after`.
    public func customers(after: String?, limit: Int, snapshot: Snapshot? = nil) throws(StorageError) -> [Customer] {
        var result: [Customer] = []
        try forEachCustomer(after: after, snapshot: snapshot) { customer in
            result.append(customer)
            return result.count < limit
        }
        return result
    }

    public func forEachCustomer(after: String? = nil, snapshot: Snapshot? = nil, _ body: (Customer) -> Bool) throws(StorageError) {
        let range = KeyLayout.customerRange
        let iterator = database.makeIterator(in: projections, snapshot: snapshot, lowerBound: range.lower, upperBound: range.upper)
        if let after {
            iterator.seek(to: KeyLayout.customerKey(after) + [0])
        } else {
            iterator.seekToFirst()
        }
        while iterator.isValid {
            let customer: Customer
            do {
                customer = try Customer.decode(iterator.value)
            } catch {
                throw .corrupt("customer record \(KeyLayout.customerId(fromKey: iterator.key) ?? "?"): \(error.reason)")
            }
            guard body(customer) else { return }
            iterator.next()
        }
        try check(iterator)
    }

    /// The sequence of the last event folded into the stored projections and their layout
    /// version; nil when never written.
    public func projectionMark(snapshot: Snapshot? = nil) throws(StorageError) -> (sequence: UInt64, version: UInt32)? {
        guard let sequenceBytes = try get(KeyLayout.projectionSequenceKey, in: meta, snapshot: snapshot),
              let versionBytes = try get(KeyLayout.projectionVersionKey, in: meta, snapshot: snapshot)
        else { return nil }
        guard let sequence = KeyLayout.uint64(bigEndian: sequenceBytes), versionBytes.count == 4 else {
            throw .corrupt("projection mark is malformed")
        }
        return (sequence, versionBytes.reduce(0) { $0 << 8 | UInt32($1) })
    }

    // MARK: Idempotency

    public func idempotencyRecord(family: String, customerId: String, key: String) throws(StorageError) -> IdempotencyRecord? {
        let storageKey = KeyLayout.idempotencyKey(family: family, customerId: customerId, key: key)
        guard let bytes = try get(storageKey, in: idempotency, snapshot: nil) else { return nil }
        do {
            return try IdempotencyRecord.decode(bytes)
        } catch {
            throw .corrupt("idempotency record \(family)/\(customerId)/\(key): \(error.reason)")
        }
    }

    // MARK: Writing

    /// Starts a batch; nothing is visible until `commit`.
    public func makeBatch() -> StoreBatch { StoreBatch(store: self) }

    /// Writes the batch atomically and fsyncs the WAL before returning.
    /// - Throws: `StorageError.rocksDB`; the batch's outcome is then unknown to the caller's clients.
    public func commit(_ batch: StoreBatch) throws(StorageError) {
        do {
            try database.write(batch.batch, sync: true)
        } catch {
            throw .rocksDB(error)
        }
    }

    public func snapshot() -> Snapshot { database.snapshot() }

    func get(_ key: [UInt8], in cf: ColumnFamily, snapshot: Snapshot?) throws(StorageError) -> [UInt8]? {
        do {
            return try database.get(key, in: cf, snapshot: snapshot)
        } catch {
            throw .rocksDB(error)
        }
    }

    private func check(_ iterator: Iterator) throws(StorageError) {
        do {
            try iterator.check()
        } catch {
            throw .rocksDB(error)
        }
    }
}

/// One atomic write: events, projection updates, idempotency records and the projection mark.
public final class StoreBatch {
    let batch = WriteBatch()
    private let store: LedgerStore

    init(store: LedgerStore) { self.store = store }

    public var isEmpty: Bool { batch.count == 0 }
    public var byteCount: Int { batch.dataSizeBytes }

    public func append(_ record: EventRecord) {
        batch.put(KeyLayout.eventKey(record.event.sequence), record.bytes, in: store.events)
    }

    /// Sets or removes one projection record.
    public func setProjection(_ key: [UInt8], _ value: [UInt8]?) {
        if let value {
            batch.put(key, value, in: store.projections)
        } else {
            batch.delete(key, in: store.projections)
        }
    }

    public func put(_ record: IdempotencyRecord, family: String, customerId: String, key: String) {
        batch.put(KeyLayout.idempotencyKey(family: family, customerId: customerId, key: key), record.encoded(), in: store.idempotency)
    }

    public func setProjectionMark(sequence: UInt64) {
        batch.put(KeyLayout.projectionSequenceKey, KeyLayout.bigEndian(sequence), in: store.meta)
        let v = KeyLayout.projectionVersion
        batch.put(KeyLayout.projectionVersionKey, [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)], in: store.meta)
    }

    /// Removes every projection record (before a rebuild).
    public func clearProjections() {
        batch.deleteRange(from: [0], to: [0xFF, 0xFF, 0xFF, 0xFF], in: store.projections)
    }
}
