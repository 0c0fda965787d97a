import Foundation
public import RocksDB
public import TallyCore
import TallyStorage

/// Pre-encoded records of the size the engine writes for one provisionCustomer: the
/// CUSTOMER_PROVISIONED event record (format byte, type, version, timestamp, 32-byte prevHash,
/// payload) and the customer projection record. Encoded once, before anything is timed.
public struct SampleRecords: Sendable {
    /// Event records (the log's values), one per command.
    public let events: [[UInt8]]
    /// Customer projection records, keyed `c\0<id>`, one per command.
    public let customers: [(key: [UInt8], value: [UInt8])]
    /// For the ingest write set: idempotency records and usage cells, as the daemon stored them.
    public let idempotency: [(key: [UInt8], value: [UInt8])]
    public let cells: [(key: [UInt8], value: [UInt8])]

    init(events: [[UInt8]], customers: [(key: [UInt8], value: [UInt8])], idempotency: [(key: [UInt8], value: [UInt8])] = [], cells: [(key: [UInt8], value: [UInt8])] = []) {
        self.events = events
        self.customers = customers
        self.idempotency = idempotency
        self.cells = cells
    }

    /// `count` distinct records, shaped like what the benchmarks submit: a customer with an id, a
    /// name and an email.
    public init(count: Int) {
        var events: [[UInt8]] = []
        var customers: [(key: [UInt8], value: [UInt8])] = []
        events.reserveCapacity(count)
        var prevHash = EventRecord.genesisHash
        let now = Timestamp(microsecondsSinceEpoch: 1_780_000_000_000_000)
        for index in 0..<count {
            let command = SampleRecords.command(index: index, prefix: "raw")
            for payload in Rules.provisionCustomer(command, existing: nil) {
                let record = EventRecord(sequence: UInt64(index + 1), recordedAt: now, payload: payload, prevHash: prevHash)
                prevHash = record.hash
                events.append(record.bytes)
                // A new customer's provisioning event always folds (the rules just made it).
                if let customer = try! CustomerProjection.apply(record.event, to: nil) {
                    customers.append((KeyLayout.customerKey(customer.id), customer.encoded()))
                }
            }
        }
        self.events = events
        self.customers = customers
        self.idempotency = []
        self.cells = []
    }

    /// The command the engine benchmark submits for its `index`-th customer.
    public static func command(index: Int, prefix: String) -> ProvisionCustomer {
        let id = "\(prefix)-\(String(index, radix: 10).leftPadded(to: 8))"
        return ProvisionCustomer(customerId: id, name: .set("Customer \(index)"), email: .set("\(id)@example.com"))
    }

    public var averageEventBytes: Double {
        events.isEmpty ? 0 : Double(events.reduce(0) { $0 + $1.count }) / Double(events.count)
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// The baseline: RocksDB through Tally's own wrapper, with the ledger's open options and column
/// families, writing pre-encoded records in synced WriteBatches and nothing else (no decisions,
/// no hashing, no encoding, no reads).
public final class RawBaseline {
    public enum WriteSet: Equatable, Sendable {
        /// Only the event records: `seq → event`, as many as events.
        case events
        /// What the engine's group commit writes: per command the event and the customer
        /// projection, and per batch the two projection-mark keys.
        case engineWriteSet
        /// What a reportEvent group writes at the least: per event its record, its idempotency
        /// record and `cellsPerEvent` usage cells (the daemon's own, under distinct keys), and per
        /// batch the two projection-mark keys.
        case ingest(cellsPerEvent: Int)
    }

    public let directory: String
    public let database: Database
    private let eventsFamily: ColumnFamily
    private let projectionsFamily: ColumnFamily
    private let metaFamily: ColumnFamily
    private let idempotencyFamily: ColumnFamily
    private let records: SampleRecords
    private var nextSequence: UInt64 = 1
    private let ownsDirectory: Bool

    /// Opens a fresh database in a new temporary directory under `parent` (removed by `close()`).
    public init(parent: String = NSTemporaryDirectory(), records: SampleRecords) throws {
        directory = try makeTemporaryDirectory(in: parent, prefix: "tally-bench-raw")
        ownsDirectory = true
        var options = DatabaseOptions()
        options.createIfMissing = true
        options.paranoidChecks = true
        options.walRecoveryMode = .tolerateCorruptedTailRecords
        database = try Database(path: directory + "/db", columnFamilies: KeyLayout.columnFamilies, options: options)
        eventsFamily = database.columnFamily(KeyLayout.eventsFamily)
        projectionsFamily = database.columnFamily(KeyLayout.projectionsFamily)
        metaFamily = database.columnFamily(KeyLayout.metaFamily)
        idempotencyFamily = database.columnFamily(KeyLayout.idempotencyFamily)
        self.records = records
    }

    /// Writes `count` records in synced batches of `groupSize` (the last one may be smaller).
    public func write(records count: Int, groupSize: Int, writeSet: WriteSet = .events) throws {
        precondition(groupSize > 0)
        var remaining = count
        let batch = WriteBatch()
        while remaining > 0 {
            let take = min(groupSize, remaining)
            batch.clear()
            for _ in 0..<take {
                let slot = Int((nextSequence - 1) % UInt64(records.events.count))
                batch.put(KeyLayout.eventKey(nextSequence), records.events[slot], in: eventsFamily)
                switch writeSet {
                case .events:
                    break
                case .engineWriteSet:
                    let customer = records.customers[slot]
                    // A distinct key per command, as the engine writes one per new customer.
                    batch.put(customer.key + KeyLayout.bigEndian(nextSequence), customer.value, in: projectionsFamily)
                case .ingest(let cellsPerEvent):
                    // Distinct keys in the order the samples came (each event's key is new, as
                    // each raw event's idempotency key is).
                    let record = records.idempotency[Int((nextSequence - 1) % UInt64(records.idempotency.count))]
                    batch.put(record.key + KeyLayout.bigEndian(nextSequence), record.value, in: idempotencyFamily)
                    for c in 0..<cellsPerEvent {
                        let n = (nextSequence - 1) * UInt64(cellsPerEvent) + UInt64(c)
                        let cell = records.cells[Int(n % UInt64(records.cells.count))]
                        batch.put(cell.key + KeyLayout.bigEndian(n), cell.value, in: projectionsFamily)
                    }
                }
                nextSequence += 1
            }
            if writeSet != .events {
                batch.put(KeyLayout.projectionSequenceKey, KeyLayout.bigEndian(nextSequence - 1), in: metaFamily)
                batch.put(KeyLayout.projectionVersionKey, [0, 0, 0, 1], in: metaFamily)
            }
            try database.write(batch, sync: true)
            remaining -= take
        }
    }

    /// Closes nothing explicitly (the handle closes when released) and removes the directory.
    public func removeDirectory() {
        if ownsDirectory { try? FileManager.default.removeItem(atPath: directory) }
    }
}

/// fdatasync after each small write on a file in `directory`: the disk's bare sync rate.
public func fdatasyncRate(in directory: String, syncs: Int, bytesPerWrite: Int = 128) throws -> Double {
    let path = (directory as NSString).appendingPathComponent("tally-bench-fsync.\(getpid())")
    let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
    guard fd >= 0 else { throw BenchError("open \(path): \(errnoText())") }
    defer {
        close(fd)
        unlink(path)
    }
    let payload = [UInt8](repeating: 0x5A, count: bytesPerWrite)
    let clock = ContinuousClock()
    let start = clock.now
    for _ in 0..<syncs {
        let written = payload.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        guard written == bytesPerWrite else { throw BenchError("write \(path): \(errnoText())") }
        guard fdatasync(fd) == 0 else { throw BenchError("fdatasync \(path): \(errnoText())") }
    }
    return Double(syncs) / (clock.now - start).seconds
}

/// A new directory `parent/prefix.XXXXXX` (mkdtemp).
public func makeTemporaryDirectory(in parent: String = NSTemporaryDirectory(), prefix: String) throws -> String {
    let template = (parent as NSString).appendingPathComponent("\(prefix).XXXXXX")
    var bytes = Array(template.utf8CString)
    guard mkdtemp(&bytes) != nil else { throw BenchError("mkdtemp \(template): \(errnoText())") }
    return String(decoding: bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func errnoText() -> String { String(validatingCString: strerror(errno)) ?? "errno \(errno)" }

public struct BenchError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension Duration {
    public var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}
