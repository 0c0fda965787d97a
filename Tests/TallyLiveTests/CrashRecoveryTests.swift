import Foundation
import Synchronization
import TallyClient
import TallyProtocol
import Testing

/// Acknowledged means durable: a stream of commands, kill -9 at a random moment, restart, and
/// every acknowledged command must be there, the chain intact, the projections equal to a replay;
/// a retry of the whole stream with the same idempotency keys applies nothing twice.
@Suite("crash recovery (kill -9)", .serialized)
struct CrashRecoveryTests {
    static let rounds = 20
    static let pipelineDepth = 16

    /// What one streaming client saw before the daemon died.
    final class StreamLog: Sendable {
        let sent = Mutex<[String]>([])
        let acknowledged = Mutex<[String]>([])
    }

    @Test("every acknowledged command survives kill -9, 20 times over")
    func killNineRepeatedly() throws {
        let daemon = LiveDaemon()
        var allAcknowledged: [String: String] = [:]  // customerId → name
        var allSent: [(id: String, name: String)] = []
        var lastSequence = 0

        for round in 0..<Self.rounds {
            try daemon.start()
            let log = StreamLog()
            let socket = daemon.socketPath
            let streamer = Thread { Self.stream(socket: socket, round: round, log: log) }
            streamer.start()
            daemon.kill9(afterFirst: { !log.acknowledged.withLock { $0.isEmpty } }, of: streamer, delay: 30_000...250_000)

            try daemon.start()
            let sent = log.sent.withLock { $0 }
            let acknowledged = log.acknowledged.withLock { $0 }
            #expect(!acknowledged.isEmpty, "round \(round): nothing was acknowledged before the kill")
            for id in acknowledged { allAcknowledged[id] = Self.name(id) }
            allSent += sent.map { ($0, Self.name($0)) }

            // Every acknowledged customer is there, with what was sent.
            let customers = try Self.allCustomers(daemon)
            for (id, name) in allAcknowledged {
                #expect(customers[id] == name, "round \(round): acknowledged customer \(id) lost or wrong after kill -9")
            }
            // The log continues without gaps and chains, and the projections equal a replay.
            let events = try Self.events(daemon, after: lastSequence)
            try Self.checkChain(events, from: lastSequence, round: round)
            let report = try daemon.call("verifyLedger")
            #expect(report["hashChainValid"] == true, "round \(round): \(report)")
            #expect(report["projectionsMatch"] == true, "round \(round): \(report)")
            lastSequence = Int(report["lastSequence"]?.numberText ?? "0")!
            #expect(customers.count == lastSequence, "one CUSTOMER_PROVISIONED per customer, no more")
            // Nothing unacknowledged was invented: every customer present was sent.
            let sentIDs = Set(allSent.map(\.id))
            #expect(customers.keys.allSatisfy { sentIDs.contains($0) })
            daemon.kill9()
        }

        // The client retries everything it ever sent, with the same keys: nothing is applied twice.
        try daemon.start()
        let connection = try daemon.connect()
        var duplicates = 0
        for chunk in stride(from: 0, to: allSent.count, by: 500) {
            let requests = allSent[chunk..<min(chunk + 500, allSent.count)].map { item in
                (method: "provisionCustomer", params: Self.params(id: item.id))
            }
            for result in try connection.callPipelined(requests) {
                let value = try result.get()
                if value["duplicate"] == true { duplicates += 1 }
            }
        }
        let status = try daemon.call("getStatus")
        let customers = try Self.allCustomers(daemon)
        #expect(customers.count == allSent.count)
        #expect(Int(status["lastSequence"]?.numberText ?? "0")! == allSent.count, "each customer provisioned exactly once")
        #expect(duplicates == lastSequence, "every command applied before the crashes answered as a duplicate")
        let report = try daemon.call("verifyLedger")
        #expect(report["hashChainValid"] == true && report["projectionsMatch"] == true)
        #expect(try daemon.terminate() == 0)
    }

    static func name(_ id: String) -> String { "name of \(id)" }

    static func params(id: String) -> JSONObject {
        ["customerId": .string(id), "name": .string(name(id)), "idempotencyKey": .string("key-\(id)")]
    }

    /// Streams provisionCustomer commands, `pipelineDepth` at a time, until the daemon dies.
    static func stream(socket: String, round: Int, log: StreamLog) {
        guard let connection = try? TallyConnection(socketPath: socket, timeoutSeconds: 10) else { return }
        var next = 0
        while true {
            var batch: [String] = []
            for _ in 0..<pipelineDepth {
                let id = "r\(round)-c\(next)"
                next += 1
                batch.append(id)
                let request: JSONValue = ["jsonrpc": "2.0", "id": .string(id), "method": "provisionCustomer", "params": .object(params(id: id))]
                log.sent.withLock { $0.append(id) }
                do { try connection.sendLine(request.serialized()) } catch { return }
            }
            for _ in batch {
                guard let line = try? connection.readLine(), let reply = try? JSONParser.parse(line) else { return }
                if reply["result"] != nil, let id = reply["id"]?.stringValue {
                    log.acknowledged.withLock { $0.append(id) }
                }
            }
        }
    }

    static func allCustomers(_ daemon: LiveDaemon) throws -> [String: String] {
        var result: [String: String] = [:]
        var after: JSONValue = .null
        repeat {
            var params: JSONObject = ["limit": 1000]
            if after != .null { params["after"] = after }
            let page = try daemon.call("listCustomers", params)
            for customer in page["customers"]?.arrayValue ?? [] {
                result[customer["id"]!.stringValue!] = customer["name"]?.stringValue
            }
            after = page["next"] ?? .null
        } while after != .null
        return result
    }

    static func events(_ daemon: LiveDaemon, after start: Int) throws -> [JSONValue] {
        var events: [JSONValue] = []
        var after = start
        while true {
            let page = try daemon.call("readLedger", ["after": .integer(after), "limit": 1000])
            let batch = page["events"]?.arrayValue ?? []
            events += batch
            guard let next = page["next"]?.numberText, let n = Int(next) else { break }
            after = n
        }
        return events
    }

    static func checkChain(_ events: [JSONValue], from start: Int, round: Int) throws {
        var expected = start + 1
        var previousHash: JSONValue?
        for event in events {
            #expect(event["sequence"] == .integer(expected), "round \(round): gap at \(expected)")
            if let previousHash { #expect(event["prevHash"] == previousHash, "round \(round): chain broken at \(expected)") }
            previousHash = event["hash"]
            expected += 1
        }
    }
}
