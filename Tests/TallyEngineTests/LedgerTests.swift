import Foundation
import RocksDB
import TallyCore
import TallyEngine
import TallyStorage
import Testing

@Suite("Ledger engine on real RocksDB")
struct LedgerTests {
    @Test("commands submitted together are all applied, numbered 1…n, chained, and verify")
    func groupCommit() throws {
        let dir = TempDir()
        let ledger = try openLedger(dir)
        let replies = submitAll(ledger, (0..<500).map { (provision("c\($0)", name: "n\($0)"), nil) })
        #expect(replies.allSatisfy { if case .applied = $0 { true } else { false } })
        #expect(ledger.head.sequence == 500)
        let events = try ledger.events(after: 0, limit: 1000)
        #expect(events.map(\.event.sequence) == Array(1...500))
        for (previous, next) in zip(events, events.dropFirst()) {
            #expect(next.prevHash == previous.hash)
        }
        #expect(events.first?.prevHash == EventRecord.genesisHash)
        let report = try ledger.verify()
        #expect(report.isValid)
        #expect(report.projectionCounts["customers"] == 500)
        ledger.shutdown()
    }

    @Test("an idempotency key answers duplicates and conflicts, within one group and across groups")
    func idempotency() throws {
        let dir = TempDir()
        let claim = IdempotencyClaim(key: "k1", fingerprint: fingerprint("a"))
        let other = IdempotencyClaim(key: "k1", fingerprint: fingerprint("b"))
        let first: CommandResult
        do {
            let ledger = try openLedger(dir)
            // Same group: submitted back to back without waiting.
            let replies = submitAll(ledger, [(provision("x", name: "A", key: "k1"), claim), (provision("x", name: "A", key: "k1"), claim), (provision("x", name: "B", key: "k1"), other)])
            guard case .applied(let applied) = replies[0] else { Issue.record("first: \(replies[0])"); return }
            first = applied
            #expect(replies[1] == .duplicate(first))
            #expect(replies[2] == .rejected(Rejection(.idempotencyConflict, "idempotency key \"k1\" was already used with different params")))
            #expect(ledger.head.sequence == 1)
            ledger.shutdown()
        }
        // Later group, and after a restart.
        let reopened = try openLedger(dir)
        let again = submitAll(reopened, [(provision("x", name: "A", key: "k1"), claim)])
        #expect(again == [.duplicate(first)])
        // The same key for another customer is another scope.
        let elsewhere = submitAll(reopened, [(provision("y", name: "A", key: "k1"), claim)])
        #expect(elsewhere.first?.customer?.id == "y")
        #expect(reopened.head.sequence == 2)
        reopened.shutdown()
    }

    @Test("upsert: changes append CUSTOMER_UPDATED, no change appends nothing, createdAt stays")
    func upsert() throws {
        let dir = TempDir()
        let clock = ManualClock()
        let ledger = try openLedger(dir, clock: clock)
        let created = submitAll(ledger, [(provision("c", name: "A"), nil)])[0].customer!
        clock.advance(seconds: 60)
        let same = submitAll(ledger, [(provision("c", name: "A"), nil)])[0].customer!
        #expect(same == created)
        #expect(ledger.head.sequence == 1)
        let renamed = submitAll(ledger, [(provision("c", name: "B"), nil)])[0].customer!
        #expect(renamed.name == "B")
        #expect(renamed.createdAt == created.createdAt)
        #expect(renamed.updatedAt == created.createdAt.adding(microseconds: 60_000_000))
        let cleared = submitAll(ledger, [(.provisionCustomer(ProvisionCustomer(customerId: "c", name: .cleared)), nil)])[0].customer!
        #expect(cleared.name == nil)
        let types = try ledger.events(after: 0, limit: 10).map(\.event.payload.type)
        #expect(types == ["CUSTOMER_PROVISIONED", "CUSTOMER_UPDATED", "CUSTOMER_UPDATED"])
        ledger.shutdown()
    }

    @Test("recordedAt never goes backwards when the clock does")
    func monotonicRecordedAt() throws {
        let dir = TempDir()
        let clock = ManualClock()
        let ledger = try openLedger(dir, clock: clock)
        _ = submitAll(ledger, [(provision("a"), nil)])
        clock.advance(seconds: -3600)
        _ = submitAll(ledger, [(provision("b"), nil)])
        let events = try ledger.events(after: 0, limit: 10)
        #expect(events[1].event.recordedAt >= events[0].event.recordedAt)
        ledger.shutdown()
    }

    @Test("projections missing or behind the log are rebuilt at start and equal what was stored")
    func rebuildProjections() throws {
        let dir = TempDir()
        let before: [Customer]
        do {
            let ledger = try openLedger(dir)
            _ = submitAll(ledger, (0..<50).map { (provision("c\($0)", name: "n\($0)"), nil) })
            _ = submitAll(ledger, (0..<10).map { (provision("c\($0)", name: "renamed\($0)"), nil) })
            before = try ledger.customers(after: nil, limit: 1000)
            ledger.shutdown()
        }
        try expectCustomers(dir, before)  // no rebuild needed: same

        // Projections gone entirely (mark and records).
        try withRawDatabase(dir) { db in
            let batch = WriteBatch()
            batch.deleteRange(from: [0], to: [0xFF, 0xFF, 0xFF, 0xFF], in: db.columnFamily(KeyLayout.projectionsFamily))
            batch.delete(KeyLayout.projectionSequenceKey, in: db.columnFamily(KeyLayout.metaFamily))
            try db.write(batch, sync: true)
        }
        try expectCustomers(dir, before)

        // Projections behind: the mark says 30 and one record is stale.
        try withRawDatabase(dir) { db in
            try db.put(KeyLayout.projectionSequenceKey, KeyLayout.bigEndian(30), in: db.columnFamily(KeyLayout.metaFamily), sync: true)
            try db.delete(KeyLayout.customerKey("c3"), in: db.columnFamily(KeyLayout.projectionsFamily), sync: true)
        }
        try expectCustomers(dir, before)
    }

    private func expectCustomers(_ dir: TempDir, _ expected: [Customer]) throws {
        let ledger = try openLedger(dir)
        #expect(try ledger.customers(after: nil, limit: 1000) == expected)
        #expect(try ledger.verify().isValid)
        ledger.shutdown()
    }

    @Test("a record that cannot be read while a command is decided fails the whole group: nothing is written, not even the events the command had appended")
    func readFailureWritesNothing() throws {
        let dir = TempDir()
        let clock = ManualClock(Timestamp(secondsSinceEpoch: 1_790_000_000))
        do {
            let ledger = try openLedger(dir, clock: clock)
            let feature = Command.defineFeature(DefineFeature(featureId: "f", displayName: nil, type: .metered, unit: nil, meter: nil, creditCost: nil))
            _ = submitAll(ledger, [(provision("c"), nil), (feature, nil)])
            ledger.shutdown()
        }
        // Damaged usage series cells, read only while the usage event is folded: after the event
        // itself is in the batch.
        let minute = CalendarUTC.periodStart(.minute, containing: clock.now())
        try withRawDatabase(dir) { db in
            for whole in [false, true] {
                let key = KeyLayout.usageSeriesKey(customerId: "c", featureId: "f", granularity: .minute, start: minute, resourceId: nil, dimensions: .none, whole: whole)
                try db.put(key, [0xFF, 0xFF], in: db.columnFamily(KeyLayout.projectionsFamily), sync: true)
            }
        }
        let ledger = try openLedger(dir, clock: clock)
        let head = ledger.head.sequence
        let usage = Command.reportUsage(ReportUsage(
            customerId: "c", featureId: "f", value: Amount(1), updateBehavior: .delta, resourceId: nil, idempotencyKey: "u1", timestamp: nil, dimensions: .none, strict: false
        ))
        let reply = submitAll(ledger, [(usage, IdempotencyClaim(key: "u1", fingerprint: fingerprint("u1")))]).first
        guard case .unavailable(let message) = reply else {
            Issue.record("a damaged record was answered with \(String(describing: reply))")
            ledger.shutdown()
            return
        }
        #expect(message.contains("nothing was applied"), "\(message)")
        #expect(ledger.head.sequence == head, "the usage event was written without its projections")
        #expect(try ledger.events(after: head, limit: 10).isEmpty)
        ledger.shutdown()
    }

    @Test("verify reports a projection that differs from the log")
    func verifyFindsMismatch() throws {
        let dir = TempDir()
        do {
            let ledger = try openLedger(dir)
            _ = submitAll(ledger, [(provision("a", name: "A"), nil), (provision("b", name: "B"), nil)])
            ledger.shutdown()
        }
        try withRawDatabase(dir) { db in
            let forged = Customer(id: "a", name: "FORGED", email: nil, metadata: [], createdAt: Timestamp(secondsSinceEpoch: 0), updatedAt: Timestamp(secondsSinceEpoch: 0), lastSequence: 1)
            try db.put(KeyLayout.customerKey("a"), forged.encoded(), in: db.columnFamily(KeyLayout.projectionsFamily), sync: true)
        }
        let ledger = try openLedger(dir)  // the mark is current, so no rebuild: verify must catch it
        let report = try ledger.verify()
        #expect(report.hashChainValid)
        #expect(!report.projectionsMatch)
        #expect(report.mismatches.map(\.key) == ["a"])
        ledger.shutdown()
    }

    @Test("a log that lost its last events while the projections kept them is refused at start")
    func rolledBackLogRefused() throws {
        let dir = TempDir()
        do {
            let ledger = try openLedger(dir)
            _ = submitAll(ledger, (0..<5).map { (provision("c\($0)"), nil) })
            ledger.shutdown()
        }
        try withRawDatabase(dir) { db in
            try db.delete(KeyLayout.eventKey(5), in: db.columnFamily(KeyLayout.eventsFamily), sync: true)
        }
        #expect(throws: StorageError.self) { try openLedger(dir) }
    }

    @Test("an altered event inside the tail breaks the chain and is refused at start")
    func tamperedEventRefused() throws {
        let dir = TempDir()
        do {
            let ledger = try openLedger(dir)
            _ = submitAll(ledger, (0..<5).map { (provision("c\($0)", name: "n"), nil) })
            ledger.shutdown()
        }
        try withRawDatabase(dir) { db in
            let events = db.columnFamily(KeyLayout.eventsFamily)
            var bytes = try db.get(KeyLayout.eventKey(3), in: events)!
            // Re-encode event 3 with another name but the same prevHash: it decodes, but no longer
            // hashes to what event 4 recorded.
            let original = try EventRecord(sequence: 3, bytes: bytes)
            let forged = EventRecord(sequence: 3, recordedAt: original.event.recordedAt, payload: .customerProvisioned(CustomerProvisioned(customerId: "c2", name: "evil", email: nil, metadata: [], idempotencyKey: nil)), prevHash: original.prevHash)
            bytes = forged.bytes
            try db.put(KeyLayout.eventKey(3), bytes, in: events, sync: true)
        }
        do {
            _ = try openLedger(dir)
            Issue.record("a tampered log was opened")
        } catch {
            #expect("\(error)".contains("does not chain"))
        }
    }

    @Test("a command after a restart chains to the recovered head")
    func chainsAcrossRestart() throws {
        let dir = TempDir()
        let head: (sequence: UInt64, hash: [UInt8])
        do {
            let ledger = try openLedger(dir)
            _ = submitAll(ledger, [(provision("a"), nil)])
            head = ledger.head
            ledger.shutdown()
        }
        let ledger = try openLedger(dir)
        #expect(ledger.head.sequence == head.sequence)
        #expect(ledger.head.hash == head.hash)
        _ = submitAll(ledger, [(provision("b"), nil)])
        let second = try ledger.events(after: 1, limit: 1)[0]
        #expect(second.prevHash == head.hash)
        #expect(try ledger.verify().isValid)
        ledger.shutdown()
    }
}
