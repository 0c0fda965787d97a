import Foundation
import RocksDB
import TallyCore
import TallyEngine
import TallyStorage
import Testing

@Suite("Anchor: rollback and truncation are refused at start")
struct AnchorTests {
    @Test("the anchor follows every commit and survives a restart")
    func followsCommits() throws {
        let dir = TempDir()
        do {
            let ledger = try openLedger(dir)
            #expect(try Anchor.read(dataDirectory: dir.path) == Anchor(sequence: 0, hash: EventRecord.genesisHash))
            _ = submitAll(ledger, (0..<20).map { (provision("c\($0)"), nil) })
            let head = ledger.head
            #expect(try Anchor.read(dataDirectory: dir.path) == Anchor(sequence: head.sequence, hash: head.hash))
            ledger.shutdown()
        }
        let reopened = try openLedger(dir)
        #expect(reopened.head.sequence == 20)
        reopened.shutdown()
    }

    @Test("a database rolled back to an older copy is refused, naming the anchor")
    func rollbackRefused() throws {
        let dir = TempDir()
        let db = Ledger.databasePath(in: dir.path)
        do {
            let ledger = try openLedger(dir)
            _ = submitAll(ledger, (0..<5).map { (provision("c\($0)"), nil) })
            ledger.shutdown()
        }
        try FileManager.default.copyItem(atPath: db, toPath: dir.path + "/older")
        do {
            let ledger = try openLedger(dir)
            _ = submitAll(ledger, (5..<8).map { (provision("c\($0)"), nil) })
            ledger.shutdown()
        }
        try FileManager.default.removeItem(atPath: db)
        try FileManager.default.moveItem(atPath: dir.path + "/older", toPath: db)
        do {
            _ = try openLedger(dir)
            Issue.record("a rolled-back database was opened")
        } catch {
            #expect("\(error)".contains("the anchor says it reached sequence 8"))
            #expect("\(error)".contains("restore"))
        }
        // replay --verify finds it too.
        let report = try Audit.run(dataDirectory: dir.path, target: .head, verify: true)
        #expect(!report.isValid)
        #expect(report.problems.contains { $0.contains("rolled back") })
    }

    @Test("a different database with as many events is refused (hash differs)")
    func replacedRefused() throws {
        let a = TempDir(), b = TempDir()
        for (dir, prefix) in [(a, "a"), (b, "b")] {
            let ledger = try openLedger(dir)
            _ = submitAll(ledger, (0..<3).map { (provision("\(prefix)\($0)"), nil) })
            ledger.shutdown()
        }
        try FileManager.default.removeItem(atPath: Ledger.databasePath(in: a.path))
        try FileManager.default.copyItem(atPath: Ledger.databasePath(in: b.path), toPath: Ledger.databasePath(in: a.path))
        #expect { try openLedger(a) } throws: { "\($0)".contains("but the anchor recorded") }
    }

    @Test("a missing anchor is recreated at the head; a damaged one refuses the start")
    func missingAndDamaged() throws {
        let dir = TempDir()
        do {
            let ledger = try openLedger(dir)
            _ = submitAll(ledger, [(provision("x"), nil)])
            ledger.shutdown()
        }
        try FileManager.default.removeItem(atPath: Anchor.path(in: dir.path))
        do {
            let ledger = try openLedger(dir)
            #expect(try Anchor.read(dataDirectory: dir.path)?.sequence == 1)
            ledger.shutdown()
        }
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: Anchor.path(in: dir.path)))
        #expect { try openLedger(dir) } throws: { "\($0)".contains("anchor file") && "\($0)".contains("damaged") && "\($0)".contains("reports no problem but this file") }
    }

    @Test("a flipped bit in the last event's payload is refused at start and by replay --verify")
    func flippedLastEvent() throws {
        let dir = TempDir()
        do {
            let ledger = try openLedger(dir)
            _ = submitAll(ledger, (0..<4).map { (provision("c\($0)", name: "name\($0)"), nil) })
            ledger.shutdown()
        }
        try withRawDatabase(dir) { db in
            let events = db.columnFamily(KeyLayout.eventsFamily)
            var bytes = try db.get(KeyLayout.eventKey(4), in: events)!
            // Inside the name "name3": still decodes, but hashes differently.
            let index = bytes.count - 4
            bytes[index] ^= 0x01
            try db.put(KeyLayout.eventKey(4), bytes, in: events, sync: true)
        }
        #expect { try openLedger(dir) } throws: { "\($0)".contains("event 4 hashes to") }
    }

    @Test("replay --verify finds a flipped bit in an old event's payload, outside the start-up tail check")
    func flippedOldEvent() throws {
        let dir = TempDir()
        do {
            let ledger = try openLedger(dir)
            // More events than the start-up check reads from the tail (1,024).
            _ = submitAll(ledger, (0..<1_100).map { (provision("c\($0)", name: "name\($0)"), nil) })
            ledger.shutdown()
        }
        try withRawDatabase(dir) { db in
            let events = db.columnFamily(KeyLayout.eventsFamily)
            var bytes = try db.get(KeyLayout.eventKey(2), in: events)!
            bytes[bytes.count - 4] ^= 0x01
            try db.put(KeyLayout.eventKey(2), bytes, in: events, sync: true)
        }
        // The start-up check reads only the tail, so the ledger opens; the full replay finds it.
        try openLedger(dir).shutdown()
        let report = try Audit.run(dataDirectory: dir.path, target: .head, verify: true)
        #expect(report.chainProblem?.contains("event 3 does not chain to event 2") == true)
        #expect(!report.isValid)
    }
}
