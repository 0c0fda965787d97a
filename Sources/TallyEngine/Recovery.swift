import Foundation
import Logging
import RocksDB
import TallyCore
import TallyStorage

/// What `Ledger.init` checks before it serves anything. Each refusal says what is wrong and what
/// to do (restore a verified snapshot, docs/operating.md "Disaster recovery").
enum Recovery {
    /// How many events at the end of the log are re-hashed on every start.
    static let tailCheckEvents: UInt64 = 1024

    static let restoreAdvice = "Do not serve this database: stop, keep the data directory for inspection, and restore the latest verified snapshot (`tallyd restore --from SNAPSHOT --data-dir DIR`; docs/operating.md, \"Disaster recovery\")."

    /// Where an anchor came from, for the messages: the file in the data directory, or its copy
    /// beside it (which a rollback of the whole directory does not take back).
    enum AnchorPlace {
        case inside
        case beside(String)

        var name: String {
            switch self {
            case .inside: "the anchor"
            case .beside(let path): "the anchor's copy beside the data directory (\(path))"
            }
        }

        /// What else may explain a copy that is ahead, and what to do if it is that.
        var deliberate: String {
            switch self {
            case .inside: ""
            case .beside(let path): " If the data directory was replaced on purpose (an older copy put back knowingly, not with `tallyd restore`, or a new ledger started there), delete \(path) and start again."
            }
        }
    }

    /// The anchor checks of `recover` on a read-only view, before the database is opened for
    /// writing — which replays and removes its WAL, and creates a database that is missing — so a
    /// start refused for a rollback, a truncated WAL or a wiped directory leaves the data
    /// directory as it found it, for inspection. What the read-only view cannot tell (it does not
    /// open, a record is damaged) is left to the writable open, which explains it.
    static func preflight(path: String, anchors: [(Anchor?, AnchorPlace)]) throws(StorageError) {
        guard anchors.contains(where: { ($0.0?.sequence ?? 0) > 0 }) else { return }
        guard FileManager.default.fileExists(atPath: path + "/CURRENT") else {
            try checkEmptyLog(anchors)  // no database: one would be created, empty
            return
        }
        let store: LedgerStore
        let lastEvent: EventRecord?
        do {
            store = try LedgerStore(path: path, readOnly: true)
            lastEvent = try store.lastEvent()
        } catch {
            return
        }
        guard let last = lastEvent else {
            try checkEmptyLog(anchors)
            return
        }
        let head = Head(sequence: last.event.sequence, hash: last.hash, recordedAt: last.event.recordedAt)
        for (anchor, place) in anchors { try checkAnchor(anchor, place, store: store, head: head) }
    }

    /// An empty log where an anchor says a ledger reached a later sequence: a rollback to 0.
    private static func checkEmptyLog(_ anchors: [(Anchor?, AnchorPlace)]) throws(StorageError) {
        for case let (anchor?, place) in anchors where anchor.sequence > 0 {
            let how = switch place {
            case .inside: "the database was replaced, rolled back or truncated"
            case .beside: "the data directory holds no ledger (new, emptied or deleted; is its volume mounted?) where one was"
            }
            throw .corrupt("the log is empty but \(place.name) says it reached \(anchor): \(how). \(restoreAdvice)\(place.deliberate)")
        }
    }

    static func recover(store: LedgerStore, anchors: [(Anchor?, AnchorPlace)], logger: Logger) throws(StorageError) -> Head {
        guard let last = try store.lastEvent() else {
            if let mark = try store.projectionMark(), mark.sequence > 0 {
                throw .corrupt("the log is empty but the projections stand at sequence \(mark.sequence): the events were lost (rolled back or deleted?). \(restoreAdvice)")
            }
            try checkEmptyLog(anchors)
            return Head.empty
        }
        let head = Head(sequence: last.event.sequence, hash: last.hash, recordedAt: last.event.recordedAt)
        // No log reaches 2^64 - 1 events; a key that says so is damage (and leaves no next sequence).
        guard head.sequence < .max else { throw .corrupt("the log's last event has sequence \(head.sequence), which no log reaches. \(restoreAdvice)") }
        for (anchor, place) in anchors { try checkAnchor(anchor, place, store: store, head: head) }
        try checkTail(store: store, head: head)
        // Said only once every check passed: a start refused by the other anchor creates nothing.
        for case (nil, let place) in anchors {
            switch place {
            case .inside:
                logger.warning("no anchor file in the data directory; creating it at the log's head (expected on the first start after an upgrade or a manual copy)", metadata: ["lastSequence": "\(head.sequence)"])
            case .beside(let path):
                logger.notice("no copy of the anchor beside the data directory; creating it at the log's head (expected on the first start of this data directory here)", metadata: ["path": "\(path)", "lastSequence": "\(head.sequence)"])
            }
        }
        let mark = try store.projectionMark()
        if let mark, mark.version == KeyLayout.projectionVersion, mark.sequence == head.sequence {
            logger.info("ledger recovered", metadata: ["lastSequence": "\(head.sequence)"])
            return head
        }
        if let mark, mark.sequence > head.sequence {
            throw .corrupt("the projections stand at sequence \(mark.sequence) but the log ends at \(head.sequence): acknowledged events are missing from the log (rolled back or truncated?). \(restoreAdvice)")
        }
        logger.notice("rebuilding projections from the log", metadata: [
            "lastSequence": "\(head.sequence)",
            "projectionSequence": "\(mark.map { "\($0.sequence)" } ?? "none")",
            "projectionVersion": "\(mark.map { "\($0.version)" } ?? "none")",
        ])
        try rebuild(store: store, head: head)
        return head
    }

    /// The log must reach the anchor, and the event at the anchor's sequence must have the
    /// anchor's hash. A missing anchor (first start after an upgrade, or a data directory copied
    /// without it) is recreated at the head by the caller, with a warning (`recover`).
    static func checkAnchor(_ anchor: Anchor?, _ place: AnchorPlace, store: LedgerStore, head: Head) throws(StorageError) {
        guard let anchor else { return }
        guard anchor.sequence <= head.sequence else {
            throw .corrupt("the log ends at sequence \(head.sequence), but \(place.name) says it reached \(anchor): acknowledged events are gone — the database was rolled back to an older copy, its WAL was truncated, or files were lost. \(restoreAdvice)\(place.deliberate)")
        }
        guard anchor.sequence > 0 else { return }
        guard let event = try store.events(after: anchor.sequence - 1, limit: 1).first, event.event.sequence == anchor.sequence else {
            throw .corrupt("event \(anchor.sequence), named by \(place.name), is missing from the log. \(restoreAdvice)\(place.deliberate)")
        }
        guard event.hash == anchor.hash else {
            throw .corrupt("event \(anchor.sequence) hashes to \(event.hash.hexString), but \(place.name) recorded \(anchor.hash.hexString): the log was altered or replaced by another database. \(restoreAdvice)\(place.deliberate)")
        }
    }

    /// Re-hashes the last events so a damaged tail is found at start, not served.
    static func checkTail(store: LedgerStore, head: Head) throws(StorageError) {
        let first = head.sequence > tailCheckEvents ? head.sequence - tailCheckEvents : 0
        var previous: EventRecord?
        try store.forEachEvent(after: first) { record throws(StorageError) in
            if let previous {
                guard record.event.sequence == previous.event.sequence + 1 else {
                    throw .corrupt("event \(previous.event.sequence + 1) is missing from the log. \(restoreAdvice)")
                }
                guard record.prevHash == previous.hash else {
                    throw .corrupt("event \(record.event.sequence) does not chain to event \(previous.event.sequence): the log was altered (event \(previous.event.sequence) or \(record.event.sequence)). \(restoreAdvice)")
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
            throw .corrupt("cannot rebuild the projections: \(problem). \(restoreAdvice)")
        }
        let batch = store.makeBatch()
        batch.clearProjections()
        outcome.projections.forEachRecord { key, value in batch.setProjection(key, value) }
        batch.setProjectionMark(sequence: head.sequence)
        try store.commit(batch)
    }

    /// Adds what to do to a RocksDB open failure that means damaged files.
    /// A database directory with files in it but no `CURRENT` is a damaged database, not a new
    /// one: RocksDB would create a new, empty database there and delete the old one's files.
    /// - Throws: `StorageError.corrupt` naming what is missing; nothing is changed.
    static func refuseDatabaseWithoutCurrent(_ path: String) throws(StorageError) {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        guard !files.isEmpty, !files.contains("CURRENT") else { return }
        let manifests = files.filter { $0.hasPrefix("MANIFEST-") }.sorted()
        let hint = manifests.isEmpty ? "" : " (it names the MANIFEST file to use: the directory holds \(manifests.joined(separator: ", ")))"
        throw .corrupt("the database in \(path) has \(files.count) files but no CURRENT file\(hint): it is damaged, not new, so nothing was opened or changed. \(restoreAdvice)")
    }

    /// The files RocksDB writes while it creates a database, before CURRENT names it: a process
    /// killed then (its first start) leaves only these. Every write goes to a WAL (`*.log`) or an
    /// SST file first, so without one nothing was ever stored.
    static func isInterruptedCreation(_ files: [String]) -> Bool {
        files.allSatisfy { name in
            ["LOCK", "IDENTITY", "LOG"].contains(name) || name.hasPrefix("LOG.old.") || name.hasPrefix("MANIFEST-")
                || name.hasPrefix("OPTIONS-") || name.hasSuffix(".dbtmp")
        }
    }

    /// The files an interrupted creation left in `path` (`isInterruptedCreation`), or nil when
    /// it is not one: a CURRENT, other files, or an anchor past 0 (or one that cannot be read),
    /// which says this directory held events — damage, refused as such. The anchor is written
    /// only after the database first opened.
    static func interruptedCreation(_ path: String, dataDirectory: String) -> [String]? {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        guard !files.isEmpty, !files.contains("CURRENT"), isInterruptedCreation(files) else { return nil }
        let anchor: Anchor?
        do { anchor = try Anchor.read(dataDirectory: dataDirectory) } catch { return nil }
        return (anchor?.sequence ?? 0) == 0 ? files : nil
    }

    /// Removes what an interrupted creation left, so the start creates the database again
    /// instead of refusing a directory that never held anything.
    static func clearInterruptedCreation(_ path: String, dataDirectory: String, logger: Logger) throws(StorageError) {
        guard let files = interruptedCreation(path, dataDirectory: dataDirectory) else { return }
        logger.warning("the database in this data directory was never finished (its creation was interrupted, no CURRENT, no data files): creating it again", metadata: [
            "path": "\(path)", "files": "\(files.sorted().joined(separator: ","))",
        ])
        for name in files where unlink(path + "/" + name) != 0 && errno != ENOENT {
            throw .unusable("cannot remove \(path)/\(name), left by an interrupted creation of the database: \(String(cString: strerror(errno)))")
        }
    }

    static func explainOpenFailure(_ error: StorageError, path: String) -> StorageError {
        if case .corrupt(let what) = error, !what.contains(restoreAdvice), !what.contains("delete the file") {
            // Damage found by a decoder (an event that does not decode) says what to do too.
            return .corrupt("\(what). \(restoreAdvice)")
        }
        guard case .rocksDB(let rocks) = error else { return error }
        if rocks.message.contains("lock file") || rocks.message.contains("/LOCK") {
            // The data directory's own lock (tallyd.lock) was free, so its file was deleted or
            // another program opened the database.
            return .unusable("another process holds the database in \(path) open (\(rocks.message)): is a tallyd running on this data directory whose tallyd.lock was deleted, or another program using it? Stop it first.")
        }
        if rocks.message.contains("No such file") {
            // RocksDB looks for a missing table under its old `.ldb` name last, and names that one.
            let note = rocks.message.contains(".ldb") ? " (a table file is missing: the .sst of that number; .ldb is the name RocksDB tried last)" : ""
            return .corrupt("files of the database in \(path) are missing (\(rocks.message))\(note). \(restoreAdvice)")
        }
        switch rocks.kind {
        case .corruption:
            return .corrupt("RocksDB found damaged files in \(path) (\(rocks.message)). \(restoreAdvice)")
        case .notFound:
            return .corrupt("files of the database in \(path) are missing (\(rocks.message)). \(restoreAdvice)")
        default:
            return error
        }
    }
}
