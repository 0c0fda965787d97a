import Foundation
import Logging
public import TallyCore
public import TallyStorage
public import RocksDB

/// The offline check behind `tallyd replay`: the data directory's database opened read-only,
/// the log replayed into memory (a scratch place: nothing is written), and with `verify` every
/// stored projection, idempotency record and the anchor compared with it.
public enum Audit {
    /// How far to replay.
    public enum Target: Sendable, Equatable {
        case head
        /// Events 1…N (time travel uses this same path, `Replay.run(through:)`).
        case sequence(UInt64)
        /// Every event recorded at or before the timestamp (recordedAt never decreases along the log).
        case asOf(Timestamp)
    }

    public struct Report: Sendable {
        public var databasePath: String
        public var eventsRead: UInt64 = 0
        public var lastSequence: UInt64 = 0
        public var headHash: [UInt8] = EventRecord.genesisHash
        /// The last sequence of the log (what `.head` would reach).
        public var logLastSequence: UInt64 = 0
        /// Records per projection in the replay.
        public var replayedCounts: [String: Int] = [:]
        /// Records per projection as stored (with `verify`).
        public var storedCounts: [String: Int]?
        /// With `verify`: the stored projections are of an older layout and were not compared
        /// (`VerificationReport.olderLayoutNote`).
        public var olderLayoutNote: String?
        public var chainProblem: String?
        /// False when damage stopped the replay before the end: the chain and the projections
        /// were then checked only as far as `lastSequence`.
        public var readToEnd = false
        public var mismatches: [ProjectionMismatch] = []
        public var idempotencyRecords: Int?
        public var anchor: Anchor?
        /// With `balances`: every credit pool as the replay leaves it, by customer, currency and
        /// pool, at the `asOf` timestamp or else the instant of the last replayed event (what
        /// getCreditBalance asOf answers).
        public var balances: [(customerId: String, balance: PoolBalance)]?
        /// Everything found wrong, each a sentence saying what.
        public var problems: [String] = []

        public var isValid: Bool { problems.isEmpty }
    }

    /// Replays the database in `dataDirectory` up to `target`; with `verify` (only for `.head`)
    /// compares everything stored with the replay.
    /// - Throws: `StorageError` only for what prevents a report (the database cannot be opened
    ///   or read); damage found while reading is a problem in the report.
    public static func run(dataDirectory: String, target: Target, verify: Bool, balances: Bool = false, progress: ProgressHandler? = nil) throws(StorageError) -> Report {
        precondition(!verify || target == .head, "verify compares the stored projections, which stand at the head")
        let path = Ledger.databasePath(in: dataDirectory)
        // A restore that stopped half-way is finished (or undone) by the next start or restore,
        // never by a read-only replay: until then the database and the anchor disagree by design.
        if let pending = RestoreJournal.pendingProblem(dataDirectory: dataDirectory) { throw .unusable(pending) }
        // Files but no CURRENT: a damaged database, said as the daemon's start says it (unless
        // they are what an interrupted first start leaves, which the next start clears).
        if Recovery.interruptedCreation(path, dataDirectory: dataDirectory) != nil {
            throw .unusable("there is no database in \(path): its creation was interrupted (no CURRENT, no data files); the next `tallyd serve` creates it")
        }
        try Recovery.refuseDatabaseWithoutCurrent(path)
        guard FileManager.default.fileExists(atPath: path + "/CURRENT") else {
            throw .unusable("there is no database in \(path): is --data-dir the data directory (the one holding db/)?")
        }
        // The anchor is read before the database is opened: a running daemon moves it forward
        // after each commit, and never ahead of its database, so an anchor read first can only
        // stand at or behind the read-only view opened next.
        let anchor: Result<Anchor?, StorageError>
        do throws(StorageError) { anchor = .success(try Anchor.read(dataDirectory: dataDirectory)) } catch { anchor = .failure(error) }
        let mirror: Result<Anchor?, StorageError>
        do throws(StorageError) { mirror = .success(try Anchor.readMirror(dataDirectory: dataDirectory)) } catch { mirror = .failure(error) }
        let store: LedgerStore
        do {
            store = try LedgerStore(path: path, readOnly: true)
        } catch {
            throw Recovery.explainOpenFailure(error, path: path)
        }
        if balances, case .asOf(let t) = target {
            // As getCreditBalance refuses it: the ledger has not stood there yet. (A log whose
            // last event cannot be read is reported by the replay.)
            let last = (try? store.lastEvent())??.event.recordedAt ?? .distantPast
            if let problem = futureProblem(t, ledgerTime: max(SystemClock().now(), last)) {
                throw .unusable("--as-of \(problem); --balances answers how the ledger stood at a past instant")
            }
        }
        var report = Report(databasePath: path)
        do {
            let snapshot = store.snapshot()
            // From the last key: `--to-sequence N` works even when a later event is damaged.
            report.logLastSequence = try store.lastSequence(snapshot: snapshot)
            let logLast = report.logLastSequence
            if verify {
                let (verification, replayed) = try Replay.verifyKeepingReplay(store: store) { progress?($0, logLast) }
                report.eventsRead = verification.eventsRead
                report.lastSequence = verification.lastSequence
                report.headHash = verification.headHash
                report.chainProblem = verification.chainProblem
                report.mismatches = verification.mismatches
                report.storedCounts = verification.projectionCounts
                report.olderLayoutNote = verification.olderLayoutNote
                report.replayedCounts = verification.mismatches.isEmpty ? verification.projectionCounts : counts(replayed)
                report.idempotencyRecords = verification.idempotencyRecords
                if balances { report.balances = try poolBalances(replayed, at: try store.lastEvent(snapshot: snapshot)?.event.recordedAt ?? .distantPast) }
            } else {
                let through: UInt64
                switch target {
                case .head: through = logLast
                case .sequence(let n): through = n
                case .asOf(let t): through = try sequence(asOf: t, store: store, snapshot: snapshot)
                }
                let total = min(through, logLast)
                let outcome = try Replay.run(store: store, snapshot: snapshot, through: through) { progress?($0, total) }
                report.eventsRead = outcome.eventsRead
                report.lastSequence = outcome.lastSequence
                report.headHash = outcome.headHash
                report.chainProblem = outcome.chainProblem
                report.replayedCounts = counts(outcome.projections)
                if balances {
                    // As getCreditBalance asOf answers (CreditQueries.replay), from the same
                    // replay: at the given timestamp, or at the instant of the last replayed event.
                    var instant = Timestamp.distantPast
                    if case .asOf(let t) = target {
                        instant = t
                    } else if outcome.lastSequence > 0 {
                        instant = try store.events(after: outcome.lastSequence - 1, limit: 1, snapshot: snapshot).first?.event.recordedAt ?? .distantPast
                    }
                    report.balances = try poolBalances(outcome.projections, at: instant)
                }
                if case .sequence(let n) = target, n > report.logLastSequence {
                    report.problems.append("the log ends at sequence \(report.logLastSequence), before the requested \(n)")
                }
            }
            report.readToEnd = true
        } catch {
            report.problems.append("the database is damaged: \(error). \(Recovery.restoreAdvice)")
        }
        if let problem = report.chainProblem { report.problems.append("hash chain broken: \(problem). \(Recovery.restoreAdvice)") }
        for mismatch in report.mismatches { report.problems.append("projection mismatch: \(mismatch)") }
        if verify {
            // Each anchor on its own: a damaged one does not hide what the other says (the copy
            // beside a rolled-back directory whose inner anchor is damaged too).
            var places: [(Anchor?, Recovery.AnchorPlace)] = []
            switch anchor {
            case .success(let inside):
                report.anchor = inside
                places.append((inside, .inside))
            case .failure(let error):
                report.problems.append("\(error)")
            }
            switch mirror {
            case .success(let beside): places.append((beside, .beside(Anchor.mirrorPath(in: dataDirectory))))
            case .failure(let error): report.problems.append("\(error)")
            }
            // Checked whatever else was found (a changed event can break both the projections and
            // the anchor's hash), but only after a replay to the end: one stopped by damage has
            // not read far enough to compare. The same check as at start, against the head the
            // replay reached.
            let head = Head(sequence: report.lastSequence, hash: report.headHash, recordedAt: .distantPast)
            for case let (anchor?, place) in places where report.readToEnd {
                do throws(StorageError) {
                    try Recovery.checkAnchor(anchor, place, store: store, head: head)
                } catch {
                    guard case .corrupt(let problem) = error else {
                        report.problems.append("\(error)")
                        continue
                    }
                    report.problems.append(problem)
                }
            }
        }
        return report
    }

    /// Every credit pool in `projections` (keys `cp\0<customer>\0<currency>\0<resource>`), its
    /// balance at `t`, ordered by customer, currency and pool (the global pool first).
    static func poolBalances(_ projections: MemoryProjections, at t: Timestamp) throws(StorageError) -> [(customerId: String, balance: PoolBalance)] {
        var pools: [(customerId: String, currencyId: String, resourceId: String?)] = []
        for key in projections.keys where Projections.projectionName(of: key.bytes) == "creditPools" {
            let parts = key.bytes.split(separator: 0, maxSplits: 3, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            guard parts.count == 4 else { continue }
            pools.append((parts[1], parts[2], parts[3].isEmpty ? nil : parts[3]))
        }
        pools.sort { ($0.customerId, $0.currencyId, $0.resourceId ?? "") < ($1.customerId, $1.currencyId, $1.resourceId ?? "") }
        var balances: [(customerId: String, balance: PoolBalance)] = []
        for pool in pools {
            balances.append((pool.customerId, try Projections.balance(customerId: pool.customerId, currencyId: pool.currencyId, resourceId: pool.resourceId, at: t, in: projections)))
        }
        return balances
    }

    static func counts(_ projections: MemoryProjections) -> [String: Int] {
        // By the key's tag (its bytes through the first NUL; tags are at most 3 bytes), each tag
        // named once: a replay counts millions of records. No NUL that early: "unknown".
        var byTag: [ArraySlice<UInt8>: Int] = [:]
        for key in projections.keys {
            let bytes = key.bytes
            let tag = bytes.prefix(5).firstIndex(of: 0).map { bytes[...$0] } ?? []
            byTag[tag, default: 0] += 1
        }
        var counts: [String: Int] = [:]
        for (tag, count) in byTag { counts[Projections.projectionName(of: Array(tag)), default: 0] += count }
        return counts
    }

    /// The last sequence recorded at or before `t` (0 if none): a binary search over the log,
    /// whose recordedAt never decreases (the writer stamps each event with the later of the clock
    /// and the previous event's time), so about 2·log₂(N) point reads, not a scan.
    /// Why a time-travel instant `t` cannot be answered, or nil: the ledger has not stood there
    /// yet (the expiries and scheduled grants due by then would be counted as if they had
    /// happened). The rule of `asOf` and of `tallyd replay --balances --as-of` alike.
    public static func futureProblem(_ t: Timestamp, ledgerTime: Timestamp) -> String? {
        guard t > ledgerTime else { return nil }
        return "\(t.rfc3339) is in the future (the ledger's time is \(ledgerTime.rfc3339)): expiries and scheduled grants due by then would be counted as if they had happened"
    }

    public static func sequence(asOf t: Timestamp, store: LedgerStore, snapshot: Snapshot?) throws(StorageError) -> UInt64 {
        guard let last = try store.lastEvent(snapshot: snapshot)?.event.sequence else { return 0 }
        // Invariant: event `low` (0: before the log) is at or before t; events after `high` are after it.
        var low: UInt64 = 0
        var high = last
        while low < high {
            let middle = low + (high - low + 1) / 2
            // The first event at or after `middle` (the log has no gaps unless it is damaged).
            guard let record = try store.events(after: middle - 1, limit: 1, snapshot: snapshot).first else {
                high = middle - 1
                continue
            }
            if record.event.recordedAt <= t {
                low = record.event.sequence
            } else {
                high = middle - 1
            }
        }
        return low
    }
}
