import Foundation
import Synchronization
import TallyClient
import TallyCore
import TallyProtocol
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Strict credit deductions under concurrency and kill -9: never applied twice, never lost once
/// acknowledged, every retry answered from the idempotency record.
@Suite("credits under concurrency and kill -9", .serialized)
struct CreditsConcurrencyTests {
    static let clients = 32
    static let callsPerClient = 2_000
    static let chunk = 50

    /// One call of a client's plan.
    struct Call: Sendable {
        enum Kind: Sendable { case original, retry, conflict }
        var key: String
        var value: Int
        var kind: Kind
    }

    /// What the daemon answered: a measurement id (and whether it was a duplicate) or an error code.
    enum Outcome: Sendable, Equatable {
        case applied(measurement: String, duplicate: Bool, balance: String)
        case failed(code: Int)
    }

    /// 80% new keys, 20% repeats of an earlier key of the same client: of those, one in twenty
    /// (1% of the calls) with another value.
    static func plan(client: Int, calls: Int) -> [Call] {
        var generator = SystemRandomNumberGenerator()
        var plan: [Call] = []
        var originals: [Int] = []
        for i in 0..<calls {
            if !originals.isEmpty, Int.random(in: 0..<100, using: &generator) < 20 {
                let original = plan[originals.randomElement(using: &generator)!]
                if Int.random(in: 0..<20, using: &generator) == 0 {
                    plan.append(Call(key: original.key, value: original.value + 1, kind: .conflict))
                } else {
                    plan.append(Call(key: original.key, value: original.value, kind: .retry))
                }
            } else {
                originals.append(plan.count)
                plan.append(Call(key: "c\(client)-k\(i)", value: 1, kind: .original))
            }
        }
        return plan
    }

    @Test("32 clients × 2,000 strict reportUsage on one customer: no double deduction, every retry answered, balance exact")
    func concurrentStrictUsage() throws {
        let daemon = try LiveDaemon().start()
        defer { _ = try? daemon.terminate() }
        let f = try CreditFixture(daemon, prefix: "conc")
        let plans = (0..<Self.clients).map { Self.plan(client: $0, calls: Self.callsPerClient) }
        let distinct = plans.reduce(0) { $0 + $1.filter { $0.kind == .original }.count }
        let granted = distinct * 8 / 10
        try f.grant(String(granted))

        let outcomes = Mutex<[[Outcome]]>(Array(repeating: [], count: Self.clients))
        let failures = Mutex<[String]>([])
        let socket = daemon.socketPath
        let (customer, feature) = (f.customer, f.feature)
        let started = Date()
        let group = DispatchGroup()
        for client in 0..<Self.clients {
            group.enter()
            let plan = plans[client]
            let thread = Thread {
                defer { group.leave() }
                do {
                    let connection = try TallyConnection(socketPath: socket, timeoutSeconds: 60)
                    defer { connection.close() }
                    var mine: [Outcome] = []
                    mine.reserveCapacity(plan.count)
                    for start in stride(from: 0, to: plan.count, by: Self.chunk) {
                        let requests = plan[start..<min(start + Self.chunk, plan.count)].map { call in
                            (method: "reportUsage", params: [
                                "customerId": .string(customer), "featureId": .string(feature), "value": .integer(call.value),
                                "idempotencyKey": .string(call.key), "strict": true,
                            ] as JSONObject)
                        }
                        for result in try connection.callPipelined(requests) {
                            switch result {
                            case .success(let value):
                                mine.append(.applied(
                                    measurement: value.field("measurement.id")?.stringValue ?? "?", duplicate: value["duplicate"] == true,
                                    balance: value.field("credit.balance")?.stringValue ?? "?"))
                            case .failure(let error):
                                mine.append(.failed(code: error.code))
                            }
                        }
                    }
                    outcomes.withLock { $0[client] = mine }
                } catch {
                    failures.withLock { $0.append("client \(client): \(error)") }
                }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        group.wait()
        let elapsed = Date().timeIntervalSince(started)
        print("credits concurrency: \(Self.clients) × \(Self.callsPerClient) strict reportUsage in \(String(format: "%.1f", elapsed)) s")
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")

        // Per key: the first call decides; retries must echo it, conflicts must be refused.
        var successes: [String: String] = [:]  // key → measurement id
        var insufficient = 0, conflicts = 0, retriedSuccesses = 0, problems: [String] = []
        let all = outcomes.withLock { $0 }
        for client in 0..<Self.clients {
            var first: [String: Outcome] = [:]
            for (call, outcome) in zip(plans[client], all[client]) {
                switch call.kind {
                case .original:
                    first[call.key] = outcome
                    switch outcome {
                    case .applied(let measurement, let duplicate, _):
                        if duplicate { problems.append("\(call.key): a first call answered duplicate") }
                        successes[call.key] = measurement
                    case .failed(let code):
                        if code != 1010 { problems.append("\(call.key): first call failed with \(code), not 1010") }
                        insufficient += 1
                    }
                case .retry:
                    switch (first[call.key], outcome) {
                    case (.applied(let m, _, let balance)?, .applied(let again, true, let balanceAgain)):
                        if m != again || balance != balanceAgain { problems.append("\(call.key): retry answered \(again)/\(balanceAgain), the original \(m)/\(balance)") }
                        retriedSuccesses += 1
                    case (.failed?, .failed(1010)): break
                    default: problems.append("\(call.key): retry of \(String(describing: first[call.key])) answered \(outcome)")
                    }
                case .conflict:
                    switch (first[call.key], outcome) {
                    case (.applied?, .failed(1011)): conflicts += 1
                    case (.failed?, .failed(1010)): break  // the key was never used: still insufficient
                    default: problems.append("\(call.key): reuse with another value after \(String(describing: first[call.key])) answered \(outcome)")
                    }
                }
            }
        }
        #expect(problems.isEmpty, "\(problems.count) problems, e.g. \(problems.prefix(10))")
        #expect(all.map(\.count) == plans.map(\.count), "every call answered")
        // Demand is 125% of the grant and every deduction costs 1: exactly the grant is spent.
        #expect(successes.count == granted, "\(successes.count) distinct successful deductions of \(distinct), granted \(granted)")
        #expect(insufficient == distinct - granted)
        #expect(Set(successes.values).count == successes.count, "every success has its own measurement")
        #expect(retriedSuccesses > 0 && conflicts > 0, "retries \(retriedSuccesses), conflicts \(conflicts)")

        var phase = Date()
        let ledger = try f.ledger()
        let consumed = ledger.filter { $0["eventType"] == "CREDITS_CONSUMED" }
        #expect(consumed.count == successes.count, "CREDITS_CONSUMED entries \(consumed.count) ≠ distinct successful keys \(successes.count)")
        let keys = consumed.compactMap { $0["idempotencyKey"]?.stringValue }
        #expect(Set(keys) == Set(successes.keys) && keys.count == Set(keys).count, "each successful key deducted exactly once")
        let expected = String(granted - successes.count)
        #expect(try f.balance() == expected)
        let sum = ledger.reduce(Amount.zero) { $0 + amount($1["amount"]) }
        #expect(sum.description == expected && ledger.last?["balanceAfter"] == .string(expected), "ledger sum \(sum)")
        print("credits concurrency: ledger read and checked in \(String(format: "%.1f", Date().timeIntervalSince(phase))) s")
        phase = Date()
        let report = try daemon.call("verifyLedger")
        #expect(report["hashChainValid"] == true && report["projectionsMatch"] == true, "\(report.jsonText.prefix(1000))")
        print("credits concurrency: verifyLedger in \(String(format: "%.1f", Date().timeIntervalSince(phase))) s")
        phase = Date()
        try expectCreditInvariants(daemon, f.customer)
        print("credits concurrency: invariants in \(String(format: "%.1f", Date().timeIntervalSince(phase))) s")
        phase = Date()

        #expect(try daemon.terminate() == 0)
        let replay = try runProgram(Binaries.tallyd, ["replay", "--data-dir", daemon.dataDirectory, "--verify"], timeoutSeconds: 120)
        #expect(replay.status == 0 && replay.stdout.contains("OK: the log chains and every stored projection matches it."), "\(replay.stdout)\n\(replay.stderr)")
        print("credits concurrency: stop + tallyd replay --verify in \(String(format: "%.1f", Date().timeIntervalSince(phase))) s")
        // The stored balance the replay matched is the one served after a restart.
        try daemon.start()
        #expect(try f.balance() == expected)
    }

    // MARK: - kill -9 during a strict-usage stream

    final class StreamLog: Sendable {
        let sent = Mutex<[String]>([])
        let acknowledged = Mutex<[String]>([])
    }

    static func usageParams(_ customer: String, _ feature: String, key: String) -> JSONObject {
        ["customerId": .string(customer), "featureId": .string(feature), "value": 1, "idempotencyKey": .string(key), "strict": true]
    }

    /// Streams strict reportUsage, 16 pipelined at a time, until the daemon dies.
    static func stream(socket: String, customer: String, feature: String, round: Int, log: StreamLog) {
        guard let connection = try? TallyConnection(socketPath: socket, timeoutSeconds: 10) else { return }
        var next = 0
        while true {
            var batch: [String] = []
            for _ in 0..<16 {
                let key = "r\(round)-u\(next)"
                next += 1
                batch.append(key)
                let request: JSONValue = ["jsonrpc": "2.0", "id": .string(key), "method": "reportUsage", "params": .object(usageParams(customer, feature, key: key))]
                log.sent.withLock { $0.append(key) }
                do { try connection.sendLine(request.serialized()) } catch { return }
            }
            for _ in batch {
                guard let line = try? connection.readLine(), let reply = try? JSONParser.parse(line) else { return }
                if reply["result"] != nil, let key = reply["id"]?.stringValue { log.acknowledged.withLock { $0.append(key) } }
            }
        }
    }

    @Test("kill -9 during a strict-usage stream: acknowledged deductions present exactly once; a full retry double-applies none")
    func killDuringStrictStream() throws {
        let daemon = try LiveDaemon().start()
        let f = try CreditFixture(daemon, prefix: "kill")
        let granted = 1_000_000
        try f.grant(String(granted))
        var allSent: [String] = []
        var allAcknowledged: Set<String> = []
        daemon.kill9()

        for round in 0..<4 {
            try daemon.start()
            let log = StreamLog()
            let socket = daemon.socketPath
            let (customer, feature) = (f.customer, f.feature)
            let streamer = Thread { Self.stream(socket: socket, customer: customer, feature: feature, round: round, log: log) }
            streamer.start()
            daemon.kill9(afterFirst: { !log.acknowledged.withLock { $0.isEmpty } }, of: streamer, delay: 100_000...350_000)

            try daemon.start()
            let acknowledged = log.acknowledged.withLock { $0 }
            allSent += log.sent.withLock { $0 }
            allAcknowledged.formUnion(acknowledged)
            #expect(!acknowledged.isEmpty, "round \(round): nothing acknowledged before the kill")

            let keys = try f.ledger(["eventType": "CREDITS_CONSUMED"]).compactMap { $0["idempotencyKey"]?.stringValue }
            let present = Set(keys)
            #expect(keys.count == present.count, "round \(round): a deduction appears twice")
            #expect(allAcknowledged.isSubset(of: present), "round \(round): acknowledged deductions lost: \(allAcknowledged.subtracting(present).prefix(5))")
            #expect(present.isSubset(of: Set(allSent)), "round \(round): deductions nobody sent")
            #expect(try f.balance() == String(granted - keys.count), "round \(round)")
            let report = try daemon.call("verifyLedger")
            #expect(report["hashChainValid"] == true && report["projectionsMatch"] == true, "round \(round): \(report.jsonText.prefix(1000))")
            daemon.kill9()
        }

        // Retry everything ever sent, with the same keys: what was applied answers duplicate.
        try daemon.start()
        let before = Set(try f.ledger(["eventType": "CREDITS_CONSUMED"]).compactMap { $0["idempotencyKey"]?.stringValue })
        let connection = try daemon.connect()
        var duplicates: Set<String> = []
        for start in stride(from: 0, to: allSent.count, by: 500) {
            let keys = Array(allSent[start..<min(start + 500, allSent.count)])
            let results = try connection.callPipelined(keys.map { (method: "reportUsage", params: Self.usageParams(f.customer, f.feature, key: $0)) })
            for (key, result) in zip(keys, results) {
                let value = try result.get()
                if value["duplicate"] == true { duplicates.insert(key) }
            }
        }
        connection.close()
        #expect(duplicates == before, "exactly the deductions already applied answer duplicate")
        let keys = try f.ledger(["eventType": "CREDITS_CONSUMED"]).compactMap { $0["idempotencyKey"]?.stringValue }
        #expect(keys.count == allSent.count && Set(keys) == Set(allSent), "every sent deduction exactly once after the retry")
        #expect(try f.balance() == String(granted - allSent.count))
        let report = try daemon.call("verifyLedger")
        #expect(report["hashChainValid"] == true && report["projectionsMatch"] == true)
        try expectCreditInvariants(daemon, f.customer)
        #expect(try daemon.terminate() == 0)
    }

    @Test("8 clients race the same 300 keys (half with another value): per key exactly one deduction, the rest duplicates of it or conflicts")
    func clientsRaceOneKey() throws {
        let daemon = try LiveDaemon().start()
        defer { _ = try? daemon.terminate() }
        let f = try CreditFixture(daemon, prefix: "race")
        try f.grant("100000")
        let keys = (0..<300).map { "race-\($0)" }
        let clients = 8
        /// What a client was answered for a key: the measurement (and its value) or an error code.
        enum Answer: Sendable, Equatable {
            case applied(measurement: String, duplicate: Bool, value: String)
            case failed(code: Int)
        }
        let outcomes = Mutex<[[Answer]]>(Array(repeating: [], count: clients))
        let socket = daemon.socketPath
        let (customer, feature) = (f.customer, f.feature)
        let group = DispatchGroup()
        for client in 0..<clients {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                guard let connection = try? TallyConnection(socketPath: socket, timeoutSeconds: 60) else { return }
                defer { connection.close() }
                // Odd clients send value 2 for the same keys: a different payload.
                let requests = keys.map { key in
                    (method: "reportUsage", params: [
                        "customerId": .string(customer), "featureId": .string(feature), "value": .integer(1 + client % 2),
                        "idempotencyKey": .string(key), "strict": true,
                    ] as JSONObject)
                }
                let results = (try? connection.callPipelined(requests)) ?? []
                let mine: [Answer] = results.map { result in
                    switch result {
                    case .success(let value):
                        .applied(measurement: value.field("measurement.id")?.stringValue ?? "?", duplicate: value["duplicate"] == true, value: value.field("measurement.value")?.numberText ?? "?")
                    case .failure(let error): .failed(code: error.code)
                    }
                }
                outcomes.withLock { $0[client] = mine }
            }
            thread.start()
        }
        group.wait()
        let all = outcomes.withLock { $0 }
        #expect(all.allSatisfy { $0.count == keys.count }, "every client got every reply")
        var consumed = 0
        for (k, key) in keys.enumerated() {
            let answers = all.indices.map { (client: $0, outcome: all[$0][k]) }
            let firsts = answers.filter { if case .applied(_, false, _) = $0.outcome { true } else { false } }
            #expect(firsts.count == 1, "\(key): \(firsts.count) clients applied it")
            guard let first = firsts.first, case .applied(let measurement, _, let value) = first.outcome else { continue }
            consumed += Int(value) ?? 0
            for answer in answers where answer.client != first.client {
                if answer.client % 2 == first.client % 2 {
                    #expect(answer.outcome == .applied(measurement: measurement, duplicate: true, value: value), "\(key), client \(answer.client): \(answer.outcome)")
                } else {
                    #expect(answer.outcome == .failed(code: 1011), "\(key), client \(answer.client) sent another value: \(answer.outcome)")
                }
            }
        }
        #expect(try f.balance() == String(100_000 - consumed))
        #expect(try f.ledger(["eventType": "CREDITS_CONSUMED"]).count == keys.count)
        try expectCreditInvariants(daemon, f.customer)
    }
}
