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
    /// What an operator should do about a damaged database (every such message ends with it).
    public static var restoreAdvice: String { Recovery.restoreAdvice }

    public struct Limits: Sendable {
        /// Commands decided together and committed in one synced batch.
        public var groupCommandsMax = 4096
        /// Commands waiting for the writer before new ones are refused as OVERLOADED.
        public var queuedCommandsMax = 100_000
        /// Projection records the writer keeps from one group to the next (see `WriterCache`); a
        /// group that reads and changes more empties it. Large enough for a group of several
        /// 1000-event reportEvent calls (~10 cells, dimension keys and meter records per event):
        /// at 16,384 such groups emptied it every time and read every cell from RocksDB again.
        /// Most records are small usage cells (peak RSS grew ~5 MB in the ingest benchmark);
        /// credit pools with many grants are larger.
        public var cachedRecordsMax = 131_072

        public init() {}
    }

    public let store: LedgerStore
    public let dataDirectory: String
    let clock: any LedgerClock
    let logger: Logger
    private let writer: Writer
    private let anchor: AnchorWriter

    /// Opens the ledger in `dataDirectory/db`: recovers the log, checks the tail of the hash
    /// chain, rebuilds the projections if they are missing or behind, and starts the writer.
    /// - Throws: `StorageError` when the database cannot be opened or is inconsistent.
    public init(dataDirectory: String, clock: any LedgerClock = SystemClock(), limits: Limits = Limits(), logger: Logger) throws(StorageError) {
        self.dataDirectory = dataDirectory
        self.clock = clock
        self.logger = logger
        try RestoreJournal.finishInterrupted(dataDirectory: dataDirectory, logger: logger)
        let path = Self.databasePath(in: dataDirectory)
        try Recovery.clearInterruptedCreation(path, dataDirectory: dataDirectory, logger: logger)
        try Recovery.refuseDatabaseWithoutCurrent(path)
        // An empty or missing data directory where the copy beside it says a ledger reached a
        // later sequence is refused like any rollback (it is one, to sequence 0: a volume not
        // mounted, a directory wiped); to start a new ledger there on purpose, delete the copy.
        let anchors: [(Anchor?, Recovery.AnchorPlace)] = [
            (try Anchor.read(dataDirectory: dataDirectory), .inside),
            (try Anchor.readMirror(dataDirectory: dataDirectory), .beside(Anchor.mirrorPath(in: dataDirectory))),
        ]
        try Recovery.preflight(path: path, anchors: anchors)
        do {
            store = try LedgerStore(path: path)
        } catch {
            throw Recovery.explainOpenFailure(error, path: path)
        }
        let head: Head
        do {
            head = try Recovery.recover(store: store, anchors: anchors, logger: logger)
        } catch {
            // A damaged block read while checking the tail says what to do, like one found at open.
            throw Recovery.explainOpenFailure(error, path: path)
        }
        anchor = try AnchorWriter(
            dataDirectory: dataDirectory, anchor: Anchor(sequence: head.sequence, hash: head.hash),
            noCopy: { [logger] problem in logger.warning("no anchor copy beside the data directory", metadata: ["problem": "\(problem)"]) }
        ) { [logger] problem in
            logger.error("anchor update failed; rollback detection uses the last written anchor until restart", metadata: ["error": "\(problem)"])
        }
        writer = Writer(store: store, clock: clock, limits: limits, logger: logger, head: head)
        writer.onCommit = { [anchor] sequence, hash in anchor.update(Anchor(sequence: sequence, hash: hash)) }
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

    /// The last event a read can see: the store's. A group's events are readable from its synced
    /// write on, a moment before the writer publishes them as `head`, so a status that said
    /// `head` after a read that saw them would go back in time. `head` when the store cannot be
    /// read (a status still answers).
    public var visibleHead: (sequence: UInt64, hash: [UInt8]) {
        let published = head
        return (try? store.lastEvent(after: published.sequence)) ?? published
    }

    /// The time reads are answered at: the clock, or the last committed event's recordedAt when
    /// the clock is behind it (it stepped back) — the time commands are decided at, so a read
    /// never disagrees with the decision a command would get.
    public var now: Timestamp { max(clock.now(), writer.committedRecordedAt) }

    /// Stops taking commands, finishes and syncs the queued ones, and stops the writer.
    public func shutdown() {
        writer.stop()
        anchor.sync()
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

    public func customer(_ id: String) throws(StorageError) -> Customer? { try Projections.customer(id, in: store) }

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

    /// Before the first event: no time bound (a clock before 1970 is not moved to 1970).
    static let empty = Head(sequence: 0, hash: EventRecord.genesisHash, recordedAt: .distantPast)
}
