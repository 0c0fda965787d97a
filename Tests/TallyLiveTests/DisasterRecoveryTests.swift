import Foundation
import RocksDB
import Synchronization
import TallyClient
import TallyCore
import TallyEngine
import TallyStorage
import TallyProtocol
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Snapshots, verification, restore and every fault that must be detected — on the real `tallyd`
/// and `tally`, with real bytes damaged in real files while the daemon is stopped.
@Suite("disaster recovery (snapshots, restore, damaged files)", .serialized)
struct DisasterRecoveryTests {
    static func provision(_ daemon: LiveDaemon, _ ids: Range<Int>, prefix: String = "c") throws {
        let connection = try daemon.connect()
        defer { connection.close() }
        for i in ids {
            _ = try connection.call("provisionCustomer", ["customerId": .string("\(prefix)\(i)"), "name": .string("name \(i)"), "idempotencyKey": .string("k\(prefix)\(i)")])
        }
    }

    static func tallyd(_ arguments: [String]) throws -> ProcessResult { try runProgram(Binaries.tallyd, arguments) }

    /// Edits the events column family of a stopped daemon's database by hand (damage for a test).
    static func editLog(_ daemon: LiveDaemon, _ edit: (Database, ColumnFamily) throws -> Void) throws {
        let database = try Database(path: Ledger.databasePath(in: daemon.dataDirectory), columnFamilies: KeyLayout.columnFamilies)
        try edit(database, database.columnFamily(KeyLayout.eventsFamily))
    }

    static func tally(_ daemon: LiveDaemon, _ arguments: [String]) throws -> ProcessResult {
        try runProgram(Binaries.tally, arguments + ["--socket", daemon.socketPath])
    }

    static func databaseFiles(_ daemon: LiveDaemon, suffix: String) throws -> [String] {
        let db = daemon.dataDirectory + "/db"
        return try FileManager.default.contentsOfDirectory(atPath: db).filter { $0.hasSuffix(suffix) }.sorted().map { db + "/" + $0 }
    }

    static func flipBit(_ path: String, at offset: Int) throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[offset >= 0 ? offset : bytes.count + offset] ^= 0x04
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Starting must fail with exit 1 and a log line containing every one of `phrases`.
    /// A running daemon with `taken` customers in a snapshot at `<directory>/snap`, and `more` after it.
    static func daemonWithSnapshot(taken: Int, more: Int) throws -> (LiveDaemon, TemporaryDirectory) {
        let daemon = try LiveDaemon().start()
        try provision(daemon, 0..<taken)
        let snapshots = TemporaryDirectory("tally-snap")
        _ = try daemon.call("createSnapshot", ["path": .string(snapshots.path + "/snap")])
        try provision(daemon, taken..<(taken + more))
        return (daemon, snapshots)
    }

    static func expectStartRefused(_ daemon: LiveDaemon, _ phrases: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            try daemon.start(timeoutSeconds: 10)
            Issue.record("tallyd started on a damaged data directory", sourceLocation: sourceLocation)
            _ = try? daemon.terminate()
        } catch {
            let text = "\(error)"
            #expect(text.contains("exited with 1"), "\(text)", sourceLocation: sourceLocation)
            for phrase in phrases {
                #expect(text.contains(phrase), "missing \"\(phrase)\" in:\n\(text)", sourceLocation: sourceLocation)
            }
        }
    }

    @Test("snapshot create while writing, verify, lose the live directory, restore, serve")
    func snapshotRoundTrip() throws {
        let daemon = try LiveDaemon().start()
        let place = TemporaryDirectory("tally-snap")
        let snapshot = place.path + "/snap"
        try Self.provision(daemon, 0..<100)
        // Writes go on while the snapshot is taken.
        let socket = daemon.socketPath
        let writer = Thread {
            guard let connection = try? TallyConnection(socketPath: socket, timeoutSeconds: 30) else { return }
            defer { connection.close() }
            for i in 0..<300 {
                _ = try? connection.call("provisionCustomer", ["customerId": .string("w\(i)")])
            }
        }
        writer.start()
        let created = try Self.tally(daemon, ["snapshot", "create", snapshot, "--json"])
        #expect(created.status == 0, "\(created.stderr)")
        while !writer.isFinished { usleep(1000) }
        let result = try parseJSON(created.stdout)
        let sequence = Int(result["sequence"]?.numberText ?? "0")!
        #expect(sequence >= 100 && sequence <= 400)

        let verified = try runProgram(Binaries.tally, ["snapshot", "verify", snapshot, "--scratch", place.path])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        #expect(verified.stdout.contains("OK: the snapshot is good."))
        let verifiedJSON = try parseJSON(try runProgram(Binaries.tally, ["snapshot", "verify", snapshot, "--scratch", place.path, "--json"]).stdout)
        #expect(verifiedJSON["valid"] == true && verifiedJSON["sequence"]?.numberText == String(sequence) && verifiedJSON["problems"] == [], "\(verifiedJSON.jsonText)")

        // A running daemon holds the data directory: restore refuses it.
        let refused = try Self.tallyd(["restore", "--from", snapshot, "--data-dir", daemon.dataDirectory])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("another tallyd"), "\(refused.stderr)")

        let live = try Self.tally(daemon, ["ledger", "verify"])
        #expect(live.status == 0, "\(live.stdout)\(live.stderr)")
        #expect(live.stdout.contains("OK"))
        #expect(try daemon.terminate() == 0)

        // The live directory is lost; the snapshot is all that is left.
        try FileManager.default.removeItem(atPath: daemon.dataDirectory)
        let restored = try Self.tallyd(["restore", "--from", snapshot, "--data-dir", daemon.dataDirectory])
        #expect(restored.status == 0, "\(restored.stdout)\(restored.stderr)")
        try daemon.start()
        let status = try daemon.call("getStatus")
        #expect(status["lastSequence"]?.numberText == String(sequence))
        #expect(status["headHash"] == result["headHash"])
        try Self.provision(daemon, 0..<1, prefix: "after")
        #expect(try daemon.terminate() == 0)
        let replay = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        #expect(replay.status == 0, "\(replay.stdout)\(replay.stderr)")
        #expect(replay.stdout.contains("events read: \(sequence + 1)"))
    }

    @Test("after a restore the ledger goes on from the snapshot's sequence, but the ids it makes up are new: a grant or subscription id of the lost history names nothing, and voiding it voids no one's grant")
    func idsAfterRestoreAreNew() throws {
        let daemon = try LiveDaemon().start()
        let place = TemporaryDirectory("tally-lineage")
        let snapshot = place.path + "/snap"
        _ = try daemon.call("defineCurrency", ["currencyId": "credits", "displayName": "Credits"])
        _ = try daemon.call("definePlan", ["planId": "basic", "displayName": "Basic", "entitlements": []])
        for customer in ["acme", "beta"] { _ = try daemon.call("provisionCustomer", ["customerId": .string(customer)]) }
        let before = try daemon.call("grantCredits", ["customerId": "acme", "currencyId": "credits", "amount": "10", "grantType": "PAID"])
        #expect(before["grantId"]?.stringValue?.hasPrefix("grant_") == true && before["grantId"]?.stringValue?.contains("-") == false, "\(before.jsonText)")
        _ = try daemon.call("createSnapshot", ["path": .string(snapshot)])
        // Acknowledged after the snapshot: lost with the restore.
        let lostGrant = try daemon.call("grantCredits", ["customerId": "acme", "currencyId": "credits", "amount": "5", "grantType": "PAID"])["grantId"]?.stringValue ?? "?"
        let lostSubscription = try daemon.call("provisionSubscription", ["customerId": "acme", "planId": "basic"])["id"]?.stringValue ?? "?"
        #expect(try daemon.terminate() == 0)
        let restored = try Self.tallyd(["restore", "--from", snapshot, "--data-dir", daemon.dataDirectory])
        #expect(restored.status == 0, "\(restored.stdout)\(restored.stderr)")
        try daemon.start()

        // The same sequences come again, for other things, under other ids.
        let grant = try daemon.call("grantCredits", ["customerId": "beta", "currencyId": "credits", "amount": "7", "grantType": "PAID"])["grantId"]?.stringValue ?? "?"
        let subscription = try daemon.call("provisionSubscription", ["customerId": "beta", "planId": "basic"])["id"]?.stringValue ?? "?"
        #expect(grant != lostGrant && grant.hasPrefix(lostGrant + "-"), "\(grant) after the restore, \(lostGrant) before")
        #expect(subscription != lostSubscription && subscription.hasPrefix("sub_"), "\(subscription) after the restore, \(lostSubscription) before")
        // acme's client still holds the lost grant's id: voiding it is refused, beta keeps its credits.
        _ = expectRPCError(code: 1004, reason: "GRANT_NOT_FOUND") { _ = try daemon.call("voidCreditGrant", ["grantId": .string(lostGrant)]) }
        _ = expectRPCError(code: 1013, reason: "INVALID_STATE") { _ = try daemon.call("cancelSubscription", ["subscriptionId": .string(lostSubscription)]) }
        let balance = try daemon.call("getCreditBalance", ["customerId": "beta", "currencyId": "credits"])
        #expect(balance["balances"]?.arrayValue?.first?["balance"] == "7", "\(balance.jsonText)")
        #expect(try daemon.terminate() == 0)
        let replay = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        #expect(replay.status == 0, "\(replay.stdout)\(replay.stderr)")
    }

    /// How many commands a background writer has had acknowledged, and whether it should stop.
    final class WriterProgress: Sendable {
        let acknowledged = Mutex(0)
        let stop = Mutex(false)
    }

    @Test("tallyd replay --verify and verifyLedger beside a daemon that keeps writing: both pass on a consistent view")
    func verifyWhileWriting() throws {
        let daemon = try LiveDaemon().start()
        try Self.provision(daemon, 0..<200)
        let socket = daemon.socketPath
        let progress = WriterProgress()
        let writer = Thread {
            guard let connection = try? TallyConnection(socketPath: socket, timeoutSeconds: 30) else { return }
            defer { connection.close() }
            var i = 0
            while !progress.stop.withLock({ $0 }) && i < 20_000 {
                if (try? connection.call("provisionCustomer", ["customerId": .string("live\(i)")])) != nil {
                    progress.acknowledged.withLock { $0 += 1 }
                }
                i += 1
            }
        }
        writer.start()
        defer {
            progress.stop.withLock { $0 = true }
            while !writer.isFinished { usleep(1000) }
        }
        while progress.acknowledged.withLock({ $0 }) < 20 { usleep(1000) }
        let before = progress.acknowledged.withLock { $0 }
        for _ in 0..<3 {
            // The offline check opens a read-only view while the daemon keeps committing and
            // moving its anchor forward: that is not a rollback.
            let replay = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
            #expect(replay.status == 0, "\(replay.stdout)\(replay.stderr)")
            let report = try daemon.call("verifyLedger")
            #expect(report["hashChainValid"] == true && report["projectionsMatch"] == true, "\(report.jsonText.prefix(800))")
        }
        #expect(progress.acknowledged.withLock { $0 } > before, "the writes went on during the checks")
    }

    @Test("a stored balance that the log does not give is reported by replay --verify: projection, customer, currency, expected and stored balance")
    func tamperedBalance() throws {
        let daemon = try LiveDaemon().start()
        _ = try daemon.call("defineCurrency", ["currencyId": "gold", "displayName": "Gold"])
        _ = try daemon.call("provisionCustomer", ["customerId": "audited"])
        _ = try daemon.call("grantCredits", ["customerId": "audited", "currencyId": "gold", "amount": "100", "grantType": "PAID"])
        #expect(try daemon.terminate() == 0)
        do {
            let database = try Database(path: Ledger.databasePath(in: daemon.dataDirectory), columnFamilies: KeyLayout.columnFamilies)
            let projections = database.columnFamily(KeyLayout.projectionsFamily)
            let key = KeyLayout.creditPoolKey(customerId: "audited", currencyId: "gold", resourceId: nil)
            var pool = try CreditPool.decode(try #require(try database.get(key, in: projections)))
            pool.ledgerBalance = Amount(7)
            let batch = WriteBatch()
            batch.put(key, pool.encoded(), in: projections)
            try database.write(batch, sync: true)
        }
        let replay = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        #expect(replay.status == 1)
        let mismatch = replay.stdout.split(separator: "\n").first { $0.contains("mismatch: creditPools") }.map(String.init) ?? ""
        for part in ["audited", "gold", "balance: 100", "balance: 7"] {
            #expect(mismatch.contains(part), "missing \"\(part)\" in the mismatch line: \(replay.stdout)")
        }
    }

    @Test("replay --verify reports an altered last event both ways: the projections it no longer gives, and the anchor's hash it no longer has")
    func alteredLastEvent() throws {
        let daemon = try LiveDaemon().start()
        _ = try daemon.call("provisionCustomer", ["customerId": "first"])
        _ = try daemon.call("provisionCustomer", ["customerId": "last", "name": "Original"])
        let head = try daemon.lastSequence()
        #expect(try daemon.terminate() == 0)
        do {
            // Re-encoded with valid RocksDB checksums and the same prevHash: only the chain's
            // end (the anchor) and the projections can tell.
            let database = try Database(path: Ledger.databasePath(in: daemon.dataDirectory), columnFamilies: KeyLayout.columnFamilies)
            let events = database.columnFamily(KeyLayout.eventsFamily)
            let original = try EventRecord(sequence: UInt64(head), bytes: try #require(try database.get(KeyLayout.eventKey(UInt64(head)), in: events)))
            let forged = EventRecord(sequence: UInt64(head), recordedAt: original.event.recordedAt,
                                     payload: .customerProvisioned(CustomerProvisioned(customerId: "last", name: "Forged", email: nil, metadata: [], idempotencyKey: nil)),
                                     prevHash: original.prevHash)
            try database.put(KeyLayout.eventKey(UInt64(head)), forged.bytes, in: events, sync: true)
        }
        let replay = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        #expect(replay.status == 1)
        #expect(replay.stdout.contains("hash chain: valid"), "\(replay.stdout)")
        #expect(replay.stdout.contains("PROBLEM: projection mismatch: customers"), "\(replay.stdout)")
        // What to do, once for all mismatches (each other problem says it in its own line).
        #expect(replay.stdout.components(separatedBy: "TO DO: the stored projections").count == 2 && replay.stdout.contains("tallyd restore --from SNAPSHOT"), "\(replay.stdout)")
        #expect(replay.stdout.contains("PROBLEM: event \(head) hashes to") && replay.stdout.contains("but the anchor recorded"), "\(replay.stdout)")
    }

    @Test("a real tallyd restore killed with SIGKILL at random moments leaves the old state or the new one, never a mix")
    func restoreKilledMidway() throws {
        let daemon = try LiveDaemon().start()
        try Self.provision(daemon, 0..<2000)
        let snapshot = daemon.directory.path + "/snap"
        let created = try parseJSON(try Self.tally(daemon, ["snapshot", "create", snapshot, "--json"]).stdout)
        let snapshotSequence = Int(created["sequence"]?.numberText ?? "") ?? -1
        #expect(snapshotSequence == 2000)
        try Self.provision(daemon, 2000..<2500)
        #expect(try daemon.terminate() == 0)
        let pristine = daemon.directory.path + "/pristine"
        try FileManager.default.copyItem(atPath: daemon.dataDirectory, toPath: pristine)

        var generator = SystemRandomNumberGenerator()
        var outcomes: [Int: Int] = [:]  // lastSequence after the interrupted restore → rounds
        for round in 0..<10 {
            try? FileManager.default.removeItem(atPath: daemon.dataDirectory)
            try FileManager.default.copyItem(atPath: pristine, toPath: daemon.dataDirectory)
            let restore = try ChildProcess(Binaries.tallyd, ["restore", "--from", snapshot, "--data-dir", daemon.dataDirectory])
            // Spread the kills over the whole restore: verification, the copy, the swap.
            usleep(UInt32.random(in: 0...(round < 5 ? 40_000 : 200_000), using: &generator))
            restore.signal(SIGKILL)
            _ = restore.waitUntilExit()
            // The next start finishes or undoes the interrupted restore.
            try daemon.start()
            let sequence = try daemon.lastSequence()
            #expect(sequence == 2500 || sequence == snapshotSequence, "round \(round): lastSequence \(sequence), neither the old 2500 nor the snapshot's \(snapshotSequence)")
            outcomes[sequence, default: 0] += 1
            let report = try daemon.call("verifyLedger")
            #expect(report["hashChainValid"] == true && report["projectionsMatch"] == true, "round \(round): \(report.jsonText.prefix(500))")
            let customer = try? daemon.call("getCustomer", ["customerId": "c2499"])
            #expect((customer != nil) == (sequence == 2500), "round \(round): the customers match the log")
            #expect(try daemon.terminate() == 0)
        }
        // Then an uninterrupted restore completes, whatever the rounds left behind.
        let restored = try Self.tallyd(["restore", "--from", snapshot, "--data-dir", daemon.dataDirectory])
        #expect(restored.status == 0, "\(restored.stdout)\(restored.stderr)")
        try daemon.start()
        #expect(try daemon.lastSequence() == snapshotSequence, "outcomes of the interrupted rounds: \(outcomes)")
        #expect(try daemon.terminate() == 0)
    }

    @Test("long offline commands draw a progress bar on a terminal and plain lines off one")
    func progressOnTerminal() throws {
        let daemon = try LiveDaemon().start()
        try Self.provision(daemon, 0..<50)
        #expect(try daemon.terminate() == 0)
        // `script` gives the command a pseudo-terminal, as an operator's shell would.
        guard let script = findExecutable("script") else { Issue.record("script(1) is not installed (util-linux)"); return }
        let command = "\(Binaries.tallyd) replay --data-dir \(daemon.dataDirectory) --verify"
        let onTerminal = try runProgram(script, ["-qec", command, "/dev/null"])
        #expect(onTerminal.status == 0, "\(onTerminal.stdout)\(onTerminal.stderr)")
        #expect(onTerminal.stdout.contains("replay [") && onTerminal.stdout.contains("100%") && onTerminal.stdout.contains("events"), "a bar on a terminal: \(onTerminal.stdout)")
        let offTerminal = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        #expect(!offTerminal.stderr.contains("[#") && !offTerminal.stderr.contains("\u{1B}"), "no bar drawing off a terminal: \(offTerminal.stderr)")
        #expect(offTerminal.stdout.contains("OK"))
    }

    @Test("a bit flipped in an old event's payload (beyond the start-up tail check) is found by replay --verify, ledger verify and snapshot verify")
    func flippedOldEventPayload() throws {
        let daemon = try LiveDaemon().start()
        try Self.provision(daemon, 0..<1100)
        #expect(try daemon.terminate() == 0)
        try Self.editLog(daemon) { database, events in
            var bytes = try #require(try database.get(KeyLayout.eventKey(5), in: events))
            bytes[bytes.count - 3] ^= 0x01  // inside the customer's name: it still decodes
            try database.put(KeyLayout.eventKey(5), bytes, in: events, sync: true)
        }
        let replay = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        #expect(replay.status == 1)
        #expect(replay.stdout.contains("hash chain: BROKEN") && replay.stdout.contains("event 6 does not chain to event 5") && replay.stdout.contains("restore"), "\(replay.stdout)")
        // The start-up check reads the last 1,024 events only; the live check reads them all.
        try daemon.start()
        let live = try Self.tally(daemon, ["ledger", "verify"])
        #expect(live.status == 1, "\(live.stdout)\(live.stderr)")
        #expect((live.stdout + live.stderr).contains("event 6 does not chain to event 5"), "\(live.stdout)\(live.stderr)")
        // Time travel across the damage is refused as damage, not answered from the altered event.
        for (method, params) in [
            ("getCreditBalance", ["customerId": "c3", "asOf": ["sequence": 50]]),
            ("getUsageHistory", ["customerId": "c3", "featureId": "none", "startDate": "2026-01-01T00:00:00Z", "asOf": ["sequence": 50]]),
        ] as [(String, JSONObject)] {
            let error = expectRPCError(code: 2001) { _ = try daemon.call(method, params) }
            #expect(error?.message.contains("event 6 does not chain to event 5") == true && error?.message.contains("restore") == true, "\(method): \(error.map { "\($0)" } ?? "no error")")
        }
        // Before the damage, it answers.
        #expect(try daemon.call("getCreditBalance", ["customerId": "c3", "asOf": ["sequence": 4]])["asOf"]?["sequence"] == 4)
        // A snapshot of the damaged ledger does not count as good.
        let snapshot = daemon.directory.path + "/snap"
        _ = try Self.tally(daemon, ["snapshot", "create", snapshot])
        #expect(try daemon.terminate() == 0)
        let verified = try runProgram(Binaries.tally, ["snapshot", "verify", snapshot, "--scratch", daemon.directory.path])
        #expect(verified.status == 1, "\(verified.stdout)")
        #expect(verified.stdout.contains("event 6 does not chain to event 5"), "\(verified.stdout)")
    }

    @Test("a last event that does not decode (its type renamed) is refused at start, saying what to do; replay --to-sequence before it works")
    func undecodableLastEvent() throws {
        let daemon = try LiveDaemon().start()
        try Self.provision(daemon, 0..<5)
        #expect(try daemon.terminate() == 0)
        try Self.editLog(daemon) { database, events in
            var bytes = try #require(try database.get(KeyLayout.eventKey(5), in: events))
            let type = Array("CUSTOMER_PROVISIONED".utf8)
            let at = try #require((0...(bytes.count - type.count)).first { Array(bytes[$0..<($0 + type.count)]) == type })
            bytes[at + type.count - 1] = UInt8(ascii: "X")
            try database.put(KeyLayout.eventKey(5), bytes, in: events, sync: true)
        }
        Self.expectStartRefused(daemon, ["event 5", "unknown event type CUSTOMER_PROVISIONEX", "restore the latest verified snapshot"])
        // Offline: the events before it still replay; the whole log names where it stopped.
        let before = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--to-sequence", "4"])
        #expect(before.status == 0 && before.stdout.contains("events read: 4 (through sequence 4 of 5)"), "\(before)")
        let whole = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory])
        #expect(whole.status == 1 && whole.stdout.contains("stopped on damage, before the log's last event (sequence 5)"), "\(whole)")
    }

    @Test("replay --verify of a log emptied under its projections names the cause first: the projections stand at a sequence the log does not reach")
    func emptiedLogNamesTheMark() throws {
        let daemon = try LiveDaemon().start()
        try Self.provision(daemon, 0..<150)  // more customers than the report lists mismatches
        #expect(try daemon.terminate() == 0)
        try Self.editLog(daemon) { database, events in
            for sequence in UInt64(1)...150 { try database.delete(KeyLayout.eventKey(sequence), in: events, sync: sequence == 150) }
        }
        let replay = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        let problems = replay.stdout.split(separator: "\n").filter { $0.contains("projection mismatch") }
        #expect(replay.status == 1 && problems.first?.contains("mark projection.sequence: replay has 0, stored has 150") == true, "\(replay)")
    }

    @Test("an old event deleted under a later one that needs it (beyond the start-up tail check): verifyLedger and replay --verify report the broken chain, the daemon does not crash")
    func deletedEventUnderItsUpdate() throws {
        let daemon = try LiveDaemon().start()
        _ = try daemon.call("provisionCustomer", ["customerId": "first", "name": "One"])
        _ = try daemon.call("provisionCustomer", ["customerId": "first", "name": "Renamed"])  // CUSTOMER_UPDATED of event 1's customer
        try Self.provision(daemon, 0..<1100)
        #expect(try daemon.terminate() == 0)
        try Self.editLog(daemon) { database, events in try database.delete(KeyLayout.eventKey(1), in: events, sync: true) }
        try daemon.start()
        let report = try daemon.call("verifyLedger")
        #expect(report["hashChainValid"] == false && (report["chainProblem"]?.stringValue ?? "").contains("event 1 is missing"), "\(report.jsonText.prefix(1500))")
        #expect(try daemon.call("getStatus")["lastSequence"] == 1102, "the daemon is still serving")
        #expect(try daemon.terminate() == 0)
        let replay = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        #expect(replay.status == 1 && replay.stdout.contains("event 1 is missing"), "\(replay)")
    }

    @Test("a deleted idempotency record (a retry would count that event or report again) is reported by replay --verify and verifyLedger, naming the key")
    func deletedIdempotencyRecord() throws {
        let daemon = try LiveDaemon().start()
        _ = try daemon.call("provisionCustomer", ["customerId": "c"])
        _ = try daemon.call("defineFeature", ["featureId": "calls", "type": "METERED"])
        let events: [JSONValue] = (0..<3).map { ["customerId": "c", "eventName": "api.call", "idempotencyKey": .string("e\($0)")] }
        _ = try daemon.call("reportEvent", ["events": .array(events)])
        _ = try daemon.call("reportUsage", ["customerId": "c", "featureId": "calls", "value": "2", "idempotencyKey": "u1"])
        #expect(try daemon.terminate() == 0)
        let intact = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        #expect(intact.status == 0, "\(intact)")

        try Self.editLog(daemon) { database, _ in
            let idempotency = database.columnFamily(KeyLayout.idempotencyFamily)
            for key in [KeyLayout.idempotencyKey(family: "event", customerId: "c", key: "e1"), KeyLayout.idempotencyKey(family: "usage", customerId: "c", key: "u1")] {
                #expect(try database.get(key, in: idempotency) != nil)
                try database.delete(key, in: idempotency, sync: true)
            }
        }
        let replay = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        #expect(replay.status == 1, "\(replay)")
        #expect(replay.stdout.contains("idempotency event/c/e1: replay has the record of event 4's command, stored has nothing"), "\(replay)")
        #expect(replay.stdout.contains("idempotency usage/c/u1: replay has the record of event 6's command, stored has nothing"), "\(replay)")
        try daemon.start()
        let report = try daemon.call("verifyLedger")
        #expect(report["projectionsMatch"] == false && report.jsonText.contains("usage/c/u1"), "\(report.jsonText.prefix(1500))")
    }

    @Test("legitimate extremes pass the decoders' range checks: a usage total past 10^24 and a SET back to 0 (its delta as large) survive a restart and replay --verify")
    func extremeUsageSurvivesDecoding() throws {
        let daemon = try LiveDaemon().start()
        _ = try daemon.call("provisionCustomer", ["customerId": "big"])
        _ = try daemon.call("defineFeature", ["featureId": "bytes", "type": "METERED"])
        let nearMax = "999999999999999999999.999999999999"  // just below 10^21, 12 fractional digits
        let item: JSONValue = ["customerId": "big", "featureId": "bytes", "value": .string(nearMax)]
        for _ in 0..<2 { _ = try daemon.call("reportUsageBulk", ["usages": .array(Array(repeating: item, count: 1000))]) }
        let set = try daemon.call("reportUsage", ["customerId": "big", "featureId": "bytes", "value": "0", "updateBehavior": "SET"])
        #expect(set.field("measurement.delta") == "-1999999999999999999999999.999999998", "\(set.jsonText)")
        #expect(try daemon.terminate() == 0)
        try daemon.start()
        #expect(try daemon.call("getEntitlement", ["customerId": "big", "featureId": "bytes"])["currentUsage"] == "0")
        #expect(try daemon.terminate() == 0)
        let replay = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        #expect(replay.status == 0, "\(replay)")
    }

    @Test("a bit flipped in a snapshot file fails `tally snapshot verify`, and restore refuses it")
    func damagedSnapshot() throws {
        let daemon = try LiveDaemon().start()
        let place = TemporaryDirectory("tally-snap")
        try Self.provision(daemon, 0..<20)
        #expect(try Self.tally(daemon, ["snapshot", "create", place.path + "/snap"]).status == 0)
        // Paths the caller must change are -32602 naming `path`, not 2001 (which says: retry).
        for path in [place.path + "/snap", place.path + "/missing/snap", daemon.dataDirectory + "/snap", place.path + "/" + String(repeating: "n", count: 256), place.path + "/snap\u{0}x", "/proc/snap"] {
            let error = expectRPCError(code: -32602) { _ = try daemon.call("createSnapshot", ["path": .string(path)]) }
            #expect(error?.field == "path", "\(path): \(error.map { "\($0)" } ?? "no error")")
        }
        #expect(try daemon.terminate() == 0)
        // No trial copy can be made in /proc: not checked (2), and the snapshot is not called bad.
        let unchecked = try runProgram(Binaries.tally, ["snapshot", "verify", place.path + "/snap", "--scratch", "/proc"])
        #expect(unchecked.status == 2 && unchecked.stderr.contains("not found at fault") && !unchecked.stdout.contains("PROBLEM"), "\(unchecked)")
        let sst = try FileManager.default.contentsOfDirectory(atPath: place.path + "/snap").first { $0.hasSuffix(".sst") }!
        try Self.flipBit(place.path + "/snap/" + sst, at: 30)
        let verified = try runProgram(Binaries.tally, ["snapshot", "verify", place.path + "/snap", "--scratch", place.path])
        #expect(verified.status == 1)
        #expect(verified.stdout.contains("PROBLEM: \(sst): SHA-256"), "\(verified.stdout)")
        let restore = try Self.tallyd(["restore", "--from", place.path + "/snap", "--data-dir", daemon.dataDirectory])
        #expect(restore.status == 1)
        #expect(restore.stderr.contains("failed verification; nothing was changed"), "\(restore.stderr)")
        // Into a data directory it would create (and its parent): neither is left behind.
        let fresh = place.path + "/fresh"
        let refused = try Self.tallyd(["restore", "--from", place.path + "/snap", "--data-dir", fresh + "/data"])
        #expect(refused.status == 1 && !FileManager.default.fileExists(atPath: fresh), "\(refused.stderr)")
        try daemon.start()  // the old data is untouched
        #expect(try daemon.call("getStatus")["lastSequence"]?.numberText == "20")
        _ = try daemon.terminate()
    }

    @Test("restore refuses a data directory that is the snapshot, inside it, or holds it, and leaves the snapshot as it was (still verifying)")
    func restoreIntoTheSnapshot() throws {
        let daemon = try LiveDaemon().start()
        let place = TemporaryDirectory("tally-snap")
        try Self.provision(daemon, 0..<5)
        let snapshot = place.path + "/snap"
        _ = try daemon.call("createSnapshot", ["path": .string(snapshot)])
        #expect(try daemon.terminate() == 0)
        let before = try FileManager.default.contentsOfDirectory(atPath: snapshot).sorted()
        for target in [snapshot, snapshot + "/", snapshot + "/inner", place.path, place.path + "/../" + (place.path as NSString).lastPathComponent + "/snap"] {
            let restore = try Self.tallyd(["restore", "--from", snapshot, "--data-dir", target])
            #expect(restore.status == 1 && restore.stderr.contains("overlap"), "\(target): \(restore.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: snapshot).sorted() == before, "the snapshot was written to")
        let verified = try runProgram(Binaries.tally, ["snapshot", "verify", snapshot, "--scratch", place.path])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
    }

    @Test("a bit flipped in the WAL, or a truncated WAL, is refused at start")
    func walDamage() throws {
        for damage in ["flip", "truncate"] {
            let daemon = try LiveDaemon().start()
            try Self.provision(daemon, 0..<200)
            daemon.kill9()  // no flush at shutdown: the acknowledged events live in the WAL
            let wal = try #require(try Self.databaseFiles(daemon, suffix: ".log").max { (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int ?? 0) ?? 0 < (try? FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int ?? 0) ?? 0 })
            let size = try FileManager.default.attributesOfItem(atPath: wal)[.size] as! Int
            #expect(size > 10_000, "the WAL holds the writes")
            if damage == "flip" {
                try Self.flipBit(wal, at: size / 2)
                Self.expectStartRefused(daemon, ["restore"])
            } else {
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: wal))
                try handle.truncate(atOffset: UInt64(size / 2))
                try handle.close()
                // The database's files as the damage left them: a refused start keeps them so.
                func dataFiles() throws -> [String: Data] {
                    let db = daemon.dataDirectory + "/db"
                    let names = try FileManager.default.contentsOfDirectory(atPath: db).filter { $0.hasSuffix(".log") || $0.hasSuffix(".sst") || $0.hasPrefix("MANIFEST") || $0 == "CURRENT" }
                    return try Dictionary(uniqueKeysWithValues: names.map { ($0, try Data(contentsOf: URL(fileURLWithPath: db + "/" + $0))) })
                }
                let before = try dataFiles()
                Self.expectStartRefused(daemon, ["the anchor says it reached sequence 200", "rolled back", "restore"])
                let after = try dataFiles()
                #expect(after == before, "the refused start changed the database: \(before.keys.sorted()) became \(after.keys.sorted())")
            }
        }
    }

    @Test("a bit flipped in an SST block that holds only older records (a shadowed projection mark, which no read touches until a compaction does) is found by replay --verify and tally ledger verify")
    func shadowedBlockDamage() throws {
        let daemon = try LiveDaemon().start()
        try Self.provision(daemon, 0..<10, prefix: "old")
        #expect(try daemon.terminate() == 0)  // flush 1: a meta-family file with the mark at 10
        try daemon.start()
        try Self.provision(daemon, 0..<10, prefix: "new")
        #expect(try daemon.terminate() == 0)  // flush 2: a newer file with the mark at 20 shadows it
        let key = Data(KeyLayout.projectionSequenceKey)
        let marks = try Self.databaseFiles(daemon, suffix: ".sst").filter { try Data(contentsOf: URL(fileURLWithPath: $0)).range(of: key) != nil }
        #expect(marks.count == 2, "\(marks)")
        let older = try #require(marks.first)
        try Self.flipBit(older, at: 20)
        let replay = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        #expect(replay.status == 1, "the damaged older block went unnoticed: \(replay.stdout)\(replay.stderr)")
        #expect((replay.stdout + replay.stderr).contains("restore"), "\(replay.stdout)\(replay.stderr)")
        try daemon.start()
        let live = try Self.tally(daemon, ["ledger", "verify"])
        #expect(live.status != 0 && live.stderr.contains("damaged") && live.stderr.contains("restore"), "\(live.stdout)\(live.stderr)")
        _ = try daemon.terminate()
    }

    @Test("a bit flipped in each SST file is found by replay --verify; a deleted SST is refused at start")
    func sstDamage() throws {
        let daemon = try LiveDaemon().start()
        try Self.provision(daemon, 0..<50)
        #expect(try daemon.terminate() == 0)  // flushes: everything is in SST files
        let ssts = try Self.databaseFiles(daemon, suffix: ".sst")
        #expect(ssts.count >= 3)
        let clean = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        #expect(clean.status == 0, "\(clean.stdout)\(clean.stderr)")
        for sst in ssts {
            let original = try Data(contentsOf: URL(fileURLWithPath: sst))
            // Near the start (a data block), the middle, and the end (index, footer).
            for offset in [20, original.count / 2, original.count - 60] {
                try Self.flipBit(sst, at: offset)
                let replay = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
                #expect(replay.status == 1, "a flipped bit at \(offset) of \((sst as NSString).lastPathComponent) went unnoticed: \(replay.stdout)")
                #expect((replay.stdout + replay.stderr).contains("restore"), "\(replay.stdout)\(replay.stderr)")
                try original.write(to: URL(fileURLWithPath: sst))
            }
        }
        // On a live daemon: refused at start, or found by `tally ledger verify` (which reads every block).
        let largest = try ssts.max { try Data(contentsOf: URL(fileURLWithPath: $0)).count < Data(contentsOf: URL(fileURLWithPath: $1)).count }!
        let original = try Data(contentsOf: URL(fileURLWithPath: largest))
        try Self.flipBit(largest, at: original.count / 3)
        do {
            try daemon.start(timeoutSeconds: 10)
            let live = try Self.tally(daemon, ["ledger", "verify"])
            #expect(live.status != 0, "a flipped bit served silently: \(live.stdout)\(live.stderr)")
            #expect(live.stderr.contains("damaged") && live.stderr.contains("restore"), "says what is wrong and what to do: \(live.stderr)")
            _ = try? daemon.terminate()
        } catch {
            #expect("\(error)".contains("restore"), "\(error)")
        }
        try original.write(to: URL(fileURLWithPath: largest))
        try FileManager.default.removeItem(atPath: ssts[0])
        Self.expectStartRefused(daemon, ["missing", "restore"])
    }

    @Test("a damaged block read while deciding a command gets 2001 saying the database is damaged and to restore, not to retry (a retry reads it again)")
    func damagedBlockReadByTheWriter() throws {
        let daemon = try LiveDaemon().start()
        let padding = String(repeating: "x", count: 200)  // many data blocks to hit
        let connection = try daemon.connect()
        for i in 0..<400 { _ = try connection.call("provisionCustomer", ["customerId": .string("d\(i)"), "name": .string("\(padding) \(i)")]) }
        connection.close()
        #expect(try daemon.terminate() == 0)  // flushes: everything is in SST files
        var found = false
        search: for sst in try Self.databaseFiles(daemon, suffix: ".sst") {
            let original = try Data(contentsOf: URL(fileURLWithPath: sst))
            for fraction in [5, 15, 25, 35, 45] {
                try Self.flipBit(sst, at: original.count * fraction / 100)
                defer { try? original.write(to: URL(fileURLWithPath: sst)) }
                guard (try? daemon.start(timeoutSeconds: 10)) != nil else { continue }  // found at start: fine too
                defer { _ = try? daemon.terminate() }
                let client = try daemon.connect()
                defer { client.close() }
                // A customer whose record sits in the damaged block: a read of it says damaged…
                for i in 0..<400 {
                    do {
                        _ = try client.call("getCustomer", ["customerId": .string("d\(i)")])
                        continue
                    } catch let error as RPCError where error.code == 2001 {
                        #expect(error.message.contains("damaged"), "\(error.message)")
                    }
                    // …and so does a command that must read it to decide.
                    let refused = expectRPCError(code: 2001) { _ = try client.call("provisionCustomer", ["customerId": .string("d\(i)"), "name": "renamed"]) }
                    let message = refused?.message ?? ""
                    #expect(message.contains("damaged") && message.contains("tallyd restore") && !message.contains("retry"), "\(message)")
                    found = true
                    break search
                }
            }
        }
        #expect(found, "no flipped bit landed in a block a customer read touches")
    }

    @Test("a database that lost its CURRENT file is refused at start, twice (as a supervisor restarts), and none of its files is touched")
    func currentMissing() throws {
        let daemon = try LiveDaemon().start()
        try Self.provision(daemon, 0..<20)
        #expect(try daemon.terminate() == 0)
        let db = Ledger.databasePath(in: daemon.dataDirectory)
        let current = try String(contentsOfFile: db + "/CURRENT", encoding: .utf8)
        try FileManager.default.removeItem(atPath: db + "/CURRENT")
        let before = try FileManager.default.contentsOfDirectory(atPath: db).sorted()
        #expect(before.contains { $0.hasSuffix(".sst") } && before.contains { $0.hasPrefix("MANIFEST-") })
        for _ in 0..<2 { Self.expectStartRefused(daemon, ["no CURRENT file", "MANIFEST-", "restore"]) }
        // replay --verify, which an operator runs to see what is wrong, says the same.
        let diagnosis = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        #expect(diagnosis.status != 0 && ["no CURRENT file", "MANIFEST-", "damaged, not new", "restore"].allSatisfy(diagnosis.stderr.contains), "\(diagnosis)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: db).sorted() == before, "RocksDB made a new database over the old one")
        // The damage is the one file: put it back and the ledger is whole.
        try current.write(toFile: db + "/CURRENT", atomically: true, encoding: .utf8)
        let replay = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        #expect(replay.status == 0, "\(replay.stdout)\(replay.stderr)")
    }

    @Test("a first start killed while RocksDB created the database (LOCK, LOG, IDENTITY, MANIFEST, no CURRENT) starts over on the next start; with an anchor past 0 it is damage and refused")
    func interruptedCreation() throws {
        for anchorSequence in [nil, 0, 3] as [UInt64?] {
            let daemon = LiveDaemon()
            let db = Ledger.databasePath(in: daemon.dataDirectory)
            try FileManager.default.createDirectory(atPath: db, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: daemon.dataDirectory)
            for name in ["LOCK", "LOG", "IDENTITY", "MANIFEST-000001", "000001.dbtmp"] {
                #expect(FileManager.default.createFile(atPath: db + "/" + name, contents: Data(name == "MANIFEST-000001" ? [0x01, 0x02] : [])))
            }
            if let anchorSequence { try Anchor(sequence: anchorSequence, hash: EventRecord.genesisHash).write(dataDirectory: daemon.dataDirectory) }
            guard anchorSequence ?? 0 == 0 else {
                Self.expectStartRefused(daemon, ["no CURRENT file", "damaged, not new"])
                continue
            }
            try daemon.start()
            try Self.provision(daemon, 0..<3)
            #expect(try daemon.terminate() == 0)
            try daemon.start()
            #expect(try daemon.lastSequence() == 3, "anchor \(anchorSequence.map(String.init) ?? "none")")
            #expect(try daemon.terminate() == 0)
        }
    }

    @Test("a restore journal whose copy is gone while the old database is still in place (removed by hand) leaves the old database, and does not claim the restore finished")
    func journalWithoutItsCopy() throws {
        let (daemon, snapshots) = try Self.daemonWithSnapshot(taken: 10, more: 10)
        #expect(try daemon.terminate() == 0)
        let manifest = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: snapshots.path + "/snap/manifest.json"))))
        let sequence = try #require(manifest["sequence"]?.numberText), hash = try #require(manifest["headHash"]?.stringValue)
        // What a restore writes at its commit point, before it moves the databases.
        let journal = "tally-anchor 1 " + String(repeating: "0", count: 20 - sequence.count) + sequence + " " + hash + "\n"
        try Data(journal.utf8).write(to: URL(fileURLWithPath: daemon.dataDirectory + "/restore-pending"))
        try daemon.start()
        #expect(try daemon.lastSequence() == 20, "the old database is served")
        #expect(daemon.log.contains("never installed its copy") && !daemon.log.contains("finished an interrupted restore"), "\(daemon.log)")
        #expect(!FileManager.default.fileExists(atPath: daemon.dataDirectory + "/restore-pending"))
        try daemon.expectLedgerConsistent()
        #expect(try daemon.terminate() == 0)
    }

    @Test("a restore interrupted after it swapped the databases (journal still there, anchor not yet rewritten): replay --verify says a restore is pending, not that the database was rolled back; the next start finishes it")
    func replayOfAnInterruptedRestore() throws {
        let (daemon, snapshots) = try Self.daemonWithSnapshot(taken: 10, more: 10)
        #expect(try daemon.terminate() == 0)
        // The restored copy, made by a real restore elsewhere, swapped in as the restore does.
        let scratch = TemporaryDirectory("tally-restored")
        let restored = try Self.tallyd(["restore", "--from", snapshots.path + "/snap", "--data-dir", scratch.path + "/data"])
        try #require(restored.status == 0, "\(restored.stdout)\(restored.stderr)")
        let data = daemon.dataDirectory, db = Ledger.databasePath(in: data)
        try FileManager.default.moveItem(atPath: db, toPath: data + "/db.old-test")
        try FileManager.default.moveItem(atPath: Ledger.databasePath(in: scratch.path + "/data"), toPath: db)
        let manifest = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: snapshots.path + "/snap/manifest.json"))))
        let sequence = try #require(manifest["sequence"]?.numberText), hash = try #require(manifest["headHash"]?.stringValue)
        let journal = "tally-anchor 1 " + String(repeating: "0", count: 20 - sequence.count) + sequence + " " + hash + "\n"
        try Data(journal.utf8).write(to: URL(fileURLWithPath: data + "/restore-pending"))

        let replay = try Self.tallyd(["replay", "--data-dir", data, "--verify"])
        let text = replay.stdout + replay.stderr
        #expect(replay.status != 0 && text.contains("restore into") && text.contains("was interrupted") && text.contains("at sequence 10") && text.contains("tallyd serve"), "\(text)")
        #expect(!text.contains("rolled back"), "an interrupted restore is no rollback: \(text)")
        // Stopped while copying into a data directory without a database: replay says so too.
        let empty = TemporaryDirectory("tally-empty")
        try FileManager.default.createDirectory(atPath: empty.path + "/db.restore-tmp", withIntermediateDirectories: true)
        let partial = try Self.tallyd(["replay", "--data-dir", empty.path])
        #expect(partial.status != 0 && (partial.stdout + partial.stderr).contains("stopped while copying"), "\(partial.stdout)\(partial.stderr)")

        try daemon.start()
        #expect(try daemon.lastSequence() == 10, "the start finished the restore")
        #expect(try daemon.terminate() == 0)
        let after = try Self.tallyd(["replay", "--data-dir", data, "--verify"])
        #expect(after.status == 0, "\(after.stdout)\(after.stderr)")
    }

    @Test("a restore onto a disk too small for the snapshot fails saying so, and removes its partial copy (the space is free again)",
          .enabled(if: SmallDisk.canMount, "mounting a tmpfs needs root"))
    func restoreOntoAFullDisk() throws {
        let (daemon, snapshots) = try Self.daemonWithSnapshot(taken: 200, more: 0)
        #expect(try daemon.terminate() == 0)
        let snapshot = snapshots.path + "/snap"
        let size = try FileManager.default.contentsOfDirectory(atPath: snapshot).reduce(0) { total, name in
            total + ((try FileManager.default.attributesOfItem(atPath: snapshot + "/" + name)[.size] as? Int) ?? 0)
        }
        let disk = TemporaryDirectory("tally-small")
        let kilobytes = max(8, size / 2 / 1024)
        #expect(try runProgram("/bin/mount", ["-t", "tmpfs", "-o", "size=\(kilobytes)k", "tmpfs", disk.path]).status == 0)
        defer { _ = try? runProgram("/bin/umount", [disk.path]) }
        let data = disk.path + "/data"
        let restore = try Self.tallyd(["restore", "--from", snapshot, "--data-dir", data])
        #expect(restore.status == 1 && restore.stderr.contains("No space left"), "\(restore.stdout)\(restore.stderr)")
        #expect(!FileManager.default.fileExists(atPath: data + "/db.restore-tmp"), "the partial copy stayed behind")
        #expect(!FileManager.default.fileExists(atPath: data), "the data directory the restore made stayed behind")
    }

    @Test("a restore that can neither rewrite nor remove the anchor's copy beside the data directory says so and fails, instead of leaving a copy that refuses the next start")
    func restoreWithStuckAnchorCopy() throws {
        let (daemon, snapshots) = try Self.daemonWithSnapshot(taken: 10, more: 10)
        let snapshot = snapshots.path + "/snap"
        #expect(try daemon.terminate() == 0)
        // The copy cannot be replaced or unlinked: a directory (with a file in it) stands there.
        let mirror = Anchor.mirrorPath(in: daemon.dataDirectory)
        try FileManager.default.removeItem(atPath: mirror)
        try FileManager.default.createDirectory(atPath: mirror, withIntermediateDirectories: false)
        #expect(FileManager.default.createFile(atPath: mirror + "/x", contents: Data()))
        defer { try? FileManager.default.removeItem(atPath: mirror) }
        let restored = try Self.tallyd(["restore", "--from", snapshot, "--data-dir", daemon.dataDirectory])
        #expect(restored.status != 0, "\(restored.stdout)\(restored.stderr)")
        #expect((restored.stdout + restored.stderr).contains("delete it by hand"), "\(restored.stdout)\(restored.stderr)")
        // Once the operator removes it, the start finishes the restore at the snapshot's sequence.
        try FileManager.default.removeItem(atPath: mirror)
        try daemon.start()
        #expect(try daemon.lastSequence() == 10)
        #expect(try daemon.terminate() == 0)
    }

    @Test("a restore into a data directory whose parent is read-only (so there is no anchor copy beside it) succeeds and leaves a data directory that replays",
          .enabled(if: SmallDisk.canMount, "bind mounts need root"))
    func restoreUnderReadOnlyParent() throws {
        let (daemon, snapshots) = try Self.daemonWithSnapshot(taken: 10, more: 10)
        #expect(try daemon.terminate() == 0)
        // parent/ read-only, with the data directory (a writable bind mount) inside it.
        let parent = TemporaryDirectory("tally-ro-parent")
        let data = parent.path + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: false)
        var mounted: [String] = []
        defer { for point in mounted.reversed() { _ = try? runProgram("/bin/umount", [point]) } }
        for arguments in [["--bind", parent.path, parent.path], ["-o", "remount,bind,ro", parent.path], ["--bind", daemon.dataDirectory, data]] {
            let result = try runProgram("/bin/mount", arguments)
            try #require(result.status == 0, "mount \(arguments): \(result.stderr)")
            if arguments[0] == "--bind" { mounted.append(arguments.last!) }
        }
        let restored = try Self.tallyd(["restore", "--from", snapshots.path + "/snap", "--data-dir", data])
        #expect(restored.status == 0, "\(restored.stdout)\(restored.stderr)")
        #expect(!FileManager.default.fileExists(atPath: data + "/restore-pending"), "the restore finished")
        let replay = try Self.tallyd(["replay", "--data-dir", data, "--verify"])
        #expect(replay.status == 0 && replay.stdout.contains("events read: 10 (through sequence 10 of 10)"), "\(replay.stdout)\(replay.stderr)")
    }

    @Test("restore refuses a data directory whose database a daemon has open, also when its tallyd.lock was deleted")
    func restoreUnderDaemonWithoutLockFile() throws {
        let (daemon, snapshots) = try Self.daemonWithSnapshot(taken: 5, more: 5)
        let snapshot = snapshots.path + "/snap"
        try FileManager.default.removeItem(atPath: daemon.dataDirectory + "/tallyd.lock")
        let refused = try Self.tallyd(["restore", "--from", snapshot, "--data-dir", daemon.dataDirectory])
        #expect(refused.status != 0 && refused.stderr.contains("open in another process"), "\(refused.stdout)\(refused.stderr)")
        #expect(try daemon.lastSequence() == 10, "the daemon keeps its database")
        try Self.provision(daemon, 10..<11)
        #expect(try daemon.terminate() == 0)
        let replay = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        #expect(replay.status == 0 && replay.stdout.contains("11"), "\(replay.stdout)\(replay.stderr)")
    }

    @Test("a data directory whose database was rolled back to an older copy is refused at start")
    func rolledBack() throws {
        let daemon = try LiveDaemon().start()
        try Self.provision(daemon, 0..<10)
        #expect(try daemon.terminate() == 0)
        let db = daemon.dataDirectory + "/db"
        try FileManager.default.copyItem(atPath: db, toPath: daemon.directory.path + "/older")
        try daemon.start()
        try Self.provision(daemon, 10..<15)
        #expect(try daemon.terminate() == 0)
        try FileManager.default.removeItem(atPath: db)
        try FileManager.default.moveItem(atPath: daemon.directory.path + "/older", toPath: db)
        Self.expectStartRefused(daemon, ["the anchor says it reached sequence 15", "rolled back", "restore"])
        let replay = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        #expect(replay.status == 1)
        #expect(replay.stdout.contains("rolled back"))
        // Replaying to an earlier point reads only what is asked.
        let partial = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--to-sequence", "4"])
        #expect(partial.status == 0)
        #expect(partial.stdout.contains("projection customers: 4 replayed"), "\(partial.stdout)")
    }

    @Test("operator mistakes get a message and exit 1 or 64, and change nothing: restore from a non-snapshot, replay --as-of that is no timestamp, --to-sequence that is no sequence")
    func operatorMistakes() throws {
        let place = TemporaryDirectory("tally-mistakes")
        let target = place.path + "/new-data"
        #expect(FileManager.default.createFile(atPath: place.path + "/file", contents: Data("x".utf8)))
        for (source, says) in [(place.path, "is not a snapshot"), (place.path + "/missing", "/missing does not exist"), (place.path + "/file", "is a file, not a snapshot")] {
            let restore = try Self.tallyd(["restore", "--from", source, "--data-dir", target])
            #expect(restore.status == 1 && restore.stderr.contains(says), "\(restore.stderr)")
            #expect(!FileManager.default.fileExists(atPath: target), "a refused restore created \(target)")
        }
        let replay = try Self.tallyd(["replay", "--data-dir", target, "--as-of", "yesterday"])
        #expect(replay.status == 64 && replay.stderr.contains("--as-of"), "\(replay.stderr)")
        #expect(!replay.stderr.contains("<subcommand>"), "the replay command's usage, not the root's: \(replay.stderr)")
        for value in ["-1", "x"] {
            let bad = try Self.tallyd(["replay", "--data-dir", target, "--to-sequence", value])
            #expect(bad.status == 64 && bad.stderr.contains("The value '\(value)' is invalid for '--to-sequence"), "\(bad.stderr)")
        }
        let scratch = try runProgram(Binaries.tally, ["snapshot", "verify", place.path, "--scratch", place.path + "/missing"])
        #expect(scratch.status == 64 && scratch.stderr.contains("is not a directory"), "\(scratch.status) \(scratch.stderr)")
    }

    @Test("a whole data directory rolled back to an older copy (its anchor included) is refused at start, by the anchor's copy beside it")
    func wholeDataDirectoryRolledBack() throws {
        let daemon = try LiveDaemon().start()
        try Self.provision(daemon, 0..<10)
        #expect(try daemon.terminate() == 0)
        let older = daemon.directory.path + "/older-data"
        try FileManager.default.copyItem(atPath: daemon.dataDirectory, toPath: older)
        try daemon.start()
        try Self.provision(daemon, 10..<15)
        #expect(try daemon.terminate() == 0)
        let mirror = daemon.directory.path + "/.data.tally-anchor"
        #expect(FileManager.default.fileExists(atPath: mirror))
        try FileManager.default.removeItem(atPath: daemon.dataDirectory)
        try FileManager.default.copyItem(atPath: older, toPath: daemon.dataDirectory)
        Self.expectStartRefused(daemon, ["beside the data directory", "says it reached sequence 15", "rolled back", "delete \(mirror)"])
        let replay = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        #expect(replay.status == 1)
        #expect(replay.stdout.contains("beside the data directory"), "\(replay.stdout)")
        // With the inner anchor damaged too, replay --verify still reports what the copy says (so
        // its advice "no problem but this file" cannot pass on a rolled-back directory)…
        let inner = daemon.dataDirectory + "/anchor"
        let innerText = try Data(contentsOf: URL(fileURLWithPath: inner))
        try Data("garbage\n".utf8).write(to: URL(fileURLWithPath: inner))
        let both = try Self.tallyd(["replay", "--data-dir", daemon.dataDirectory, "--verify"])
        #expect(both.status == 1 && both.stdout.contains("is damaged") && both.stdout.contains("says it reached sequence 15"), "\(both.stdout)")
        // …and with it gone, the refused start does not claim to create it.
        try FileManager.default.removeItem(atPath: inner)
        do {
            try daemon.start(timeoutSeconds: 10)
            Issue.record("tallyd started on a rolled-back data directory")
            _ = try? daemon.terminate()
        } catch {
            #expect("\(error)".contains("says it reached sequence 15") && !"\(error)".contains("creating it"), "\(error)")
        }
        try innerText.write(to: URL(fileURLWithPath: inner))
        // Put back on purpose: deleting the copy, as the message says, lets the older state start.
        try FileManager.default.removeItem(atPath: mirror)
        try daemon.start()
        #expect(try daemon.lastSequence() == 10)
        #expect(try daemon.terminate() == 0)
        // A data directory deleted (or a volume not mounted) is a rollback to nothing: refused,
        // the copy kept, until it is deleted to start a new ledger there on purpose.
        try FileManager.default.removeItem(atPath: daemon.dataDirectory)
        Self.expectStartRefused(daemon, ["the log is empty", "beside the data directory", "says it reached sequence 10", "is its volume mounted?", "delete \(mirror)"])
        #expect(!FileManager.default.fileExists(atPath: daemon.dataDirectory + "/db"), "a refused start created a database")
        Self.expectStartRefused(daemon, ["the log is empty", "says it reached sequence 10"])
        try FileManager.default.removeItem(atPath: mirror)
        try daemon.start()
        #expect(try daemon.lastSequence() == 0)
        #expect(try daemon.terminate() == 0)
    }
}
