import Foundation
import Synchronization
import TallyClient
import TallyProtocol
import Testing

/// Acknowledged raw events survive kill -9 and are counted exactly once: reportEvent batches are
/// streamed, the daemon is killed at a random moment, and after a restart every acknowledged event
/// is in the usage; a retry of the whole stream with the same keys adds nothing twice.
@Suite("usage crash recovery (kill -9 during reportEvent)", .serialized)
struct UsageCrashTests {
    static let rounds = 5
    static let batchSize = 200
    static let pipelineDepth = 2

    /// What the streaming client saw before the daemon died: batch numbers.
    final class StreamLog: Sendable {
        let sent = Mutex<[Int]>([])
        let acknowledged = Mutex<[Int]>([])
        let problems = Mutex<[String]>([])
    }

    static func batch(_ customerId: String, _ eventName: String, round: Int, number: Int) -> [JSONValue] {
        (0..<batchSize).map { i in
            usageEvent(customerId, eventName, key: "r\(round)-b\(number)-e\(i)", dimensions: ["region": i % 2 == 0 ? "us" : "eu", "n": "\(i)"])
        }
    }

    /// Streams reportEvent batches, `pipelineDepth` at a time, until the daemon dies.
    static func stream(socket: String, customerId: String, eventName: String, round: Int, log: StreamLog) {
        guard let connection = try? TallyConnection(socketPath: socket, timeoutSeconds: 10) else { return }
        var next = 0
        while true {
            var numbers: [Int] = []
            for _ in 0..<pipelineDepth {
                let number = next
                next += 1
                numbers.append(number)
                let request: JSONValue = ["jsonrpc": "2.0", "id": .integer(number), "method": "reportEvent",
                                          "params": ["events": .array(batch(customerId, eventName, round: round, number: number))]]
                log.sent.withLock { $0.append(number) }
                do { try connection.sendLine(request.serialized()) } catch { return }
            }
            for _ in numbers {
                guard let line = try? connection.readLine(), let reply = try? JSONParser.parse(line) else { return }
                guard let result = reply["result"], let id = reply["id"]?.intValue else {
                    log.problems.withLock { $0.append("an error reply: \(reply.jsonText.prefix(300))") }
                    continue
                }
                if result["accepted"]?.intValue != batchSize || result["duplicates"] != 0 || result["rejected"] != [] {
                    log.problems.withLock { $0.append("batch \(id) of fresh events: \(result.jsonText.prefix(300))") }
                }
                log.acknowledged.withLock { $0.append(id) }
            }
        }
    }

    /// The customer's usage of the COUNT feature, two ways: the entitlement's currentUsage (all
    /// time, unlimited plan) and the history's eventCount.
    static func usage(_ daemon: LiveDaemon, _ customerId: String, _ featureId: String) throws -> (current: Int, history: Int) {
        let current = Int(try daemon.entitlement(customerId, featureId)["currentUsage"]?.stringValue ?? "") ?? -1
        let history = try daemon.history(customerId, featureId, start: "2000-01-01T00:00:00Z", ["granularity": "MONTH"])
        let count = history["series"]?.arrayValue?.first?["eventCount"]?.intValue ?? 0
        #expect(history["series"]?.arrayValue?.first?["total"]?.stringValue.flatMap { Int($0) } ?? 0 == count, "COUNT total = eventCount: \(history.jsonText)")
        return (current, count)
    }

    /// The time series grouped by region (events per region, all time) and the customer's
    /// dimension keys: each batch is half "us", half "eu", keyed by "region" and "n".
    static func byRegion(_ daemon: LiveDaemon, _ customerId: String, _ featureId: String) throws -> (regions: [String: Int], keys: [String]) {
        let history = try daemon.history(customerId, featureId, start: "2000-01-01T00:00:00Z", ["granularity": "MONTH", "groupBy": ["region"]])
        var regions: [String: Int] = [:]
        for series in history["series"]?.arrayValue ?? [] {
            let region = series["tags"]?.arrayValue?.first?["value"]?.stringValue ?? "?"
            regions[region, default: 0] += (series["points"]?.arrayValue ?? []).reduce(0) { $0 + ($1["eventCount"]?.intValue ?? 0) }
        }
        let keys = try daemon.call("listDimensionKeys", ["customerId": .string(customerId)])["keys"]?.arrayValue?.compactMap(\.stringValue) ?? []
        return (regions, keys.sorted())
    }

    @Test("every acknowledged event is counted exactly once after kill -9; a full retry adds nothing twice (5 rounds)")
    func killNineDuringReportEvent() throws {
        let daemon = LiveDaemon()
        try daemon.start()
        let customer = try daemon.newCustomer("crash")
        let eventName = uniqueID("crashevt")
        let feature = try daemon.newMeteredFeature("crashcount", meter: ["eventName": .string(eventName), "aggregation": "COUNT"])
        try daemon.subscribe(customer, entitlements: [["featureId": .string(feature), "hasUnlimitedUsage": true]])
        var distinct = 0  // events in the ledger after each round's retry

        for round in 0..<Self.rounds {
            let log = StreamLog()
            let socket = daemon.socketPath
            let streamer = Thread { Self.stream(socket: socket, customerId: customer, eventName: eventName, round: round, log: log) }
            streamer.start()
            daemon.kill9(afterFirst: { !log.acknowledged.withLock { $0.isEmpty } }, of: streamer, delay: 100_000...400_000)

            try daemon.start()
            let sent = log.sent.withLock { $0 }
            let acknowledged = log.acknowledged.withLock { $0 }
            #expect(log.problems.withLock { $0 } == [], "round \(round)")
            #expect(!acknowledged.isEmpty, "round \(round): nothing was acknowledged before the kill")

            // Every acknowledged event is counted, once; nothing that was never sent is.
            let afterCrash = try Self.usage(daemon, customer, feature)
            let acknowledgedEvents = acknowledged.count * Self.batchSize
            #expect(afterCrash.current == afterCrash.history, "round \(round): currentUsage \(afterCrash.current) vs history \(afterCrash.history)")
            #expect(afterCrash.current >= distinct + acknowledgedEvents, "round \(round): acknowledged events lost: \(afterCrash.current) < \(distinct) + \(acknowledgedEvents)")
            #expect(afterCrash.current <= distinct + sent.count * Self.batchSize, "round \(round): more usage than events sent")
            // The grouped time series and the dimension keys agree with the totals.
            let seriesAfterCrash = try Self.byRegion(daemon, customer, feature)
            #expect(seriesAfterCrash.regions == ["us": afterCrash.current / 2, "eu": afterCrash.current / 2], "round \(round): \(seriesAfterCrash.regions) for \(afterCrash.current) events")
            #expect(seriesAfterCrash.keys == ["n", "region"], "round \(round): \(seriesAfterCrash.keys)")

            // Retry the whole stream (acknowledged or not) with the same keys.
            let connection = try daemon.connect()
            var accepted = 0, duplicates = 0
            let requests = sent.map { number in
                (method: "reportEvent", params: ["events": JSONValue.array(Self.batch(customer, eventName, round: round, number: number))] as JSONObject)
            }
            for result in try connection.callPipelined(requests) {
                let value = try result.get()
                #expect(value["rejected"] == [], "round \(round): \(value.jsonText.prefix(300))")
                accepted += value["accepted"]?.intValue ?? 0
                duplicates += value["duplicates"]?.intValue ?? 0
            }
            connection.close()
            let total = sent.count * Self.batchSize
            #expect(accepted + duplicates == total, "round \(round): \(accepted) + \(duplicates) ≠ \(total)")
            #expect(duplicates == afterCrash.current - distinct, "round \(round): the events already counted are exactly the duplicates")
            distinct += total
            let afterRetry = try Self.usage(daemon, customer, feature)
            #expect(afterRetry.current == distinct && afterRetry.history == distinct, "round \(round): usage \(afterRetry) after the retry, \(distinct) distinct events sent")
            let seriesAfterRetry = try Self.byRegion(daemon, customer, feature)
            #expect(seriesAfterRetry.regions == ["us": distinct / 2, "eu": distinct / 2], "round \(round): \(seriesAfterRetry.regions) after the retry, \(distinct) distinct events")
            #expect(seriesAfterRetry.keys == ["n", "region"])

            // A second retry is all duplicates and appends nothing.
            let sequence = try daemon.lastSequence()
            let again = try daemon.call("reportEvent", ["events": .array(Self.batch(customer, eventName, round: round, number: sent.last ?? 0))])
            #expect(again["accepted"] == 0 && again["duplicates"] == .integer(Self.batchSize), "\(again.jsonText.prefix(300))")
            #expect(try daemon.lastSequence() == sequence)
            try daemon.expectLedgerConsistent()
        }
        #expect(try daemon.terminate() == 0)
    }
}
