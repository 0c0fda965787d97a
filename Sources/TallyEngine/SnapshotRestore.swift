import Foundation
public import Logging
import TallyCore
import TallyStorage
#if canImport(Glibc)
import Glibc
#endif

extension Snapshots {
    /// Replaces the database in `dataDirectory` with the snapshot at `path`. The caller must hold
    /// the data directory's lock (no daemon running).
    ///
    /// 1. Finish or undo an earlier interrupted restore (`RestoreJournal`).
    /// 2. Copy and verify the snapshot into `<dataDir>/db.restore-tmp` (checksums, replay, head);
    ///    on any problem the copy is removed and nothing else changes.
    /// 3. Write `<dataDir>/restore-pending` (the new anchor), fsynced: the commit point.
    /// 4. Rename `db` to `db.old-<UTC time>`, then `db.restore-tmp` to `db`; write the anchor;
    ///    remove the journal.
    /// An interruption before 3 leaves the old state; after 3 the next start (or restore) rolls
    /// forward. Never a mix.
    /// - Returns: the verification (check `isValid`: when false, nothing was installed) and the
    ///   name the old database was moved to, if there was one.
    /// - Throws: `SnapshotError` (not a snapshot, I/O failure).
    public static func restore(from path: String, dataDirectory: String, logger: Logger, progress: ProgressHandler? = nil, replayProgress: ProgressHandler? = nil) throws(SnapshotError) -> (verification: SnapshotVerification, oldDatabase: String?) {
        do {
            try RestoreJournal.finishInterrupted(dataDirectory: dataDirectory, logger: logger, restoring: true)
        } catch {
            throw SnapshotError("cannot resolve an earlier interrupted restore: \(error)")
        }
        // The anchor's copy beside the data directory is rewritten with the anchor: if it is there
        // and cannot be, the restored database would be refused at start. Say so before anything.
        let mirror = Anchor.mirrorPath(in: dataDirectory)
        if DurableFiles.exists(mirror), access(DurableFiles.parent(of: mirror), W_OK) != 0 {
            throw SnapshotError("cannot rewrite the anchor's copy \(mirror) (its directory is not writable): make it writable or delete the copy, then restore again; nothing was changed")
        }
        let database = Ledger.databasePath(in: dataDirectory)
        let temporary = RestoreJournal.temporaryPath(in: dataDirectory)
        let verification: SnapshotVerification
        do {
            verification = try verify(at: path, into: temporary, progress: progress, replayProgress: replayProgress)
        } catch {
            // A full disk, say: the partial copy must not stay behind, holding the space.
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
        guard verification.isValid else {
            try? FileManager.default.removeItem(atPath: temporary)
            return (verification, nil)
        }
        // The copy goes on from the snapshot's sequence: a new lineage, so the ids made up from now
        // on are not those of the things this restore takes back (a client holding `grant_7` of
        // the lost history must not void another customer's grant_7).
        do {
            try LedgerStore(path: temporary).setLineage(LedgerStore.newLineage())
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw SnapshotError("cannot mark the restored copy (\(error)); nothing was changed")
        }
        let manifest = verification.manifest
        var hash: [UInt8] = []
        var hex = Array(manifest.headHash.utf8)[...]
        while hex.count >= 2, let byte = UInt8(String(decoding: hex.prefix(2), as: UTF8.self), radix: 16) {
            hash.append(byte)
            hex = hex.dropFirst(2)
        }
        guard hash.count == EventRecord.hashBytes else { throw SnapshotError("the manifest's headHash is not a SHA-256") }
        let anchor = Anchor(sequence: manifest.sequence, hash: hash)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withYear, .withMonth, .withDay, .withTime, .withTimeZone]
        // A name no earlier restore took (two restores can fall in the same second).
        let stamp = database + ".old-" + formatter.string(from: Date()).replacingOccurrences(of: ":", with: "")
        var old = stamp
        var suffix = 1
        while DurableFiles.exists(old) {
            old = "\(stamp)-\(suffix)"
            suffix += 1
        }
        do {
            try DurableFiles.syncDirectory(dataDirectory)
            try DurableFiles.writeAtomically(anchor.encoded(), to: RestoreJournal.journalPath(in: dataDirectory))
            var moved: String?
            if DurableFiles.exists(database) {
                guard rename(database, old) == 0 else { throw DurableFiles.Failure.errno("rename \(database) to \(old)") }
                moved = old
            }
            guard rename(temporary, database) == 0 else { throw DurableFiles.Failure.errno("rename \(temporary) to \(database)") }
            try DurableFiles.syncDirectory(dataDirectory)
            try anchor.writeAfterRestore(dataDirectory: dataDirectory)
            guard unlink(RestoreJournal.journalPath(in: dataDirectory)) == 0 else { throw DurableFiles.Failure.errno("remove the restore journal") }
            try DurableFiles.syncDirectory(dataDirectory)
            logger.notice("restored the database from a snapshot", metadata: ["snapshot": "\(path)", "sequence": "\(manifest.sequence)", "oldDatabase": "\(moved ?? "none")"])
            return (verification, moved)
        } catch {
            throw SnapshotError("the restore was interrupted by an I/O failure (\(error)); the next start or restore finishes or undoes it (see docs/operating.md)")
        }
    }
}

/// Makes an interrupted restore end in the old state or the new one, never a mix.
///
/// Files in the data directory: `db.restore-tmp` (the verified copy being installed) and
/// `restore-pending` (the anchor of the new state, written once the copy is complete and synced).
enum RestoreJournal {
    static func temporaryPath(in dataDirectory: String) -> String { dataDirectory + "/db.restore-tmp" }
    static func journalPath(in dataDirectory: String) -> String { dataDirectory + "/restore-pending" }

    /// What a read-only look at `dataDirectory` must say instead of judging its database, when a
    /// restore into it stopped half-way (nil when none did, or when only a partial copy is left
    /// beside an untouched database, which the next start removes).
    static func pendingProblem(dataDirectory: String) -> String? {
        let temporary = temporaryPath(in: dataDirectory)
        let journal = journalPath(in: dataDirectory)
        let resume = "`tallyd serve --data-dir \(dataDirectory)` (or the next `tallyd restore` into it) resolves it, as docs/operating.md (\"Restore\") says; replay after that"
        if DurableFiles.exists(journal) {
            if let stuck = unresolvable(dataDirectory) { return stuck }
            let sequence = FileManager.default.contents(atPath: journal).flatMap { Anchor.decode(Array($0)) }.map { " at sequence \($0.sequence)" } ?? ""
            return "a restore into \(dataDirectory) was interrupted after its copy was verified (\(journal) names the restored state\(sequence)): the database and the anchor are between the old state and the new one. \(resume)"
        }
        if DurableFiles.exists(temporary), !DurableFiles.exists(Ledger.databasePath(in: dataDirectory)) {
            return copyStopped(dataDirectory)
        }
        return nil
    }

    /// What a start cannot resolve on its own, with what to do (a new restore resolves it): a
    /// damaged journal, or neither the database nor the copy left (the copy removed by hand).
    /// Nil when there is no journal or a start can resolve it.
    static func unresolvable(_ dataDirectory: String) -> String? {
        let journal = journalPath(in: dataDirectory)
        guard DurableFiles.exists(journal) else { return nil }
        guard let data = FileManager.default.contents(atPath: journal), Anchor.decode(Array(data)) != nil else { return damagedJournal(dataDirectory) }
        guard DurableFiles.exists(temporaryPath(in: dataDirectory)) || DurableFiles.exists(Ledger.databasePath(in: dataDirectory)) else { return copyLost(dataDirectory) }
        return nil
    }

    private static func damagedJournal(_ dataDirectory: String) -> String {
        stuck("the restore journal \(journalPath(in: dataDirectory)) is damaged, so which state an interrupted restore reached is unknown", dataDirectory)
    }

    private static func copyLost(_ dataDirectory: String) -> String {
        stuck("an interrupted restore left neither \(Ledger.databasePath(in: dataDirectory)) nor its copy \(temporaryPath(in: dataDirectory)) (removed by hand?)", dataDirectory)
    }

    /// `what`, with what to do: run the restore again; and where the old database is kept.
    private static func stuck(_ what: String, _ dataDirectory: String) -> String {
        let old = ((try? FileManager.default.contentsOfDirectory(atPath: dataDirectory)) ?? []).filter { $0.hasPrefix("db.old-") }.sorted()
        let kept = old.isEmpty ? "" : "; the database from before the restore is kept as \(old.map { dataDirectory + "/" + $0 }.joined(separator: ", "))"
        return "\(what): run the restore again (`tallyd restore --from SNAPSHOT --data-dir \(dataDirectory)`), which replaces the journal and installs the snapshot\(kept)"
    }

    /// At start: refuses with `problem`. Before a new restore: sets the interrupted one aside
    /// (its journal and any partial copy; the database in place or moved aside is kept, as
    /// always), since the new restore installs its own verified copy.
    private static func setAside(_ problem: String, dataDirectory: String, logger: Logger, restoring: Bool) throws(StorageError) {
        guard restoring else { throw .corrupt(problem) }
        logger.notice("setting aside an interrupted restore that a start cannot resolve; the new restore replaces it", metadata: ["problem": "\(problem)"])
        let temporary = temporaryPath(in: dataDirectory)
        if DurableFiles.exists(temporary) { try remove(temporary) }
        try remove(journalPath(in: dataDirectory))
    }

    /// A restore into a data directory without a database stopped while copying.
    private static func copyStopped(_ dataDirectory: String) -> String {
        "a restore into \(dataDirectory), which has no database, stopped while copying the snapshot (\(temporaryPath(in: dataDirectory)) is its partial copy): run the restore again (`tallyd restore --from SNAPSHOT --data-dir \(dataDirectory)`)"
    }

    /// Called at every start (the data directory lock held) and, `restoring`, before a restore.
    /// - Throws: `StorageError.corrupt` when the journal is damaged or the state cannot be resolved,
    ///   and at start when a restore into a data directory without a database stopped while
    ///   copying: starting would serve an empty ledger in place of the one being restored.
    static func finishInterrupted(dataDirectory: String, logger: Logger, restoring: Bool = false) throws(StorageError) {
        let temporary = temporaryPath(in: dataDirectory)
        let journal = journalPath(in: dataDirectory)
        let database = Ledger.databasePath(in: dataDirectory)
        guard DurableFiles.exists(journal) else {
            if !restoring, DurableFiles.exists(temporary), !DurableFiles.exists(database) {
                throw .corrupt("\(copyStopped(dataDirectory)), or, to start an empty ledger instead, delete \(temporary)")
            }
            if DurableFiles.exists(temporary) {
                // A restore stopped while copying: the old database was never touched.
                logger.notice("removing the copy of an interrupted restore; the database is unchanged", metadata: ["path": "\(temporary)"])
                try remove(temporary)
            }
            return
        }
        guard let data = FileManager.default.contents(atPath: journal), let anchor = Anchor.decode(Array(data)) else {
            return try setAside(damagedJournal(dataDirectory), dataDirectory: dataDirectory, logger: logger, restoring: restoring)
        }
        switch (DurableFiles.exists(temporary), DurableFiles.exists(database)) {
        case (true, true):
            // The old database was not moved yet: undo.
            logger.notice("undoing an interrupted restore; the database is unchanged", metadata: ["path": "\(temporary)"])
            try remove(temporary)
        case (true, false):
            // The old database was moved aside; the verified copy is complete: roll forward.
            guard rename(temporary, database) == 0 else {
                throw .corrupt("cannot finish an interrupted restore: rename \(temporary) to \(database): \(String(cString: strerror(errno)))")
            }
            try anchor.writeAfterRestore(dataDirectory: dataDirectory)
            logger.notice("finished an interrupted restore", metadata: ["sequence": "\(anchor.sequence)"])
        case (false, true):
            // Normally the copy was renamed into place and only the anchor and the journal were
            // left to do. But the copy may also have been removed by hand before that: then `db` is
            // still the old database, and the journal's anchor is not its head.
            let head: (sequence: UInt64, hash: [UInt8])?
            do {
                let store = try LedgerStore(path: database, readOnly: true)
                head = try store.lastEvent().map { ($0.event.sequence, $0.hash) }
            } catch {
                throw .corrupt("cannot read \(database) to finish an interrupted restore (\(error)); run the restore again")
            }
            guard let head, head.sequence == anchor.sequence, head.hash == anchor.hash else {
                logger.notice("an interrupted restore never installed its copy (removed by hand?): the database is unchanged", metadata: [
                    "databaseSequence": "\(head?.sequence ?? 0)", "restoreSequence": "\(anchor.sequence)",
                ])
                break
            }
            try anchor.writeAfterRestore(dataDirectory: dataDirectory)
            logger.notice("finished an interrupted restore", metadata: ["sequence": "\(anchor.sequence)"])
        case (false, false):
            return try setAside(copyLost(dataDirectory), dataDirectory: dataDirectory, logger: logger, restoring: restoring)
        }
        guard unlink(journal) == 0 else { throw .corrupt("cannot remove the restore journal \(journal): \(String(cString: strerror(errno)))") }
        do {
            try DurableFiles.syncDirectory(dataDirectory)
        } catch {
            throw .corrupt("\(error)")
        }
    }

    private static func remove(_ path: String) throws(StorageError) {
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            throw .corrupt("cannot remove \(path): \(error.localizedDescription)")
        }
    }
}
