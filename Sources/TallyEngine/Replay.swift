public import TallyCore
public import TallyStorage
public import RocksDB

/// Every projection, folded from the log in memory. The writer applies the same folds event by
/// event, so a replay and the stored projections must be equal.
public struct ProjectionSet: Sendable, Equatable {
    public var customers: [String: Customer] = [:]

    public init() {}

    public mutating func apply(_ event: Event) {
        if let id = event.payload.customerId {
            switch event.payload {
            case .customerProvisioned, .customerUpdated:
                customers[id] = CustomerProjection.apply(event, to: customers[id])
            }
        }
    }
}

/// Reads the whole log, checks its hash chain and folds it into projections.
public enum Replay {
    public struct Outcome: Sendable {
        public var projections: ProjectionSet
        public var eventsRead: UInt64
        public var lastSequence: UInt64
        public var headHash: [UInt8]
        /// The first place the chain or the sequence numbering breaks, if any.
        public var chainProblem: String?
    }

    /// Folds events 1…`through` (all by default) as seen by `snapshot`.
    /// - Throws: `StorageError` when an event cannot be read or decoded.
    public static func run(store: LedgerStore, snapshot: Snapshot?, through last: UInt64 = .max, progress: ((UInt64) -> Void)? = nil) throws(StorageError) -> Outcome {
        var outcome = Outcome(projections: ProjectionSet(), eventsRead: 0, lastSequence: 0, headHash: EventRecord.genesisHash, chainProblem: nil)
        try store.forEachEvent(after: 0, through: last, snapshot: snapshot) { record throws(StorageError) in
            let sequence = record.event.sequence
            if outcome.chainProblem == nil {
                if sequence != outcome.lastSequence + 1 {
                    outcome.chainProblem = "event \(outcome.lastSequence + 1) is missing (next is \(sequence))"
                } else if record.prevHash != outcome.headHash {
                    outcome.chainProblem = "event \(sequence) does not chain to event \(outcome.lastSequence): prevHash \(record.prevHash.hexString.prefix(16))… ≠ \(outcome.headHash.hexString.prefix(16))…"
                }
            }
            outcome.projections.apply(record.event)
            outcome.eventsRead += 1
            outcome.lastSequence = sequence
            outcome.headHash = record.hash
            if outcome.eventsRead % 65_536 == 0 { progress?(outcome.eventsRead) }
            return true
        }
        return outcome
    }
}

/// One difference between a replay and the stored projections.
public struct ProjectionMismatch: Sendable, Equatable, CustomStringConvertible {
    public var projection: String
    public var key: String
    public var expected: String
    public var stored: String

    public var description: String { "\(projection) \(key): replay has \(expected), stored has \(stored)" }
}

/// The answer of verifyLedger and `tallyd replay --verify`.
public struct VerificationReport: Sendable {
    public var eventsRead: UInt64
    public var lastSequence: UInt64
    public var headHash: [UInt8]
    public var hashChainValid: Bool
    public var chainProblem: String?
    public var projectionsMatch: Bool
    public var mismatches: [ProjectionMismatch]
    public var projectionCounts: [String: Int]

    public var isValid: Bool { hashChainValid && projectionsMatch }
}

extension Replay {
    public static let mismatchesMax = 100

    /// Replays the log under one read snapshot and compares it with the projections stored in the
    /// same snapshot, so it is consistent while writes go on.
    public static func verify(store: LedgerStore) throws(StorageError) -> VerificationReport {
        let snapshot = store.snapshot()
        let outcome = try run(store: store, snapshot: snapshot)
        var mismatches: [ProjectionMismatch] = []
        func note(_ m: ProjectionMismatch) {
            if mismatches.count < mismatchesMax { mismatches.append(m) }
        }
        var storedCount = 0
        try store.forEachCustomer(snapshot: snapshot) { stored in
            storedCount += 1
            let expected = outcome.projections.customers[stored.id]
            if expected != stored {
                note(ProjectionMismatch(projection: "customers", key: stored.id, expected: expected.map(describe) ?? "nothing", stored: describe(stored)))
            }
            return true
        }
        for (id, customer) in outcome.projections.customers where try store.customer(id, snapshot: snapshot) == nil {
            note(ProjectionMismatch(projection: "customers", key: id, expected: describe(customer), stored: "nothing"))
        }
        let mark = try store.projectionMark(snapshot: snapshot)
        if outcome.lastSequence > 0, mark?.sequence != outcome.lastSequence {
            note(ProjectionMismatch(projection: "mark", key: "projection.sequence", expected: "\(outcome.lastSequence)", stored: mark.map { "\($0.sequence)" } ?? "nothing"))
        }
        return VerificationReport(
            eventsRead: outcome.eventsRead,
            lastSequence: outcome.lastSequence,
            headHash: outcome.headHash,
            hashChainValid: outcome.chainProblem == nil,
            chainProblem: outcome.chainProblem,
            projectionsMatch: mismatches.isEmpty,
            mismatches: mismatches,
            projectionCounts: ["customers": storedCount]
        )
    }

    static func describe(_ c: Customer) -> String {
        "{name: \(c.name ?? "nil"), email: \(c.email ?? "nil"), metadata: \(c.metadata.count) keys, createdAt: \(c.createdAt), updatedAt: \(c.updatedAt), lastSequence: \(c.lastSequence)}"
    }
}
