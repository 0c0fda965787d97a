import Foundation
public import Logging
public import TallyCore
public import TallyStorage
import RocksDB

/// What the ledger answered a command.
public enum CommandReply: Sendable, Equatable {
    /// Appended and synced to disk.
    case applied(CommandResult)
    /// The idempotency key was seen before with the same params: the original answer, nothing appended.
    case duplicate(CommandResult)
    /// Refused by the rules; nothing appended.
    case rejected(Rejection)
    /// The write failed (I/O error, disk full, shutting down): the outcome is unknown; retry with
    /// the same idempotency key.
    case unavailable(String)
    /// The writer's queue is full: nothing was tried; retry later.
    case overloaded
}

/// An idempotency key with the fingerprint (SHA-256 of the canonical params) it was sent with.
public struct IdempotencyClaim: Sendable {
    public var key: String
    public var fingerprint: [UInt8]

    public init(key: String, fingerprint: [UInt8]) {
        self.key = key
        self.fingerprint = fingerprint
    }
}

/// The ledger engine: one writer thread decides every command in one order, group-commits each
/// group in one synced WriteBatch, and only then replies. Reads go straight to RocksDB, which
/// shows only committed batches.
public final class Ledger: Sendable {
    public struct Limits: Sendable {
        /// Commands decided together and committed in one synced batch.
        public var groupCommandsMax = 4096
        /// Commands waiting for the writer before new ones are refused as OVERLOADED.
        public var queuedCommandsMax = 100_000

        public init() {}
    }

    public let store: LedgerStore
    public let dataDirectory: String
    let clock: any LedgerClock
    let logger: Logger
    private let writer: Writer

    /// Opens the ledger in `dataDirectory/db`: recovers the log, checks the tail of the hash
    /// chain, rebuilds the projections if they are missing or behind, and starts the writer.
    /// - Throws: `StorageError` when the database cannot be opened or is inconsistent.
    public init(dataDirectory: String, clock: any LedgerClock = SystemClock(), limits: Limits = Limits(), logger: Logger) throws(StorageError) {
        self.dataDirectory = dataDirectory
        self.clock = clock
        self.logger = logger
        store = try LedgerStore(path: Self.databasePath(in: dataDirectory))
        let head = try Recovery.recover(store: store, logger: logger)
        writer = Writer(store: store, clock: clock, limits: limits, logger: logger, head: head)
        writer.start()
    }

    deinit {
        writer.stop()
    }

    public static func databasePath(in dataDirectory: String) -> String { dataDirectory + "/db" }

    /// Queues a command; `completion` runs on the writer thread once the outcome is durable (or
    /// refused). Never blocks.
    public func submit(_ command: Command, idempotency: IdempotencyClaim?, completion: @escaping @Sendable (CommandReply) -> Void) {
        writer.submit(Writer.Pending(command: command, idempotency: idempotency, completion: completion))
    }

    /// The same as `submit(_:idempotency:completion:)`, awaited.
    public func execute(_ command: Command, idempotency: IdempotencyClaim? = nil) async -> CommandReply {
        await withCheckedContinuation { continuation in
            submit(command, idempotency: idempotency) { continuation.resume(returning: $0) }
        }
    }

    /// The last committed sequence and its hash.
    public var head: (sequence: UInt64, hash: [UInt8]) { writer.committedHead }

    public var now: Timestamp { clock.now() }

    /// Stops taking commands, finishes and syncs the queued ones, and stops the writer.
    public func shutdown() {
        writer.stop()
    }

    /// Writes RocksDB's memtables to SST files, so a restart has no WAL to replay.
    /// - Throws: `StorageError.rocksDB` when the flush fails (durability is unaffected: the WAL holds everything).
    public func flushMemtables() throws(StorageError) {
        do {
            try store.database.flush()
        } catch {
            throw .rocksDB(error)
        }
    }

    // MARK: Reads

    public func customer(_ id: String) throws(StorageError) -> Customer? { try store.customer(id) }

    public func customers(after: String?, limit: Int) throws(StorageError) -> [Customer] {
        try store.customers(after: after, limit: limit)
    }

    public func events(after: UInt64, limit: Int) throws(StorageError) -> [EventRecord] {
        try store.events(after: after, limit: limit)
    }

    /// Replays the whole log under a read snapshot and compares it with the stored projections.
    public func verify() throws(StorageError) -> VerificationReport { try Replay.verify(store: store) }
}

/// The state a restart recovers: the last event and its hash.
struct Head: Sendable {
    var sequence: UInt64
    var hash: [UInt8]
    var recordedAt: Timestamp
}

enum Recovery {
    /// How many events at the end of the log are re-hashed on every start.
    static let tailCheckEvents: UInt64 = 1024

    static func recover(store: LedgerStore, logger: Logger) throws(StorageError) -> Head {
        guard let last = try store.lastEvent() else {
            if let mark = try store.projectionMark(), mark.sequence > 0 {
                throw .corrupt("the log is empty but the projections stand at sequence \(mark.sequence): the events were lost (rolled back or deleted?). Restore from a snapshot.")
            }
            return Head(sequence: 0, hash: EventRecord.genesisHash, recordedAt: Timestamp(microsecondsSinceEpoch: 0))
        }
        let head = Head(sequence: last.event.sequence, hash: last.hash, recordedAt: last.event.recordedAt)
        try checkTail(store: store, head: head)
        let mark = try store.projectionMark()
        if let mark, mark.version == KeyLayout.projectionVersion, mark.sequence == head.sequence {
            logger.info("ledger recovered", metadata: ["lastSequence": "\(head.sequence)"])
            return head
        }
        if let mark, mark.sequence > head.sequence {
            throw .corrupt("the projections stand at sequence \(mark.sequence) but the log ends at \(head.sequence): acknowledged events are missing from the log (rolled back or truncated?). Restore from a snapshot.")
        }
        logger.notice("rebuilding projections from the log", metadata: [
            "lastSequence": "\(head.sequence)",
            "projectionSequence": "\(mark.map { "\($0.sequence)" } ?? "none")",
            "projectionVersion": "\(mark.map { "\($0.version)" } ?? "none")",
        ])
        try rebuild(store: store, head: head)
        return head
    }

    /// Re-hashes the last events so a damaged tail is found at start, not served.
    static func checkTail(store: LedgerStore, head: Head) throws(StorageError) {
        let first = head.sequence > tailCheckEvents ? head.sequence - tailCheckEvents : 0
        var previous: EventRecord?
        try store.forEachEvent(after: first) { record throws(StorageError) in
            if let previous {
                guard record.event.sequence == previous.event.sequence + 1 else {
                    throw .corrupt("event \(previous.event.sequence + 1) is missing from the log")
                }
                guard record.prevHash == previous.hash else {
                    throw .corrupt("event \(record.event.sequence) does not chain to event \(previous.event.sequence): the log was altered")
                }
            }
            previous = record
            return true
        }
    }

    /// Replaces every projection with a fold of the log, in one batch with the new mark.
    static func rebuild(store: LedgerStore, head: Head) throws(StorageError) {
        let outcome = try Replay.run(store: store, snapshot: nil, through: head.sequence)
        if let problem = outcome.chainProblem {
            throw .corrupt("cannot rebuild the projections: \(problem)")
        }
        let batch = store.makeBatch()
        batch.clearProjections()
        for (key, value) in outcome.projections.records { batch.setProjection(key, value) }
        batch.setProjectionMark(sequence: head.sequence)
        try store.commit(batch)
    }
}
