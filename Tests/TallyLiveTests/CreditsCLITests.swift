import Foundation
import Synchronization
import TallyProtocol
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `tally credits …` against the real daemon (a --test-clock one: timestamps are fixed).
@Suite("tally credits CLI against the real daemon", .serialized, SharedDaemonTrait(extraArguments: CreditClock.daemonArguments))
struct CreditsCLITests {
    let daemon: LiveDaemon

    init() throws { daemon = try SharedDaemon.get() }

    /// Runs `tally ARGS --socket <daemon>`.
    func tally(_ arguments: [String]) throws -> ProcessResult {
        try runProgram(Binaries.tally, arguments + ["--socket", daemon.socketPath], timeoutSeconds: 30)
    }

    /// Runs and expects exit `status` (0 by default), returning stdout.
    @discardableResult
    func tallyOK(_ arguments: [String], status: Int32 = 0, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let result = try tally(arguments)
        #expect(result.status == status, "tally \(arguments.joined(separator: " ")) exited \(result.status), expected \(status):\n\(result.stdout)\n\(result.stderr)", sourceLocation: sourceLocation)
        return result.stdout
    }

    func json(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue {
        try parseJSON(try tallyOK(arguments + ["--json"], sourceLocation: sourceLocation), sourceLocation: sourceLocation)
    }

    @Test("credits grant: every option reaches grantCredits; human and --json output; refusals exit 1 or 64")
    func grant() throws {
        let f = try CreditFixture(daemon, prefix: "cli")
        let expire = "2031-03-01T00:00:00.000Z", effective = "2031-02-01T00:00:00.000Z"
        let scheduled = try json([
            "credits", "grant", f.customer, f.currency, "12.5", "--type", "promotional", "--priority", "7", "--expire-at", expire,
            "--effective-at", effective, "--resource", "r1", "--name", "Welcome", "--comment", "hi", "--idempotency-key", "cli-g1",
        ])
        #expect(scheduled["grantType"] == "PROMOTIONAL" && scheduled["priority"] == 7 && scheduled["amount"] == "12.5", "\(scheduled.jsonText)")
        #expect(scheduled["expireAt"] == .string(expire) && scheduled["effectiveAt"] == .string(effective) && scheduled["status"] == "SCHEDULED")
        #expect(scheduled["resourceId"] == "r1" && scheduled["displayName"] == "Welcome" && scheduled["comment"] == "hi")
        let grants = try f.grants()
        #expect(grants.count == 1 && grants.first?["grantId"] == scheduled["grantId"], "\(grants)")

        let again = try tallyOK([
            "credits", "grant", f.customer, f.currency, "12.5", "--type", "PROMOTIONAL", "--priority", "7", "--expire-at", expire,
            "--effective-at", effective, "--resource", "r1", "--name", "Welcome", "--comment", "hi", "--idempotency-key", "cli-g1",
        ])
        #expect(again.contains("duplicate") && again.contains(scheduled["grantId"]?.stringValue ?? "?"), "\(again)")
        #expect(try f.grants().count == 1)

        let human = try tallyOK(["credits", "grant", f.customer, f.currency, "30"])
        #expect(human.contains("ACTIVE") && human.contains("PAID") && human.contains("remainingAmount") && human.contains("30"), "\(human)")
        #expect(try f.balance() == "30")

        for bad in [["credits", "grant", f.customer, f.currency, "ten"], ["credits", "grant", f.customer, f.currency, "1", "--priority", "101"],
                    ["credits", "grant", f.customer, f.currency, "1", "--type", "FREE"]] {
            let result = try tally(bad)
            #expect(result.status == 64, "\(bad): \(result.status) \(result.stderr)")
        }
        // What the daemon would refuse is refused before anything is sent, with the reason.
        let before = try daemon.lastSequence()
        for (bad, reason) in [("0", "greater than 0"), ("-1", "greater than 0"), ("1.0000000000001", "12 fractional digits"), ("007", "not a decimal")] {
            let result = try tally(["credits", "grant", f.customer, f.currency, "--", bad])
            #expect(result.status == 64 && result.stderr.contains(reason), "\(bad): \(result.status) \(result.stderr)")
        }
        for option in ["--expire-at", "--effective-at"] {
            let result = try tally(["credits", "grant", f.customer, f.currency, "1", option, "2026-01-01"])
            #expect(result.status == 64 && result.stderr.contains("RFC 3339"), "\(option): \(result.stderr)")
        }
        #expect(try daemon.lastSequence() == before)
        let missing = try tally(["credits", "grant", uniqueID("nocust"), f.currency, "1"])
        #expect(missing.status == 1 && missing.stderr.contains("CUSTOMER_NOT_FOUND"), "\(missing.stderr)")
    }

    @Test("credits void: VOIDED with the amount removed; again exits 1 with GRANT_NOT_ACTIVE")
    func void() throws {
        let f = try CreditFixture(daemon, prefix: "cli")
        let id = try f.grantId("10")
        _ = try f.use("4")
        let text = try tallyOK(["credits", "void", id, "--idempotency-key", "cli-v1"])
        #expect(text.contains("VOIDED") && text.contains("voidedAmount") && text.contains("6"), "\(text)")
        #expect(try f.balance() == "0")
        let duplicate = try json(["credits", "void", id, "--idempotency-key", "cli-v1"])
        #expect(duplicate["duplicate"] == true)
        let again = try tally(["credits", "void", id])
        #expect(again.status == 1 && again.stderr.contains("GRANT_NOT_ACTIVE") && again.stderr.contains("1012"), "\(again.stderr)")
        let unknown = try tally(["credits", "void", uniqueID("grant")])
        #expect(unknown.status == 1 && unknown.stderr.contains("GRANT_NOT_FOUND"), "\(unknown.stderr)")
    }

    @Test("credits balance: per pool, --currency/--resource, --as-of-sequence and --as-of")
    func balance() throws {
        let f = try CreditFixture(daemon, prefix: "cli")
        try f.grant("10")
        try f.grant("4", "PAID", ["resourceId": "gpu"])
        let before = try daemon.lastSequence()
        _ = try f.use("3")
        let table = try tallyOK(["credits", "balance", f.customer])
        let lines = table.split(separator: "\n").map(String.init)
        #expect(lines.first?.contains("BALANCE") == true && lines.first?.contains("OVERDRAFT") == true, "\(table)")
        #expect(lines.contains { $0.contains("(global)") && $0.contains(" 7 ") } && lines.contains { $0.contains("gpu") && $0.contains(" 4 ") }, "\(table)")

        let gpu = try json(["credits", "balance", f.customer, "--currency", f.currency, "--resource", "gpu"])
        #expect(gpu["balances"]?.arrayValue?.map { $0["balance"] } == ["4"], "\(gpu.jsonText)")
        let then = try json(["credits", "balance", f.customer, "--currency", f.currency, "--as-of-sequence", String(before)])
        #expect(then["balances"]?.arrayValue?.first?["balance"] == "10" && then.field("asOf.sequence") == .integer(before), "\(then.jsonText)")
        let human = try tallyOK(["credits", "balance", f.customer, "--currency", f.currency, "--as-of-sequence", String(before)])
        #expect(human.contains("as of sequence \(before)"), "\(human)")
        // As of the instant of the last event (the usage): the balance after it.
        let last = try daemon.lastSequence()
        let recordedAt = try #require(try daemon.call("readLedger", ["after": .integer(Int64(last - 1)), "limit": 1])["events"]?.arrayValue?.first?["recordedAt"]?.stringValue)
        let now = try json(["credits", "balance", f.customer, "--currency", f.currency, "--as-of", recordedAt])
        #expect(now["balances"]?.arrayValue?.first?["balance"] == "7", "\(now.jsonText)")
        let future = try tally(["credits", "balance", f.customer, "--as-of", "2100-01-01T00:00:00Z"])
        #expect(future.status == 1 && future.stderr.contains("is in the future") && future.stderr.contains("field asOf"), "\(future.stderr)")
        let both = try tally(["credits", "balance", f.customer, "--as-of", "2031-01-01T00:00:00Z", "--as-of-sequence", "3"])
        #expect(both.status == 64, "\(both.stderr)")
    }

    @Test("credits grants: a table of every grant, --status filters")
    func grants() throws {
        let f = try CreditFixture(daemon, prefix: "cli")
        let active = try f.grantId("10", "PAID", ["displayName": "Main"])
        let voided = try f.grantId("3")
        _ = try daemon.call("voidCreditGrant", ["grantId": .string(voided)])
        let table = try tallyOK(["credits", "grants", f.customer])
        #expect(table.contains("GRANT") && table.contains("REMAINING") && table.contains(active) && table.contains(voided) && table.contains("Main"), "\(table)")
        let onlyVoided = try json(["credits", "grants", f.customer, "--status", "voided"])
        #expect(onlyVoided["grants"]?.arrayValue?.map { $0["grantId"] } == [.string(voided)], "\(onlyVoided.jsonText)")
        let activeTable = try tallyOK(["credits", "grants", f.customer, "--status", "ACTIVE"])
        #expect(activeTable.contains(active) && !activeTable.contains(voided), "\(activeTable)")
        #expect(try tally(["credits", "grants", f.customer, "--status", "GONE"]).status == 64)
    }

    @Test("credits ledger: every entry with its breakdown; --json is getCreditLedger's entries; --currency filters")
    func ledger() throws {
        let f = try CreditFixture(daemon, prefix: "cli")
        let a = try f.grantId("2", "PROMOTIONAL")
        let b = try f.grantId("10")
        _ = try f.use("5")
        let table = try tallyOK(["credits", "ledger", f.customer])
        #expect(table.contains("CONSUMED") && table.contains("\(a)=2 \(b)=3") && table.contains(f.feature), "\(table)")
        let result = try json(["credits", "ledger", f.customer])
        #expect(result["entries"]?.arrayValue == (try f.ledger()), "\(result.jsonText)")
        let other = try tally(["credits", "ledger", f.customer, "--currency", uniqueID("nocur")])
        #expect(other.status == 1 && other.stderr.contains("CURRENCY_NOT_FOUND"), "\(other.stderr)")
        let consumed = try json(["credits", "ledger", f.customer, "--type", "consumed"])
        #expect(consumed["entries"]?.arrayValue?.count == 1)
    }

    @Test("credits ledger --follow prints new entries as they are appended, under the header's columns even after a wide amount")
    func ledgerFollow() throws {
        try Self.expectFollows(daemon, intervalMillis: 50, pauseSeconds: 0, firstAmount: "99999999999999999990.500000000001")
    }

    @Test("credits ledger --follow: entries wider than the columns printed so far (a long feature id, a large amount) come under a header of their own, in line with it")
    func ledgerFollowWiderLater() throws {
        try Self.expectFollows(daemon, intervalMillis: 50, pauseSeconds: 0, widerLater: true)
    }

    @Test("credits ledger --follow outlives the daemon's idle timeout: polls further apart than it reconnect")
    func ledgerFollowAcrossIdleTimeout() throws {
        let config = TemporaryDirectory()
        let path = try writeFile("limits:\n  idleTimeoutSeconds: 1\n", named: "tallyd.yaml", in: config)
        let daemon = try LiveDaemon(extraArguments: ["--config", path]).start()
        try Self.expectFollows(daemon, intervalMillis: 1500, pauseSeconds: 3)
        #expect(try daemon.terminate() == 0)
    }

    @Test("credits ledger --follow, when the daemon goes away, exits 2 saying the sequence to resume after")
    func ledgerFollowLosesTheDaemon() throws {
        let daemon = try LiveDaemon().start()
        let f = try CreditFixture(daemon, prefix: "lost")
        _ = try f.grantId("5")
        let last = try daemon.lastSequence()
        let directory = TemporaryDirectory()
        let (outPath, errPath) = (directory.path + "/out", directory.path + "/err")
        let (out, err) = (try openLogFile(outPath), try openLogFile(errPath))
        let process = try ChildProcess(Binaries.tally, ["credits", "ledger", f.customer, "--follow", "--interval-ms", "20", "--socket", daemon.socketPath], stdout: out, stderr: err)
        close(out)
        close(err)
        defer { if process.isRunning { process.signal(SIGKILL); process.waitUntilExit() } }
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, !((try? String(contentsOfFile: outPath, encoding: .utf8))?.contains("GRANTED") ?? false) { usleep(20_000) }
        // A client polling every 20 ms is still read for half a second, then cut off: it does not
        // hold the shutdown to its 5-second deadline.
        let stopping = Date()
        #expect(try daemon.terminate() == 0)
        #expect(Date().timeIntervalSince(stopping) < 4, "a busy client held the shutdown")
        #expect(process.wait(timeoutSeconds: 10) == 2)
        let message = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        #expect(message.contains("resume with --after \(last)"), "\(message)")
    }

    @Test("events send - on a pipe that pauses longer than the daemon's idle timeout reconnects and sends the rest")
    func eventsSendAcrossIdleTimeout() throws {
        let config = TemporaryDirectory()
        let path = try writeFile("limits:\n  idleTimeoutSeconds: 1\n", named: "tallyd.yaml", in: config)
        let daemon = try LiveDaemon(extraArguments: ["--config", path]).start()
        _ = try daemon.call("provisionCustomer", ["customerId": "paused"])
        let input = try ProcessPipe(), output = try ProcessPipe()
        let process = try ChildProcess(Binaries.tally, ["events", "send", "-", "--json", "--socket", daemon.socketPath], stdin: input.read, stdout: output.write)
        close(input.read)
        close(output.write)
        func send(_ keys: ClosedRange<Int>) {
            let lines = keys.map { #"{"customerId":"paused","eventName":"paused.call","idempotencyKey":"p-\#($0)"}"# + "\n" }.joined()
            _ = lines.withCString { write(input.write, $0, strlen($0)) }
        }
        send(1...2)
        sleep(3)  // the connection, idle, is closed by the daemon meanwhile
        send(3...4)
        close(input.write)
        let text = String(decoding: output.readToEnd(), as: UTF8.self)
        #expect(process.waitUntilExit() == 0, "\(text)")
        let summary = try parseJSON(text.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(summary["accepted"] == 4 && summary["failed"] == 0, "\(text)")

        // A pause in the middle of a batch, with a reply still unread: the reply is read from the
        // closed connection, the batch goes on a new one, every event is counted once.
        let batched = try ProcessPipe(), summaryPipe = try ProcessPipe()
        let second = try ChildProcess(Binaries.tally, ["events", "send", "-", "--json", "--batch", "3", "--socket", daemon.socketPath], stdin: batched.read, stdout: summaryPipe.write)
        close(batched.read)
        close(summaryPipe.write)
        for keys in [11...15, 16...20, 21...22] {
            let lines = keys.map { #"{"customerId":"paused","eventName":"paused.call","idempotencyKey":"p-\#($0)"}"# + "\n" }.joined()
            _ = lines.withCString { write(batched.write, $0, strlen($0)) }
            if keys.lowerBound < 21 { usleep(2_500_000) }
        }
        close(batched.write)
        let secondText = String(decoding: summaryPipe.readToEnd(), as: UTF8.self)
        #expect(second.waitUntilExit() == 0, "\(secondText)")
        let secondSummary = try parseJSON(secondText.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(secondSummary["accepted"] == 12 && secondSummary["duplicates"] == 0 && secondSummary["failed"] == 0, "\(secondText)")
        let sequence = try daemon.lastSequence()
        #expect(sequence == 1 + 16, "one event per key: \(sequence)")
        #expect(try daemon.terminate() == 0)
    }

    /// Follows a new customer's ledger; after `pauseSeconds` appends entries and expects them printed.
    /// With `widerLater`, the later entries are a larger amount and a deduction of a feature with a
    /// long id, so they come under a header of their own.
    static func expectFollows(_ daemon: LiveDaemon, intervalMillis: Int, pauseSeconds: UInt32, firstAmount: String = "5", widerLater: Bool = false) throws {
        let f = try CreditFixture(daemon, prefix: "cli")
        let feature = widerLater ? try f.newFeature(id: uniqueID("a-feature-id-well-beyond-the-column")) : f.feature
        let first = try f.grantId(firstAmount)
        let out = try ProcessPipe()
        let process: ChildProcess
        do {
            process = try ChildProcess(Binaries.tally, ["credits", "ledger", f.customer, "--follow", "--interval-ms", String(intervalMillis), "--socket", daemon.socketPath], stdout: out.write)
        } catch {
            close(out.read)
            close(out.write)
            throw error
        }
        close(out.write)
        defer {
            if process.isRunning { process.signal(SIGKILL) }
            process.waitUntilExit()
        }
        let text = Mutex("")
        let reader = Thread {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(out.read, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                text.withLock { $0 += String(decoding: buffer[0..<count], as: UTF8.self) }
            }
            close(out.read)
        }
        reader.start()
        func waitFor(_ needle: String) -> Bool {
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                if text.withLock({ $0.contains(needle) }) { return true }
                usleep(20_000)
            }
            return false
        }
        #expect(waitFor(first), "the existing entry is printed first: \(text.withLock { $0 })")
        sleep(pauseSeconds)
        #expect(process.isRunning, "the follower is still running")
        let second = try f.grantId(widerLater ? "99999999999999999990.500000000001" : "7")
        _ = try f.use("2", ["featureId": .string(feature)])
        #expect(waitFor(second) && waitFor("CONSUMED"), "new entries follow: \(text.withLock { $0 })")
        // SIGTERM: the child starts with a clean signal mask, so the CLI's own handling is exercised.
        process.signal(SIGTERM)
        #expect(process.wait(timeoutSeconds: 10) != nil, "tally credits ledger --follow stops on SIGTERM")
        let lines = text.withLock { $0 }.split(separator: "\n")
        #expect(lines.filter { $0.contains("SEQ") }.count == (widerLater ? 2 : 1), "headers: \(lines)")
        #expect(lines.filter { $0.contains("GRANTED") }.count == 2 && lines.filter { $0.contains("CONSUMED") }.count == 1, "each entry once: \(lines)")
        // Every row's AMOUNT and BALANCE end where the titles of the header above it end
        // (right-aligned), and its GRANT/FEATURE starts where that title starts; the rows printed
        // later included.
        var header: [Character]? = nil
        for line in lines.map(Array.init) {
            if String(line).contains("SEQ") {
                header = line
                continue
            }
            guard let header, String(line).contains("GRANTED") || String(line).contains("CONSUMED") else { continue }
            let text = String(header)
            for title in ["AMOUNT", "BALANCE"] {
                guard let end = text.range(of: title).map({ text.distance(from: text.startIndex, to: $0.upperBound) }) else { continue }
                #expect(line.count > end && line[end - 1].isNumber && line[end] == " ", "\(title) out of line:\n\(text)\n\(String(line))")
            }
            if let start = text.range(of: "GRANT/FEATURE").map({ text.distance(from: text.startIndex, to: $0.lowerBound) }) {
                #expect(line.count > start && line[start - 1] == " " && line[start] != " ", "GRANT/FEATURE out of line:\n\(text)\n\(String(line))")
            }
        }
    }

    @Test("credits usage: per feature by default, --group-by a dimension, --range")
    func usage() throws {
        let f = try CreditFixture(daemon, amountPerUnit: "2", prefix: "cli")
        try f.grant("100")
        _ = try f.use("3", ["dimensions": ["model": "small"]])
        _ = try f.use("4", ["dimensions": ["model": "large"]])
        let table = try tallyOK(["credits", "usage", f.customer])
        #expect(table.contains("FEATURE") && table.contains(f.feature) && table.contains("14") && table.contains("totals"), "\(table)")
        let grouped = try tallyOK(["credits", "usage", f.customer, "--group-by", "model", "--range", "LAST_DAY"])
        #expect(grouped.contains("MODEL") && grouped.contains("small") && grouped.contains("large") && grouped.contains("6") && grouped.contains("8"), "\(grouped)")
        let result = try json(["credits", "usage", f.customer, "--range", "last-week", "--group-by", "featureId"])
        #expect(result["series"]?.arrayValue?.map { $0["totalCredits"] } == ["14"], "\(result.jsonText)")
        #expect(try tally(["credits", "usage", f.customer, "--range", "LAST_CENTURY"]).status == 64)
    }

    @Test("credits auto-recharge: show, set, --disable keeps the configuration")
    func autoRecharge() throws {
        let f = try CreditFixture(daemon, prefix: "cli")
        let none = try tallyOK(["credits", "auto-recharge", f.customer, f.currency])
        #expect(none.contains("not configured"), "\(none)")
        let incomplete = try tally(["credits", "auto-recharge", f.customer, f.currency, "--enable"])
        #expect(incomplete.status == 64 && incomplete.stderr.contains("--threshold"), "\(incomplete.stderr)")
        let set = try json(["credits", "auto-recharge", f.customer, f.currency, "--enable", "--threshold", "10", "--target", "100", "--max-spend", "500"])
        #expect(set["isEnabled"] == true && set["thresholdValue"] == "10" && set["targetBalance"] == "100" && set["maxSpendLimit"] == "500", "\(set.jsonText)")
        let disabled = try tallyOK(["credits", "auto-recharge", f.customer, f.currency, "--disable"])
        #expect(disabled.contains("false") && disabled.contains("100"), "\(disabled)")
        let shown = try json(["credits", "auto-recharge", f.customer, f.currency])
        #expect(shown["isEnabled"] == false && shown["thresholdValue"] == "10" && shown["targetBalance"] == "100" && shown["maxSpendLimit"] == "500", "\(shown.jsonText)")
        let target = try json(["credits", "auto-recharge", f.customer, f.currency, "--target", "200"])
        #expect(target["isEnabled"] == false && target["targetBalance"] == "200" && target["thresholdValue"] == "10", "changes only the target: \(target.jsonText)")
        #expect(try tally(["credits", "auto-recharge", f.customer, f.currency, "--enable", "--disable"]).status == 64)
        let refused = try tally(["credits", "auto-recharge", f.customer, f.currency, "--threshold", "300"])
        #expect(refused.status == 1 && refused.stderr.contains("targetBalance"), "\(refused.stderr)")
        let period = try json(["credits", "auto-recharge", f.customer, f.currency, "--expiration-period", "week"])
        #expect(period["grantExpirationPeriod"] == "WEEK" && period["maxSpendLimit"] == "500", "\(period.jsonText)")
        let cleared = try json(["credits", "auto-recharge", f.customer, f.currency, "--no-max-spend", "--no-expiration"])
        #expect(cleared["maxSpendLimit"] == nil && cleared["grantExpirationPeriod"] == nil && cleared["targetBalance"] == "200", "\(cleared.jsonText)")
        #expect(try tally(["credits", "auto-recharge", f.customer, f.currency, "--max-spend", "5", "--no-max-spend"]).status == 64)
    }
}
