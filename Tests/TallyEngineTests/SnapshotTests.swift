import Foundation
import Logging
import RocksDB
import TallyCore
import TallyEngine
import TallyStorage
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Snapshots, verification, restore and replay on real RocksDB")
struct SnapshotTests {
    /// Flips one bit of the file at `offset` (from the end when negative).
    static func flipBit(_ path: String, at offset: Int) throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let index = offset >= 0 ? offset : bytes.count + offset
        bytes[index] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    @Test("a snapshot taken while writes go on is an independent copy that verifies and restores")
    func createVerifyRestore() throws {
        let dir = TempDir()
        let place = TempDir()
        let snapshotPath = place.path + "/snap1"
        let manifest: SnapshotManifest
        do {
            let ledger = try openLedger(dir)
            _ = submitAll(ledger, (0..<200).map { (provision("c\($0)", key: "k\($0)"), IdempotencyClaim(key: "k\($0)", fingerprint: fingerprint("\($0)"))) })
            // Writes keep going on another thread while the snapshot is taken.
            let writing = DispatchGroup()
            DispatchQueue.global().async(group: writing) {
                _ = submitAll(ledger, (200..<400).map { (provision("c\($0)"), nil) })
            }
            manifest = try ledger.createSnapshot(at: snapshotPath)
            writing.wait()
            #expect(manifest.sequence >= 200 && manifest.sequence <= 400)
            #expect(ledger.head.sequence == 400)
            ledger.shutdown()
        }
        // Independent: no hard links into the live database, and the live directory may vanish.
        for file in manifest.files {
            var info = stat()
            #expect(stat(snapshotPath + "/" + file.name, &info) == 0 && info.st_nlink == 1, "\(file.name) is a hard link")
        }
        #expect(manifest.files.contains { $0.name.hasSuffix(".sst") })
        #expect(try FileManager.default.contentsOfDirectory(atPath: place.path) == ["snap1"], "temporary directories left behind")
        try FileManager.default.removeItem(atPath: dir.path)

        let verification = try Snapshots.verify(at: snapshotPath, scratchDirectory: place.path)
        #expect(verification.isValid, "\(verification.problems)")
        #expect(verification.report?.lastSequence == manifest.sequence)
        #expect(verification.idempotencyRecords == 200)

        let target = TempDir()
        let (restored, old) = try Snapshots.restore(from: snapshotPath, dataDirectory: target.path, logger: quietLogger)
        #expect(restored.isValid)
        #expect(old == nil)
        #expect(try Anchor.read(dataDirectory: target.path)?.sequence == manifest.sequence)
        let ledger = try openLedger(target)
        #expect(ledger.head.sequence == manifest.sequence)
        #expect(ledger.head.hash.hexString == manifest.headHash)
        #expect(try ledger.verify().isValid)
        #expect(try ledger.customers(after: nil, limit: 1000).count == Int(manifest.sequence))
        ledger.shutdown()
    }

    @Test("projections of an older layout version (an older tallyd's data directory or snapshot) are not compared by verify, and the next start rebuilds them")
    func olderProjectionLayout() throws {
        let dir = TempDir()
        do {
            let ledger = try openLedger(dir)
            _ = submitAll(ledger, (0..<20).map { (provision("c\($0)"), nil) })
            ledger.shutdown()
        }
        // What an older tallyd left: its layout version in the mark, and records this build would fold differently.
        do {
            let store = try LedgerStore(path: Ledger.databasePath(in: dir.path))
            let older = KeyLayout.projectionVersion - 1
            try store.database.put(KeyLayout.projectionVersionKey, [UInt8(older >> 24), UInt8(older >> 16 & 0xFF), UInt8(older >> 8 & 0xFF), UInt8(older & 0xFF)], in: store.database.columnFamily(KeyLayout.metaFamily), sync: true)
            try store.database.put(KeyLayout.customerKey("c3"), [1, 2, 3], in: store.database.columnFamily(KeyLayout.projectionsFamily), sync: true)
            let report = try Replay.verify(store: store)
            #expect(report.isValid && report.olderLayoutVersion == older && report.mismatches.isEmpty, "\(report.mismatches)")
            #expect(report.olderLayoutNote?.contains("rebuilds them from the log") == true)
        }
        let audit = try Audit.run(dataDirectory: dir.path, target: .head, verify: true)
        #expect(audit.isValid && audit.olderLayoutNote != nil, "\(audit.problems)")
        // The same records under this build's own version are a mismatch.
        do {
            let ledger = try openLedger(dir)
            let rebuilt = try ledger.verify()
            #expect(rebuilt.isValid && rebuilt.olderLayoutVersion == nil, "\(rebuilt.mismatches)")
            #expect(try Projections.customer("c3", in: ledger.store)?.id == "c3", "the start rebuilt the damaged-looking record")
            ledger.shutdown()
        }
        do {
            let store = try LedgerStore(path: Ledger.databasePath(in: dir.path))
            try store.database.put(KeyLayout.customerKey("c3"), [1, 2, 3], in: store.database.columnFamily(KeyLayout.projectionsFamily), sync: true)
            #expect(try !Replay.verify(store: store).isValid)
        }
    }

    @Test("a snapshot inside the data directory (or its db/) is refused: it would not survive the directory's loss")
    func snapshotInsideDataDirectory() throws {
        let dir = TempDir(), place = TempDir()
        let ledger = try openLedger(dir)
        defer { ledger.shutdown() }
        for path in [dir.path + "/snap", dir.path + "/db/snap", place.path + "/../" + (dir.path as NSString).lastPathComponent + "/snap"] {
            #expect(throws: SnapshotError.self, "\(path)") { try ledger.createSnapshot(at: path) }
            #expect(!FileManager.default.fileExists(atPath: path))
        }
        _ = try ledger.createSnapshot(at: place.path + "/snap")
        // Nor inside another snapshot, which would then no longer verify.
        try FileManager.default.createDirectory(atPath: place.path + "/snap/sub", withIntermediateDirectories: false)
        for path in [place.path + "/snap/inner", place.path + "/snap/sub/inner", place.path + "/snap/./inner", place.path + "/snap/sub/../inner"] {
            #expect {
                try ledger.createSnapshot(at: path)
            } throws: { error in
                (error as? SnapshotError)?.isPathRefused == true && "\(error)".contains("is inside the snapshot \(place.path)/snap")
            }
            #expect(!FileManager.default.fileExists(atPath: path))
        }
        try FileManager.default.removeItem(atPath: place.path + "/snap/sub")
        #expect(try Snapshots.verify(at: place.path + "/snap", scratchDirectory: place.path).isValid)
        // Written with "..", a path beside the snapshot is not inside it (the kernel's reading).
        _ = try ledger.createSnapshot(at: place.path + "/snap/../beside")
        #expect(try Snapshots.verify(at: place.path + "/beside", scratchDirectory: place.path).isValid)
        #expect(try Snapshots.verify(at: place.path + "/snap", scratchDirectory: place.path).isValid)
    }

    @Test("a flipped bit in any snapshot file, a missing or an added file fails verification")
    func damagedSnapshot() throws {
        let dir = TempDir(), place = TempDir()
        let ledger = try openLedger(dir)
        _ = submitAll(ledger, (0..<50).map { (provision("c\($0)"), nil) })
        let manifest = try ledger.createSnapshot(at: place.path + "/snap")
        ledger.shutdown()
        for file in manifest.files {
            let copy = place.path + "/damaged-\(file.name)"
            try FileManager.default.copyItem(atPath: place.path + "/snap", toPath: copy)
            try Self.flipBit(copy + "/" + file.name, at: file.size > 40 ? 20 : 0)
            let result = try Snapshots.verify(at: copy, scratchDirectory: place.path)
            #expect(!result.isValid)
            #expect(result.problems.contains { $0.hasPrefix(file.name) && $0.contains("damaged") }, "\(file.name): \(result.problems)")
            try FileManager.default.removeItem(atPath: copy)
        }
        let sst = manifest.files.first { $0.name.hasSuffix(".sst") }!.name
        try FileManager.default.removeItem(atPath: place.path + "/snap/" + sst)
        try Data("x".utf8).write(to: URL(fileURLWithPath: place.path + "/snap/extra"))
        let result = try Snapshots.verify(at: place.path + "/snap", scratchDirectory: place.path)
        #expect(result.problems.contains("\(sst): missing from the snapshot"))
        #expect(result.problems.contains { $0.hasPrefix("extra: not in the manifest") })
        // A bad snapshot is never installed.
        let target = TempDir()
        let (refused, _) = try Snapshots.restore(from: place.path + "/snap", dataDirectory: target.path, logger: quietLogger)
        #expect(!refused.isValid)
        #expect(!FileManager.default.fileExists(atPath: Ledger.databasePath(in: target.path)))
        #expect(!FileManager.default.fileExists(atPath: target.path + "/db.restore-tmp"))
    }

    @Test("a flipped bit anywhere in the manifest is found; absurd sizes are problems, not a trap; a version-1 manifest (no manifestSha256) is still read")
    func damagedManifest() throws {
        let dir = TempDir(), place = TempDir()
        let ledger = try openLedger(dir)
        _ = submitAll(ledger, (0..<5).map { (provision("c\($0)"), nil) })
        let manifest = try ledger.createSnapshot(at: place.path + "/snap")
        ledger.shutdown()
        #expect(manifest.formatVersion == 2 && manifest.manifestSha256?.count == 64)
        let path = place.path + "/snap/" + SnapshotManifest.fileName
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(try SnapshotManifest.read(snapshot: place.path + "/snap") == manifest)
        // Every single-bit change of the file: in createdAt or a size it is still valid JSON, so
        // only the manifest's own checksum can tell.
        var undetected: [Int] = []
        for index in original.indices {
            var bytes = original
            bytes[index] ^= 0x01
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            do {
                _ = try SnapshotManifest.read(snapshot: place.path + "/snap")
                undetected.append(index)
            } catch {
                #expect(error.message.contains("damaged"), "\(error)")
            }
        }
        #expect(undetected.isEmpty, "flips at \(undetected) passed")
        // Verification and restore refuse it, with the reason.
        let text = String(decoding: original, as: UTF8.self)
        let createdAt = try #require(text.range(of: "\"\(manifest.createdAt)\""))
        let changed = text.replacingCharacters(in: createdAt, with: "\"\(manifest.createdAt.replacingOccurrences(of: "20", with: "21"))\"")
        try Data(changed.utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: SnapshotError.self) { try Snapshots.verify(at: place.path + "/snap", scratchDirectory: place.path) }
        #expect(throws: SnapshotError.self) { try Snapshots.restore(from: place.path + "/snap", dataDirectory: TempDir().path, logger: quietLogger) }
        // Edited by hand with its checksum recomputed: absurd sizes are problems, not a trap.
        var edited = manifest
        for index in edited.files.indices.prefix(2) { edited.files[index].size = 1 << 63 }
        edited.manifestSha256 = try edited.contentDigest()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(edited).write(to: URL(fileURLWithPath: path))
        #expect(edited.sizeBytes == .max)
        let absurd = try Snapshots.verify(at: place.path + "/snap", scratchDirectory: place.path)
        #expect(absurd.problems.filter { $0.contains("the manifest says 9223372036854775808") }.count == 2, "\(absurd.problems)")
        // A file listed twice is named as that, not taken for a copy that failed.
        var doubled = manifest
        doubled.files.append(manifest.files[0])
        doubled.manifestSha256 = try doubled.contentDigest()
        try encoder.encode(doubled).write(to: URL(fileURLWithPath: path))
        #expect {
            try Snapshots.verify(at: place.path + "/snap", scratchDirectory: place.path)
        } throws: { error in
            "\(error)".contains("lists \(manifest.files[0].name) twice")
        }
        // A version-1 manifest, written before manifestSha256 existed, is read and verifies.
        var old = manifest
        old.formatVersion = 1
        old.manifestSha256 = nil
        try encoder.encode(old).write(to: URL(fileURLWithPath: path))
        let verification = try Snapshots.verify(at: place.path + "/snap", scratchDirectory: place.path)
        #expect(verification.isValid, "\(verification.problems)")
        // A version-2 manifest without it is damaged.
        old.formatVersion = 2
        try encoder.encode(old).write(to: URL(fileURLWithPath: path))
        #expect(throws: SnapshotError.self) { try SnapshotManifest.read(snapshot: place.path + "/snap") }
    }

    @Test("restore over an existing database keeps the old one aside and rewinds the anchor")
    func restoreOverExisting() throws {
        let dir = TempDir(), place = TempDir()
        do {
            let ledger = try openLedger(dir)
            _ = submitAll(ledger, (0..<5).map { (provision("c\($0)"), nil) })
            _ = try ledger.createSnapshot(at: place.path + "/snap")
            _ = submitAll(ledger, (5..<9).map { (provision("c\($0)"), nil) })
            ledger.shutdown()
        }
        let (result, old) = try Snapshots.restore(from: place.path + "/snap", dataDirectory: dir.path, logger: quietLogger)
        #expect(result.isValid)
        let oldPath = try #require(old)
        #expect(FileManager.default.fileExists(atPath: oldPath + "/CURRENT"))
        // Restoring again at once (the same second) keeps that one aside under another name.
        let (again, older) = try Snapshots.restore(from: place.path + "/snap", dataDirectory: dir.path, logger: quietLogger)
        #expect(again.isValid)
        #expect(older != nil && older != oldPath)
        #expect(FileManager.default.fileExists(atPath: oldPath + "/CURRENT") && FileManager.default.fileExists(atPath: (older ?? "") + "/CURRENT"))
        let ledger = try openLedger(dir)  // the anchor (9) was rewound to 5, so this start is allowed
        #expect(ledger.head.sequence == 5)
        ledger.shutdown()
    }

    @Test("an interrupted restore ends in the old state or the new one")
    func interruptedRestore() throws {
        let dir = TempDir(), place = TempDir()
        let newManifest: SnapshotManifest
        do {
            let ledger = try openLedger(dir)
            _ = submitAll(ledger, (0..<3).map { (provision("c\($0)"), nil) })
            newManifest = try ledger.createSnapshot(at: place.path + "/new")
            _ = submitAll(ledger, (3..<6).map { (provision("c\($0)"), nil) })
            ledger.shutdown()
        }
        let db = Ledger.databasePath(in: dir.path)
        let tmp = dir.path + "/db.restore-tmp"
        func stage() throws {
            try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: false)
            for file in newManifest.files { try FileManager.default.copyItem(atPath: place.path + "/new/" + file.name, toPath: tmp + "/" + file.name) }
        }
        // 1. Stopped while copying (no journal): the copy is dropped, the old state stays.
        try stage()
        do {
            let ledger = try openLedger(dir)
            #expect(ledger.head.sequence == 6)
            ledger.shutdown()
        }
        #expect(!FileManager.default.fileExists(atPath: tmp))
        // 2. Journal written, old database not moved yet: undone.
        try stage()
        let pending = "tally-anchor 1 \(String(repeating: "0", count: 19))3 \(newManifest.headHash)\n"
        try Data(pending.utf8).write(to: URL(fileURLWithPath: dir.path + "/restore-pending"))
        do {
            let ledger = try openLedger(dir)
            #expect(ledger.head.sequence == 6)
            ledger.shutdown()
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/restore-pending"))
        // 3. Journal written, old database moved aside: rolled forward, anchor rewound.
        try stage()
        try Data(pending.utf8).write(to: URL(fileURLWithPath: dir.path + "/restore-pending"))
        try FileManager.default.moveItem(atPath: db, toPath: dir.path + "/db.old-test")
        let ledger = try openLedger(dir)
        #expect(ledger.head.sequence == 3)
        #expect(ledger.head.hash.hexString == newManifest.headHash)
        ledger.shutdown()
        #expect(!FileManager.default.fileExists(atPath: tmp))
        // 4. A restore into a data directory without a database, stopped while copying: the
        // start refuses (it would serve an empty ledger) and keeps refusing, until the restore
        // is run again.
        let fresh = TempDir()
        let freshTmp = fresh.path + "/db.restore-tmp"
        try FileManager.default.createDirectory(atPath: freshTmp, withIntermediateDirectories: false)
        try FileManager.default.copyItem(atPath: place.path + "/new/" + newManifest.files[0].name, toPath: freshTmp + "/" + newManifest.files[0].name)
        for _ in 0..<2 {
            #expect {
                _ = try openLedger(fresh)
            } throws: { error in
                "\(error)".contains("stopped while copying") && "\(error)".contains("tallyd restore --from SNAPSHOT")
            }
        }
        #expect(FileManager.default.fileExists(atPath: freshTmp) && !FileManager.default.fileExists(atPath: Ledger.databasePath(in: fresh.path)))
        let (rerun, _) = try Snapshots.restore(from: place.path + "/new", dataDirectory: fresh.path, logger: quietLogger)
        #expect(rerun.isValid)
        let restored = try openLedger(fresh)
        #expect(restored.head.sequence == 3)
        restored.shutdown()
    }

    @Test("an interrupted restore a start cannot resolve (a damaged journal; the copy removed by hand) is refused saying to restore again and where the old database is; the next restore resolves it")
    func unresolvableInterruptedRestore() throws {
        let dir = TempDir(), place = TempDir()
        let manifest: SnapshotManifest
        do {
            let ledger = try openLedger(dir)
            _ = submitAll(ledger, (0..<3).map { (provision("c\($0)"), nil) })
            manifest = try ledger.createSnapshot(at: place.path + "/snap")
            _ = submitAll(ledger, (3..<6).map { (provision("c\($0)"), nil) })
            ledger.shutdown()
        }
        let db = Ledger.databasePath(in: dir.path), tmp = dir.path + "/db.restore-tmp", journal = dir.path + "/restore-pending"
        let valid = "tally-anchor 1 \(String(repeating: "0", count: 19))3 \(manifest.headHash)\n"
        // Stopped between the renames (the old database moved aside, the copy not yet in place)…
        for (state, text) in [("a damaged journal", "garbage\n"), ("the copy removed by hand", valid)] {
            try FileManager.default.moveItem(atPath: db, toPath: dir.path + "/db.old-test")
            if state == "a damaged journal" {
                try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: false)
                for file in manifest.files { try FileManager.default.copyItem(atPath: place.path + "/snap/" + file.name, toPath: tmp + "/" + file.name) }
            }
            try Data(text.utf8).write(to: URL(fileURLWithPath: journal))
            // …the start refuses, twice, saying what to do and where the old database is…
            for _ in 0..<2 {
                #expect {
                    _ = try openLedger(dir)
                } throws: { error in
                    let message = "\(error)"
                    return message.contains("run the restore again") && message.contains("tallyd restore --from SNAPSHOT")
                        && message.contains(dir.path + "/db.old-test") && !message.contains("resolves it")
                }
            }
            // …and the restore it says to run does it, keeping the old database.
            let (verification, _) = try Snapshots.restore(from: place.path + "/snap", dataDirectory: dir.path, logger: quietLogger)
            #expect(verification.isValid, "\(state)")
            #expect(!FileManager.default.fileExists(atPath: journal) && !FileManager.default.fileExists(atPath: tmp), "\(state)")
            #expect(FileManager.default.fileExists(atPath: dir.path + "/db.old-test/CURRENT"), "\(state): the old database is kept")
            let ledger = try openLedger(dir)
            #expect(ledger.head.sequence == 3, "\(state)")
            ledger.shutdown()
            // Put the six-event database back for the next round.
            try FileManager.default.removeItem(atPath: db)
            try FileManager.default.moveItem(atPath: dir.path + "/db.old-test", toPath: db)
            for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where name.hasPrefix("db.old-") {
                try FileManager.default.removeItem(atPath: dir.path + "/" + name)
            }
        }
    }

    @Test("replay to a sequence or a time folds only those events; a bit flipped in any SST file is found")
    func replayTargetsAndSSTDamage() throws {
        let dir = TempDir()
        let clock = ManualClock()
        do {
            let ledger = try openLedger(dir, clock: clock)
            _ = submitAll(ledger, (0..<10).map { (provision("c\($0)", key: "k\($0)"), IdempotencyClaim(key: "k\($0)", fingerprint: fingerprint("\($0)"))) })
            clock.advance(seconds: 60)
            _ = submitAll(ledger, (10..<15).map { (provision("c\($0)"), nil) })
            try ledger.flushMemtables()
            ledger.shutdown()
        }
        let atSeven = try Audit.run(dataDirectory: dir.path, target: .sequence(7), verify: false)
        #expect(atSeven.isValid && atSeven.lastSequence == 7 && atSeven.replayedCounts["customers"] == 7)
        let before = try Audit.run(dataDirectory: dir.path, target: .asOf(clock.now().adding(microseconds: -1_000_000)), verify: false)
        #expect(before.lastSequence == 10)
        let full = try Audit.run(dataDirectory: dir.path, target: .head, verify: true)
        #expect(full.isValid, "\(full.problems)")
        #expect(full.idempotencyRecords == 10)

        let db = Ledger.databasePath(in: dir.path)
        let ssts = try FileManager.default.contentsOfDirectory(atPath: db).filter { $0.hasSuffix(".sst") }
        #expect(ssts.count >= 3)  // events, projections, idempotency, meta
        for sst in ssts {
            let copy = TempDir()
            try FileManager.default.removeItem(atPath: copy.path)
            try FileManager.default.copyItem(atPath: dir.path, toPath: copy.path)
            try Self.flipBit(Ledger.databasePath(in: copy.path) + "/" + sst, at: 20)
            do {
                let report = try Audit.run(dataDirectory: copy.path, target: .head, verify: true)
                #expect(!report.isValid, "a flipped bit in \(sst) went unnoticed")
            } catch {
                #expect("\(error)".contains("restore"), "\(error)")
            }
        }
    }
}
