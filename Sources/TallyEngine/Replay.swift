import Foundation
public import RocksDB
import TallyCore
public import TallyStorage

/// Reads the log, checks its hash chain and folds it into projections in memory, with the same
/// `Projector` the writer uses, so a replay and the stored projections must be equal.
public enum Replay {
    public struct Outcome: Sendable {
        public var projections: MemoryProjections
        public var eventsRead: UInt64
        public var lastSequence: UInt64
        public var headHash: [UInt8]
        /// The first place the chain or the sequence numbering breaks, if any.
        public var chainProblem: String?
        /// With `collectingIdempotency`: for every event whose command must have left an
        /// idempotency record, the hash of that record's key (`IdempotencyExpectation.hash`) and
        /// the event's sequence.
        var expectedIdempotency: [(hash: Int, sequence: UInt64)] = []
    }

    /// Folds events 1…`through` (all by default) as seen by `snapshot`. With `customer`, only the
    /// catalog's events and that customer's are folded (every projection but the catalog belongs
    /// to one customer, so that customer's records come out as in a full replay); the chain is
    /// still checked over every event. `progress` is called with the number of events read every
    /// 65,536 events.
    /// - Throws: `StorageError` when an event cannot be read or decoded.
    public static func run(store: LedgerStore, snapshot: Snapshot?, through last: UInt64 = .max, customer: String? = nil, progress: ((UInt64) -> Void)? = nil) throws(StorageError) -> Outcome {
        try run(store: store, snapshot: snapshot, through: last, customer: customer, collectingIdempotency: false, progress: progress)
    }

    static func run(store: LedgerStore, snapshot: Snapshot?, through last: UInt64, customer: String?, collectingIdempotency: Bool, progress: ((UInt64) -> Void)?) throws(StorageError) -> Outcome {
        let expected = customer != nil ? 1024 : min(store.estimatedProjectionRecords + store.estimatedProjectionRecords / 8, 1 << 24)
        var outcome = Outcome(projections: MemoryProjections(), eventsRead: 0, lastSequence: 0, headHash: EventRecord.genesisHash, chainProblem: nil)
        var fold = ReplayFold(expectedRecords: expected)
        // Two stages on two threads: one reads and decodes the log (hashing each record), the
        // other (this one) checks the chain and folds. Chunks keep the hand-offs rare.
        let handoff = Handoff<[EventRecord]>(capacity: 4)
        let reader = JoinableThread {
            var chunk: [EventRecord] = []
            chunk.reserveCapacity(Self.chunkEvents)
            do throws(StorageError) {
                try store.forEachEvent(after: 0, through: last, snapshot: snapshot) { record throws(StorageError) in
                    chunk.append(record)
                    if chunk.count == Self.chunkEvents {
                        guard handoff.put(chunk) else { return false }
                        chunk.removeAll(keepingCapacity: true)
                    }
                    return true
                }
                if !chunk.isEmpty { _ = handoff.put(chunk) }
                handoff.finish(nil)
            } catch {
                handoff.finish(error)
            }
        }
        defer {
            handoff.cancel()
            reader.join()
        }
        var folding = true
        while let chunk = try handoff.take() {
            // By index: the records are read in place, not copied (and retained) one by one.
            for index in chunk.indices {
                let sequence = chunk[index].event.sequence
                if outcome.chainProblem == nil {
                    if sequence != outcome.lastSequence + 1 {
                        outcome.chainProblem = "event \(outcome.lastSequence + 1) is missing (next is \(sequence))"
                    } else if chunk[index].prevHash != outcome.headHash {
                        // The hash is over the event's own bytes: either of the two may be the altered one.
                        outcome.chainProblem = "event \(sequence) does not chain to event \(outcome.lastSequence): prevHash \(chunk[index].prevHash.hexString.prefix(16))… ≠ \(outcome.headHash.hexString.prefix(16))… (event \(outcome.lastSequence) or \(sequence) was altered)"
                    }
                }
                if folding, customer == nil || chunk[index].event.payload.customerId.map({ UTF8Exact.equal($0, customer) }) ?? true {
                    do {
                        try fold.fold(chunk[index].event)
                    } catch where outcome.chainProblem != nil {
                        // Past a break in the chain, events may contradict what was folded (a
                        // missing grant, a customer never provisioned): the break is the report.
                        folding = false
                    }
                }
                if collectingIdempotency, let key = IdempotencyExpectation.key(of: chunk[index].event) {
                    outcome.expectedIdempotency.append((IdempotencyExpectation.hash(key), sequence))
                }
                outcome.eventsRead += 1
                outcome.lastSequence = sequence
                outcome.headHash = chunk[index].hash
                if outcome.eventsRead % 65_536 == 0 { progress?(outcome.eventsRead) }
            }
            // The reader allocated the chunk's records: freeing them there is cheap for the
            // allocator and takes that work off this thread, the slower of the two.
            handoff.giveBack(chunk)
        }
        outcome.projections = fold.finish()
        return outcome
    }

    static let chunkEvents = 2048
}

/// A bounded queue between one producer thread and one consumer: `put` waits while it is full,
/// `take` while it is empty; the producer ends it with `finish` (nil or the error that stopped
/// it), the consumer with `cancel` (the producer's next `put` returns false). The consumer may
/// `giveBack` what it is done with, for the producer to free at its next `put`: glibc's malloc
/// frees memory fastest on the thread that allocated it (a replay of 1M events, where the fold
/// thread freed the reader's records, ran ~20% faster with jemalloc preloaded).
final class Handoff<Element>: @unchecked Sendable {
    // @unchecked: every field is guarded by `condition`.
    private let condition = NSCondition()
    private var items: [Element] = []
    private var spent: [Element] = []
    private let capacity: Int
    private var finished = false
    private var failure: StorageError?
    private var cancelled = false

    init(capacity: Int) { self.capacity = capacity }

    func put(_ item: Element) -> Bool {
        var freed: [Element] = []
        condition.lock()
        while items.count >= capacity && !cancelled { condition.wait() }
        guard !cancelled else {
            condition.unlock()
            return false
        }
        items.append(item)
        swap(&freed, &spent)
        condition.broadcast()
        condition.unlock()
        // The consumer's spent items are freed here, on the producer's thread, outside the lock.
        freed.removeAll()
        return true
    }

    /// Hands an item the consumer is done with back to the producer, to be freed on its thread.
    func giveBack(_ item: consuming Element) {
        condition.lock()
        spent.append(item)
        condition.unlock()
    }

    func finish(_ error: StorageError?) {
        condition.lock()
        finished = true
        failure = error
        condition.broadcast()
        condition.unlock()
    }

    func cancel() {
        condition.lock()
        cancelled = true
        items.removeAll()
        condition.broadcast()
        condition.unlock()
    }

    /// The next item; nil when the producer finished and everything was taken.
    func take() throws(StorageError) -> Element? {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty && !finished { condition.wait() }
        if !items.isEmpty {
            let item = items.removeFirst()
            condition.broadcast()
            return item
        }
        if let failure { throw failure }
        return nil
    }
}

/// The idempotency records the log says must exist: every raw event's (its key is required), and
/// those of usage reports and credit grants made with a key. Without one, a retry of that command
/// would be applied again, so verification reports it missing. (Other events' keys are not
/// checked: their records are as durable, but their absence cannot count anything twice.)
enum IdempotencyExpectation {
    static func key(of event: Event) -> [UInt8]? {
        switch event.payload {
        case .eventReceived(let e):
            KeyLayout.idempotencyKey(family: IdempotencyFamily.event, customerId: e.customerId, key: e.idempotencyKey)
        case .usageReported(let e):
            e.idempotencyKey.map { KeyLayout.idempotencyKey(family: IdempotencyFamily.usage, customerId: e.customerId, key: $0) }
        case .creditsGranted(let e):
            e.idempotencyKey.map { KeyLayout.idempotencyKey(family: IdempotencyFamily.credits, customerId: e.grant.customerId, key: $0) }
        default:
            nil
        }
    }

    /// Equal keys hash equally within one process, which is all a verification needs.
    static func hash(_ key: [UInt8]) -> Int {
        var hasher = Hasher()
        key.withUnsafeBytes { hasher.combine(bytes: $0) }
        return hasher.finalize()
    }
}

extension Array where Element == Int {
    /// Binary search in an array sorted ascending.
    fileprivate func containsSorted(_ value: Int) -> Bool {
        var low = 0, high = count
        while low < high {
            let middle = (low + high) / 2
            if self[middle] < value { low = middle + 1 } else { high = middle }
        }
        return low < count && self[low] == value
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

/// The answer of verifyLedger.
public struct VerificationReport: Sendable {
    public var eventsRead: UInt64
    public var lastSequence: UInt64
    public var headHash: [UInt8]
    public var hashChainValid: Bool
    public var chainProblem: String?
    public var projectionsMatch: Bool
    public var mismatches: [ProjectionMismatch]
    /// Stored records per projection.
    public var projectionCounts: [String: Int]
    /// Idempotency records read (each decoded, so damage in that column family is found too).
    public var idempotencyRecords: Int
    /// Set when the stored projections are of an older layout version than this build folds (a
    /// snapshot or data directory of an older tallyd): they were not compared, and the next start
    /// rebuilds them from the log, which was checked.
    public var olderLayoutVersion: UInt32? = nil

    public var isValid: Bool { hashChainValid && projectionsMatch }

    /// What `olderLayoutVersion` means, for reports.
    public var olderLayoutNote: String? {
        olderLayoutVersion.map {
            "the stored projections have layout version \($0), older than this tallyd's \(KeyLayout.projectionVersion): not compared; the next start rebuilds them from the log"
        }
    }
}

extension Replay {
    public static let mismatchesMax = 100

    /// Replays the log under one read snapshot and compares the result, record by record and byte
    /// by byte, with the projections stored in the same snapshot: consistent while writes go on.
    /// Every idempotency record of the snapshot is read too. `progress` is passed to `run`.
    public static func verify(store: LedgerStore, progress: ((UInt64) -> Void)? = nil) throws(StorageError) -> VerificationReport {
        try verifyKeepingReplay(store: store, progress: progress).report
    }

    /// `verify`, also handing back the replayed projections (for callers that report from them).
    static func verifyKeepingReplay(store: LedgerStore, progress: ((UInt64) -> Void)? = nil) throws(StorageError) -> (report: VerificationReport, replayed: MemoryProjections) {
        let snapshot = store.snapshot()
        let outcome = try run(store: store, snapshot: snapshot, through: .max, customer: nil, collectingIdempotency: true, progress: progress)
        var mismatches: [ProjectionMismatch] = []
        var counts: [String: Int] = [:]
        func note(_ key: [UInt8], expected: [UInt8]?, stored: [UInt8]?) {
            guard mismatches.count < mismatchesMax else { return }
            let name = Projections.describe(key: key)
            mismatches.append(ProjectionMismatch(
                projection: name.projection, key: name.key,
                expected: expected.map { Projections.describe(key: key, value: $0) } ?? "nothing",
                stored: stored.map { Projections.describe(key: key, value: $0) } ?? "nothing"
            ))
        }
        let replayed = outcome.projections
        let mark = try store.projectionMark(snapshot: snapshot)
        // Records of an older layout cannot equal this build's fold; start rebuilds them.
        let olderLayout = mark.flatMap { $0.version < KeyLayout.projectionVersion ? $0.version : nil }
        var found = 0
        try store.forEachProjection(snapshot: snapshot) { key, value in
            counts[Projections.projectionName(of: key), default: 0] += 1
            guard olderLayout == nil else { return }
            let expected = replayed.projection(key)
            if expected != nil { found += 1 }
            if expected != value { note(key, expected: expected, stored: value) }
        }
        if olderLayout == nil, found < replayed.count {
            // Records the replay built that are not stored: only a damaged ledger gets here.
            for (key, value) in replayed.sortedRecords where try store.projection(key, snapshot: snapshot) == nil {
                note(key, expected: value, stored: nil)
            }
        }
        // Replay never reads the idempotency records: a damaged block there would otherwise only
        // show when a client retries.
        var storedKeys: [Int] = []
        storedKeys.reserveCapacity(outcome.expectedIdempotency.count)
        let idempotencyRecords = try store.checkIdempotencyRecords(snapshot: snapshot) { storedKeys.append(IdempotencyExpectation.hash($0)) }
        // A missing record would let a retry of that command apply it a second time.
        storedKeys.sort()
        for expected in outcome.expectedIdempotency where mismatches.count < mismatchesMax && !storedKeys.containsSorted(expected.hash) {
            let event = try store.events(after: expected.sequence - 1, limit: 1, snapshot: snapshot).first?.event
            let key = event.flatMap(IdempotencyExpectation.key(of:)).map { String(decoding: $0, as: UTF8.self).replacingOccurrences(of: "\0", with: "/") } ?? "?"
            mismatches.append(ProjectionMismatch(projection: "idempotency", key: key, expected: "the record of event \(expected.sequence)'s command", stored: "nothing"))
        }
        try store.checkEveryBlock(snapshot: snapshot)
        // The mark first: projections standing where the log does not (an emptied or truncated
        // log) explain the record mismatches after it, and would be cut off behind 100 of them.
        if mark.map({ $0.sequence != outcome.lastSequence }) ?? (outcome.lastSequence > 0) {
            mismatches.insert(ProjectionMismatch(projection: "mark", key: "projection.sequence", expected: "\(outcome.lastSequence)", stored: mark.map { "\($0.sequence)" } ?? "nothing"), at: 0)
            if mismatches.count > mismatchesMax { mismatches.removeLast() }
        }
        let report = VerificationReport(
            eventsRead: outcome.eventsRead,
            lastSequence: outcome.lastSequence,
            headHash: outcome.headHash,
            hashChainValid: outcome.chainProblem == nil,
            chainProblem: outcome.chainProblem,
            projectionsMatch: mismatches.isEmpty,
            mismatches: mismatches,
            projectionCounts: counts,
            idempotencyRecords: idempotencyRecords,
            olderLayoutVersion: olderLayout
        )
        return (report, replayed)
    }
}
