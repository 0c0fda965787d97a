// tally-scenarios: the usage, credit, replay and snapshot benchmarks of docs/performance.md
// (sections 3-8), each against a same-run raw RocksDB baseline. Run against a release tallyd;
// Benchmarks/run-scenarios.sh drives them all.
import ArgumentParser
import BenchSupport
import Foundation
import Synchronization
import RocksDB
import TallyClient
import TallyCore
import TallyProtocol
import TallyStorage

@main
struct Scenarios: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tally-scenarios",
        abstract: "Usage, credit, replay and snapshot benchmarks against same-run raw RocksDB baselines.",
        subcommands: [Setup.self, Ingest.self, Fill.self, Queries.self, Strict.self, Latency.self, SnapshotUnderLoad.self, ReplayBench.self, Subscriptions.self, HeavyReads.self]
    )
}

struct Common: ParsableArguments {
    @Option(help: "The daemon's socket.") var socket: String
    @Option(help: "The daemon's data directory (read-only opens for baselines).") var dataDir: String
}

let dims10 = (0..<10).map { "r\($0)" }
let models10 = (0..<10).map { "m\($0)" }

// MARK: setup

struct Setup: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Catalog, customers and credit grants for every scenario.")
    @OptionGroup var common: Common
    @Option var ingestClients = 4
    @Option var strictClients = 64

    func run() throws {
        let c = try TallyConnection(socketPath: common.socket, timeoutSeconds: 600)
        _ = try call(c, "defineCurrency", ["currencyId": "credits", "displayName": "Credits"])
        // 1: plain COUNT meter. 2+4: COUNT meter, credit-backed (one deduction per event). 3: reportUsage, credit-backed.
        _ = try call(c, "defineFeature", ["featureId": "ingest-calls", "type": "METERED", "meter": ["eventName": "ingest.call", "aggregation": "COUNT"]])
        _ = try call(c, "defineFeature", ["featureId": "gen-calls", "type": "METERED", "meter": ["eventName": "gen.call", "aggregation": "COUNT"],
                                          "creditCost": ["currencyId": "credits", "amountPerUnit": "0.001"]])
        _ = try call(c, "defineFeature", ["featureId": "strict-units", "type": "METERED", "creditCost": ["currencyId": "credits", "amountPerUnit": "1"]])
        var customers = (0..<ingestClients).map { "ingest-\($0)" } + (0..<strictClients).map { "strict-\($0)" } + ["hist-0"]
        customers += (0..<8).map { "fill-\($0)" }
        for id in customers {
            _ = try call(c, "provisionCustomer", ["customerId": .string(id), "name": .string(id), "email": .string("\(id)@example.com")])
        }
        for id in customers where id.hasPrefix("strict") || id.hasPrefix("hist") {
            _ = try call(c, "grantCredits", ["customerId": .string(id), "currencyId": "credits", "amount": "1000000000", "grantType": "PAID"])
        }
        print("setup: \(customers.count) customers, features ingest-calls, gen-calls (credit-backed), strict-units (credit-backed)")
    }
}

// MARK: 3. reportEvent ingest

struct Ingest: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "reportEvent batches from pipelining clients (one customer each) vs raw synced batches of the daemon's own records.")
    @OptionGroup var common: Common
    @Option var clients = 4
    @Option var eventsPerRequest = 1000
    @Option var requestsPerClient = 25
    @Option var pipeline = 2
    @Option var rounds = 3
    @Option var baselineSeconds = 2.0
    @Option(help: "Raw batch size of the baseline (default: events per request).") var baselineGroup: Int?
    @Option var tag = "i"
    @Option(help: "Event name (ingest.call: COUNT meter, no credits).") var eventName = "ingest.call"
    @Option var customerPrefix = "ingest"
    @Option(help: "The feature metering --event-name, whose usage cells the write-set baseline samples.") var featureId = "ingest-calls"
    @Option(help: "Usage cells per event in the write-set baseline (this load's events fall in a MINUTE cell of their own nearly always; its HOUR, DAY and period cells are shared).") var writeSetCells = 1

    func lines(round: String) -> [[[UInt8]]] {
        let base = nowMicros()
        return (0..<clients).map { client in
            (0..<requestsPerClient).map { r in
                let events = (0..<eventsPerRequest).map { e in
                    let n = r * eventsPerRequest + e
                    return EventSpec(customerId: "\(customerPrefix)-\(client)", eventName: eventName, idempotencyKey: "\(tag)\(round)-\(client)-\(n)",
                                     timestamp: rfc3339(micros: base - Int64(n % 3600) * 1_000_000), dimensions: [("region", dims10[n % 10]), ("model", models10[(n / 10) % 10])])
                }
                return reportEventLine(id: r + 1, events: events)
            }
        }
    }

    func run() throws {
        let perRound = clients * requestsPerClient * eventsPerRequest
        print("== ingest: reportEvent, \(clients) clients x \(requestsPerClient) requests x \(eventsPerRequest) events, pipeline \(pipeline), \(rounds) rounds (\(perRound) events each)")
        // Warm-up round, whose records become the baseline's records.
        _ = try runLoad(socket: common.socket, lines: lines(round: "w\(nowMicros())").map { Array($0.prefix(2)) }, pipeline: pipeline)
        let records = SampleRecords(eventRecords: try DaemonDatabase.lastEventRecords(dataDir: common.dataDir, count: eventsPerRequest))
        let group = baselineGroup ?? eventsPerRequest
        let parent = (common.dataDir as NSString).deletingLastPathComponent
        print(f("   baseline: raw synced WriteBatches of %d of the daemon's own EVENT_RECEIVED records (%.0f B avg), temp dir under %@", group, records.averageEventBytes, parent))
        var before = try rawBatchRate(parent: parent, records: records, group: group, atLeast: perRound, seconds: baselineSeconds)
        // The least the engine must write for these events: the record, its idempotency record
        // and a usage cell each (the daemon's own bytes), without any of the engine's CPU.
        let writeSetRecords = SampleRecords(
            eventRecords: records.events,
            idempotency: try DaemonDatabase.records(dataDir: common.dataDir, family: KeyLayout.idempotencyFamily, prefix: Array(IdempotencyFamily.event.utf8), count: eventsPerRequest),
            cells: try DaemonDatabase.records(dataDir: common.dataDir, family: KeyLayout.projectionsFamily,
                                              prefix: KeyLayout.usageSeriesPrefix(customerId: "\(customerPrefix)-0", featureId: featureId, granularity: .minute), count: eventsPerRequest))
        let writeSet = RawBaseline.WriteSet.ingest(cellsPerEvent: writeSetCells)
        print(f("   write-set baseline: the same, plus per event an idempotency record (%d sampled) and %d usage cell(s) (%d sampled), distinct keys", writeSetRecords.idempotency.count, writeSetCells, writeSetRecords.cells.count))
        var setBefore = try rawBatchRate(parent: parent, records: writeSetRecords, group: group, atLeast: perRound, seconds: baselineSeconds, writeSet: writeSet)
        var ratios: [Double] = []
        var setRatios: [Double] = []
        var ceilings: [Double] = []
        var allLatencies: [Double] = []
        for round in 1...rounds {
            let built = lines(round: "\(round)-\(nowMicros())")
            let headBefore = try DaemonDatabase.lastSequence(dataDir: common.dataDir)
            let outcome = try runLoad(socket: common.socket, lines: built, pipeline: pipeline)
            let headAfter = try DaemonDatabase.lastSequence(dataDir: common.dataDir)
            let after = try rawBatchRate(parent: parent, records: records, group: group, atLeast: perRound, seconds: baselineSeconds)
            let setAfter = try rawBatchRate(parent: parent, records: writeSetRecords, group: group, atLeast: perRound, seconds: baselineSeconds, writeSet: writeSet)
            let events = Double(outcome.completed * eventsPerRequest)
            let rate = events / outcome.wall
            let ratio = rate / ((before + after) / 2)
            ratios.append(ratio)
            setRatios.append(rate / ((setBefore + setAfter) / 2))
            ceilings.append((setBefore + setAfter) / (before + after))
            allLatencies += outcome.latencies
            let l = outcome.latencies
            print(f("round %d: %.0f events/s (%d requests in %.2f s, %llu log records); request latency p50 %@ p99 %@; errors %@", round, rate, outcome.completed, outcome.wall,
                    headAfter - headBefore, ms(percentile(l, 0.5)), ms(percentile(l, 0.99)), outcome.errorText))
            print(f("   raw before/after: %.0f / %.0f records/s => ratio %.3fx; write set before/after: %.0f / %.0f events/s => ratio %.3fx", before, after, ratio,
                    setBefore, setAfter, setRatios.last!))
            before = after
            setBefore = setAfter
        }
        print(f("RATIO ingest (median of %d): %.3fx raw synced batches of %d  [%@]", ratios.count, median(ratios), group, ratios.map { f("%.3f", $0) }.joined(separator: ", ")))
        print(f("RATIO ingest ÷ raw write set (median): %.3fx [%@]; raw write set ÷ raw events (the ceiling of the first ratio): %.3fx [%@]", median(setRatios),
                setRatios.map { f("%.3f", $0) }.joined(separator: ", "), median(ceilings), ceilings.map { f("%.3f", $0) }.joined(separator: ", ")))
    }
}

// MARK: fill (1M events for one customer over 30 days, or filler for replay/snapshot)

struct Fill: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Many events over 30 days (2 dimensions x 10 values), reportEvent batches from several clients.")
    @OptionGroup var common: Common
    @Option var events = 1_000_000
    @Option var clients = 4
    @Option var eventsPerRequest = 10_000
    @Option var pipeline = 2
    @Option(help: "One customer for all clients, or with --customer-per-client, <customer>-<client>.") var customer = "hist-0"
    @Flag var customerPerClient = false
    @Option var eventName = "gen.call"
    @Option var days = 30
    @Option var tag = "f"
    @Option(help: "Stop after this many seconds (reports what was done).") var maxSeconds = 900.0

    func run() throws {
        let end = nowMicros()
        let span = Int64(days) * 86_400_000_000
        let requests = events / eventsPerRequest
        let perClient = requests / clients
        let chunk = 10 // requests built per chunk per client, so building overlaps nothing big
        var done = 0
        var wall = 0.0
        var latencies: [Double] = []
        var errors = 0
        let run = "\(tag)\(nowMicros())"
        var r0 = 0
        let clock = ContinuousClock()
        let began = clock.now
        while r0 < perClient, (clock.now - began).seconds < maxSeconds {
            let count = min(chunk, perClient - r0)
            let built: [[[UInt8]]] = (0..<clients).map { client in
                (r0..<(r0 + count)).map { r in
                    let evs = (0..<eventsPerRequest).map { e -> EventSpec in
                        let n = (r * clients + client) * eventsPerRequest + e
                        let t = end - span + Int64((Double(n) / Double(events)) * Double(span - 1_000_000))
                        return EventSpec(customerId: customerPerClient ? "\(customer)-\(client)" : customer, eventName: eventName, idempotencyKey: "\(run)-\(n)",
                                         timestamp: rfc3339(micros: t), dimensions: [("region", dims10[n % 10]), ("model", models10[(n / 10) % 10])])
                    }
                    return reportEventLine(id: r + 1, events: evs)
                }
            }
            let outcome = try runLoad(socket: common.socket, lines: built, pipeline: pipeline)
            done += outcome.completed * eventsPerRequest
            wall += outcome.wall
            latencies += outcome.latencies
            errors += outcome.errorCount
            if outcome.errorCount > 0 { print("errors: \(outcome.errorText)") }
            r0 += count
            FileHandle.standardError.write(Data(f("\rfill: %d events, %.0f events/s over the loads", done, Double(done) / wall).utf8))
        }
        FileHandle.standardError.write(Data("\n".utf8))
        let l = latencies.sorted()
        print(f("fill %@: %d events (%@) in %.1f s of load (%.1f s wall incl. building requests): %.0f events/s; request (%d events) latency p50 %@ p99 %@; errors %d",
                customer, done, eventName, wall, (clock.now - began).seconds, Double(done) / wall, eventsPerRequest, ms(percentile(l, 0.5)), ms(percentile(l, 0.99)), errors))
    }
}

// MARK: 4 and 6. getUsageHistory / getCreditUsage vs raw range scans

struct Queries: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "getUsageHistory and getCreditUsage (30 days, DAY, groupBy 2) vs raw scans of the same rollup keys.")
    @OptionGroup var common: Common
    @Option var customer = "hist-0"
    @Option var feature = "gen-calls"
    @Option var currency = "credits"
    @Option var rounds = 7
    @Option var callsPerRound = 5
    @Option var days = 30

    func run() throws {
        let c = try TallyConnection(socketPath: common.socket, timeoutSeconds: 600)
        let end = nowMicros() + 60_000_000
        let start = end - Int64(days + 1) * 86_400_000_000
        let history: JSONObject = ["customerId": .string(customer), "featureId": .string(feature), "startDate": .string(rfc3339(micros: start)),
                                   "endDate": .string(rfc3339(micros: end)), "granularity": "DAY", "groupBy": ["region", "model"]]
        let credit: JSONObject = ["customerId": .string(customer), "currencyId": .string(currency), "startDate": .string(rfc3339(micros: start)),
                                  "endDate": .string(rfc3339(micros: end)), "groupBy": ["region", "model"]]
        // Sanity and sizes.
        let h = try call(c, "getUsageHistory", history)
        let cu = try call(c, "getCreditUsage", credit)
        let hSeries = h["series"]?.arrayValue ?? []
        let hEvents = hSeries.reduce(0) { $0 + (Int($1["eventCount"]?.numberText ?? "0") ?? 0) }
        let cSeries = cu["series"]?.arrayValue ?? []
        let cEvents = cSeries.reduce(0) { $0 + (Int($1["eventCount"]?.numberText ?? "0") ?? 0) }
        let hBytes = h.serialized().count
        let cBytes = cu.serialized().count
        print("== queries on \(customer): getUsageHistory \(feature): \(hSeries.count) series, \(hEvents) events, \(hBytes) B of result; getCreditUsage \(currency): \(cSeries.count) series, \(cEvents) deductions, \(cBytes) B")

        let db = try DaemonDatabase.openReadOnly(dataDir: common.dataDir)
        let seriesPrefix = KeyLayout.usageSeriesPrefix(customerId: customer, featureId: feature, granularity: .day)
        let firstDay = CalendarUTC.periodStart(.day, containing: Timestamp(microsecondsSinceEpoch: start))
        let hFrom = seriesPrefix + KeyLayout.sortable(firstDay)
        let hTo = seriesPrefix + KeyLayout.sortable(Timestamp(microsecondsSinceEpoch: end))
        let creditPrefix = KeyLayout.creditUsagePrefix(customerId: customer, currencyId: currency, granularity: .day)
        let cFrom = creditPrefix + KeyLayout.sortable(firstDay)
        let cTo = creditPrefix + KeyLayout.sortable(Timestamp(microsecondsSinceEpoch: end))
        let hScan = try DaemonDatabase.scan(db, family: KeyLayout.projectionsFamily, from: hFrom, to: hTo)
        let cScan = try DaemonDatabase.scan(db, family: KeyLayout.projectionsFamily, from: cFrom, to: cTo)
        print("   raw scans: usage series \(hScan.records) keys (\(hScan.bytes) B); credit usage \(cScan.records) keys (\(cScan.bytes) B)")

        var t: [String: [Double]] = [:]
        var ratiosH: [Double] = []
        var ratiosC: [Double] = []
        for _ in 1...rounds {
            var rh: [Double] = [], rc: [Double] = [], qh: [Double] = [], qc: [Double] = [], st: [Double] = []
            for _ in 0..<callsPerRound {
                rh.append(try timed { _ = try DaemonDatabase.scan(db, family: KeyLayout.projectionsFamily, from: hFrom, to: hTo) })
                qh.append(try timed { _ = try call(c, "getUsageHistory", history) })
                rc.append(try timed { _ = try DaemonDatabase.scan(db, family: KeyLayout.projectionsFamily, from: cFrom, to: cTo) })
                qc.append(try timed { _ = try call(c, "getCreditUsage", credit) })
                st.append(try timed { _ = try call(c, "getStatus") })
            }
            ratiosH.append(median(qh) / median(rh))
            ratiosC.append(median(qc) / median(rc))
            t["rawH", default: []] += rh; t["qH", default: []] += qh; t["rawC", default: []] += rc; t["qC", default: []] += qc; t["status", default: []] += st
        }
        func m(_ k: String) -> String { ms(median(t[k]!)) }
        print("getUsageHistory: median \(m("qH")) (p90 \(ms(percentile(t["qH"]!.sorted(), 0.9)))); raw scan median \(m("rawH")); getStatus echo median \(m("status"))")
        print(f("RATIO getUsageHistory / raw scan (median of %d rounds): %.1fx  [%@]", rounds, median(ratiosH), ratiosH.map { f("%.1f", $0) }.joined(separator: ", ")))
        print("getCreditUsage: median \(m("qC")) (p90 \(ms(percentile(t["qC"]!.sorted(), 0.9)))); raw scan median \(m("rawC"))")
        print(f("RATIO getCreditUsage / raw scan (median of %d rounds): %.1fx  [%@]", rounds, median(ratiosC), ratiosC.map { f("%.1f", $0) }.joined(separator: ", ")))
    }
}

// MARK: 5. strict reportUsage, 64 clients

struct Strict: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Strict reportUsage on a credit-backed feature from many sequential clients vs raw synced batches of the same records.")
    @OptionGroup var common: Common
    @Option var clients = 64
    @Option var requestsPerClient = 150
    @Option var rounds = 3
    @Option var baselineSeconds = 2.0

    func lines(_ tag: String, count: Int) -> [[[UInt8]]] {
        (0..<clients).map { client in
            (0..<count).map { r in
                requestLine(id: r + 1, method: "reportUsage", params: ["customerId": .string("strict-\(client)"), "featureId": "strict-units", "value": "1", "strict": true,
                                                                       "idempotencyKey": .string("\(tag)-\(client)-\(r)")])
            }
        }
    }

    func run() throws {
        print("== strict reportUsage: \(clients) clients, each sequential (1 in flight), \(requestsPerClient) requests per round, \(rounds) rounds")
        let head0 = try DaemonDatabase.lastSequence(dataDir: common.dataDir)
        let warm = try runLoad(socket: common.socket, lines: lines("w\(nowMicros())", count: 10), pipeline: 1)
        let head1 = try DaemonDatabase.lastSequence(dataDir: common.dataDir)
        let perReply = Double(head1 - head0) / Double(max(1, warm.completed))
        let recordsPerReply = max(1, Int(perReply.rounded()))
        let records = SampleRecords(eventRecords: try DaemonDatabase.lastEventRecords(dataDir: common.dataDir, count: clients * recordsPerReply * 4))
        let group = clients * recordsPerReply
        let parent = (common.dataDir as NSString).deletingLastPathComponent
        print(f("   %.2f log records per reply (warm-up errors: %@); baseline: raw synced batches of %d of the daemon's own records (%.0f B avg) — the largest group %d clients can form",
                perReply, warm.errorText, group, records.averageEventBytes, clients))
        let atLeast = clients * requestsPerClient * recordsPerReply
        var before = try rawBatchRate(parent: parent, records: records, group: group, atLeast: atLeast, seconds: baselineSeconds)
        var ratios: [Double] = []
        for round in 1...rounds {
            let outcome = try runLoad(socket: common.socket, lines: lines("s\(round)-\(nowMicros())", count: requestsPerClient), pipeline: 1)
            let after = try rawBatchRate(parent: parent, records: records, group: group, atLeast: atLeast, seconds: baselineSeconds)
            let rate = Double(outcome.completed) / outcome.wall
            let baselineReplies = (before + after) / 2 / Double(recordsPerReply)
            ratios.append(rate / baselineReplies)
            let l = outcome.latencies
            print(f("round %d: %.0f replies/s (%d in %.2f s); latency p50 %@ p99 %@; errors %@; raw %.0f / %.0f records/s = %.0f replies/s => ratio %.3fx", round, rate, outcome.completed, outcome.wall,
                    ms(percentile(l, 0.5)), ms(percentile(l, 0.99)), outcome.errorText, before, after, baselineReplies, rate / baselineReplies))
            before = after
        }
        print(f("RATIO strict reportUsage x%d (median of %d): %.3fx raw synced batches of %d records  [%@]", clients, rounds, median(ratios), group, ratios.map { f("%.3f", $0) }.joined(separator: ", ")))
    }
}

// MARK: 5. one client: strict reportUsage vs fdatasync; reads vs getStatus

struct Latency: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "One sequential client: strict reportUsage latency vs fdatasync latency; getCreditBalance/getEntitlement vs getStatus.")
    @OptionGroup var common: Common
    @Option var rounds = 5
    @Option var perRound = 400

    func run() throws {
        let c = try TallyConnection(socketPath: common.socket, timeoutSeconds: 600)
        let parent = (common.dataDir as NSString).deletingLastPathComponent
        let raw = try RawBaseline(parent: parent, records: SampleRecords(eventRecords: try DaemonDatabase.lastEventRecords(dataDir: common.dataDir, count: 8)))
        defer { raw.removeDirectory() }
        var fsync: [Double] = [], rocks: [Double] = [], strict: [Double] = []
        var p99Ratios: [Double] = []
        let clock = ContinuousClock()
        let tag = "l\(nowMicros())"
        print("== latency: one client, sequential; \(rounds) rounds of \(perRound) fdatasyncs, \(perRound) raw RocksDB single-record synced batches, \(perRound) strict reportUsage")
        for round in 1...rounds {
            let fs = try fdatasyncLatencies(in: parent, syncs: perRound)
            var rk: [Double] = []
            for _ in 0..<perRound {
                let s = clock.now
                try raw.write(records: 1, groupSize: 1)
                rk.append((clock.now - s).seconds)
            }
            var su: [Double] = []
            for r in 0..<perRound {
                let s = clock.now
                _ = try call(c, "reportUsage", ["customerId": "strict-0", "featureId": "strict-units", "value": "1", "strict": true, "idempotencyKey": .string("\(tag)-\(round)-\(r)")])
                su.append((clock.now - s).seconds)
            }
            let ratio = percentile(su.sorted(), 0.99) / percentile(fs.sorted(), 0.99)
            p99Ratios.append(ratio)
            print(f("round %d: fdatasync p50 %@ p99 %@ | raw RocksDB synced put p50 %@ p99 %@ | strict reportUsage p50 %@ p99 %@ => p99 ratio %.2fx", round,
                    ms(percentile(fs.sorted(), 0.5)), ms(percentile(fs.sorted(), 0.99)), ms(percentile(rk.sorted(), 0.5)), ms(percentile(rk.sorted(), 0.99)),
                    ms(percentile(su.sorted(), 0.5)), ms(percentile(su.sorted(), 0.99)), ratio))
            fsync += fs; rocks += rk; strict += su
        }
        fsync.sort(); rocks.sort(); strict.sort()
        print(f("ALL: fdatasync p50 %@ p99 %@; raw RocksDB synced put p50 %@ p99 %@; strict reportUsage p50 %@ p99 %@", ms(percentile(fsync, 0.5)), ms(percentile(fsync, 0.99)),
                ms(percentile(rocks, 0.5)), ms(percentile(rocks, 0.99)), ms(percentile(strict, 0.5)), ms(percentile(strict, 0.99))))
        print(f("RATIO strict reportUsage p99 / fdatasync p99: median of rounds %.2fx [%@]; pooled %.2fx; p50/p50 pooled %.2fx", median(p99Ratios),
                p99Ratios.map { f("%.2f", $0) }.joined(separator: ", "), percentile(strict, 0.99) / percentile(fsync, 0.99), percentile(strict, 0.5) / percentile(fsync, 0.5)))

        // Reads.
        var status: [Double] = [], balance: [Double] = [], entitlement: [Double] = []
        var rb: [Double] = [], re: [Double] = []
        for _ in 1...rounds {
            var st: [Double] = [], ba: [Double] = [], en: [Double] = []
            for _ in 0..<perRound {
                st.append(try timed { _ = try call(c, "getStatus") })
                ba.append(try timed { _ = try call(c, "getCreditBalance", ["customerId": "strict-1", "currencyId": "credits"]) })
                en.append(try timed { _ = try call(c, "getEntitlement", ["customerId": "strict-1", "featureId": "strict-units"]) })
            }
            st.sort(); ba.sort(); en.sort()
            rb.append(percentile(ba, 0.99) / percentile(st, 0.99))
            re.append(percentile(en, 0.99) / percentile(st, 0.99))
            status += st; balance += ba; entitlement += en
        }
        status.sort(); balance.sort(); entitlement.sort()
        print(f("reads (%d each, interleaved): getStatus p50 %@ p99 %@; getCreditBalance p50 %@ p99 %@; getEntitlement p50 %@ p99 %@", status.count,
                ms(percentile(status, 0.5)), ms(percentile(status, 0.99)), ms(percentile(balance, 0.5)), ms(percentile(balance, 0.99)), ms(percentile(entitlement, 0.5)), ms(percentile(entitlement, 0.99))))
        print(f("RATIO p99 / getStatus p99 (median of %d rounds): getCreditBalance %.2fx [%@], getEntitlement %.2fx [%@]", rounds, median(rb), rb.map { f("%.2f", $0) }.joined(separator: ", "),
                median(re), re.map { f("%.2f", $0) }.joined(separator: ", ")))
    }
}

// MARK: provisionSubscription as one customer's list grows

struct Subscriptions: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "provisionSubscription rounds for one customer (one plan): each round's rate beside the first round's, as the customer's subscription count grows."
    )
    @OptionGroup var common: Common
    @Option var rounds = 10
    @Option var perRound = 1000
    @Option var pipeline = 50
    @Option(help: "Sequential reportUsage calls per customer after each round.") var probeCalls = 50

    func run() throws {
        let c = try TallyConnection(socketPath: common.socket, timeoutSeconds: 600)
        let tag = "subs\(nowMicros())"
        // The probe: reportUsage on a feature the plan entitles, whose decision resolves the
        // customer's entitlement in the writer; beside the same call for a customer with one
        // subscription of the plan, in the same round.
        let feature = "\(tag)-calls", control = "\(tag)-control"
        _ = try call(c, "defineFeature", ["featureId": .string(feature), "type": "METERED", "unit": "call"])
        _ = try call(c, "definePlan", ["planId": .string("\(tag)-plan"), "displayName": "Benchmark plan", "entitlements": [
            ["featureId": .string(feature), "usageLimit": "1000000000", "resetPeriod": "MONTH"],
        ]])
        for customer in [tag, control] {
            _ = try call(c, "provisionCustomer", ["customerId": .string(customer), "name": "many subscriptions"])
        }
        _ = try call(c, "provisionSubscription", ["customerId": .string(control), "planId": .string("\(tag)-plan")])
        func reportUsageP50(_ customer: String) throws -> Double {
            median(try (0..<probeCalls).map { _ in
                try timed { _ = try call(c, "reportUsage", ["customerId": .string(customer), "featureId": .string(feature), "value": 1]) }
            })
        }
        print("== subscriptions: \(rounds) rounds of \(perRound) provisionSubscription calls for one customer, pipeline \(pipeline); after each, \(probeCalls) sequential reportUsage for it and for a customer with one subscription")
        var rates: [Double] = []
        var probes: [Double] = []
        for round in 0..<rounds {
            let lines = (0..<perRound).map { i in
                requestLine(id: i + 1, method: "provisionSubscription", params: [
                    "customerId": .string(tag), "planId": .string("\(tag)-plan"), "subscriptionId": .string("\(tag)-\(round * perRound + i)"),
                ])
            }
            let outcome = try runLoad(socket: common.socket, lines: [lines], pipeline: pipeline)
            let rate = Double(outcome.completed) / outcome.wall
            rates.append(rate)
            let (many, one) = (try reportUsageP50(tag), try reportUsageP50(control))
            probes.append(many / one)
            print(f("round %d (subscriptions %d to %d): %.0f calls/s, %.2fx round 1; errors %@; reportUsage p50 %@ beside %@ with one subscription (%.2fx)",
                    round + 1, round * perRound + 1, (round + 1) * perRound, rate, rate / rates[0], outcome.errorText, ms(many), ms(one), many / one))
        }
        print(f("RATIO provisionSubscription rate, last round ÷ first round: %.2fx", rates.last! / rates[0]))
        print(f("RATIO reportUsage p50 at %d subscriptions ÷ at one (same round): %.2fx", rounds * perRound, probes.last!))
    }
}

// MARK: Long reads while other clients loop on replays

struct HeavyReads: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heavy",
        abstract: "A client's long reads (readLedger of 1000 events) while other clients loop on verifyLedger: p50 and p99 beside the same reads without them, in the same run."
    )
    @OptionGroup var common: Common
    @Option var replayers = 4
    @Option var seconds = 10.0

    func probe(_ c: TallyConnection, seconds: Double) throws -> [Double] {
        let last = Int(try call(c, "getStatus")["lastSequence"]?.numberText ?? "0") ?? 0
        let clock = ContinuousClock(), end = clock.now + .milliseconds(Int(seconds * 1000))
        var latencies: [Double] = []
        while clock.now < end {
            latencies.append(try timed { _ = try call(c, "readLedger", ["after": .integer(Int64(max(0, last - 1000))), "limit": 1000]) })
        }
        return latencies.sorted()
    }

    func run() throws {
        let c = try TallyConnection(socketPath: common.socket, timeoutSeconds: 600)
        print("== heavy: readLedger (1000 events) for \(seconds) s alone, then for \(seconds) s while \(replayers) clients loop on verifyLedger")
        let quiet = try probe(c, seconds: seconds)
        let running = Atomic<Bool>(true)
        let replays = Atomic<Int>(0)
        let socket = common.socket
        let threads = (0..<replayers).map { _ in
            Thread {
                guard let r = try? TallyConnection(socketPath: socket, timeoutSeconds: 600) else { return }
                while running.load(ordering: .relaxed) {
                    if (try? r.call("verifyLedger", [:])) != nil { replays.add(1, ordering: .relaxed) }
                }
            }
        }
        threads.forEach { $0.start() }
        Thread.sleep(forTimeInterval: 1)  // every replayer has started its first replay
        let loaded = try probe(c, seconds: seconds)
        running.store(false, ordering: .relaxed)
        while threads.contains(where: { !$0.isFinished }) { Thread.sleep(forTimeInterval: 0.05) }
        print(f("alone: %d reads, p50 %@, p99 %@", quiet.count, ms(percentile(quiet, 0.5)), ms(percentile(quiet, 0.99))))
        print(f("beside %d looping verifyLedger clients (%d replays done): %d reads, p50 %@, p99 %@", replayers, replays.load(ordering: .relaxed), loaded.count,
                ms(percentile(loaded, 0.5)), ms(percentile(loaded, 0.99))))
        print(f("RATIO readLedger p50 beside the replays ÷ alone: %.2fx; p99 %.2fx", percentile(loaded, 0.5) / percentile(quiet, 0.5), percentile(loaded, 0.99) / percentile(quiet, 0.99)))
    }
}

// MARK: 8. createSnapshot while ingest runs

struct SnapshotUnderLoad: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "snapshot", abstract: "createSnapshot while reportEvent ingest runs; ingest p99 during it vs without it.")
    @OptionGroup var common: Common
    @Option var snapshotPath: String
    @Option var clients = 4
    @Option var eventsPerRequest = 100
    @Option(help: "Seconds of load before the snapshot starts (the no-snapshot window).") var leadSeconds = 20.0
    @Option(help: "Seconds of load after the snapshot ends.") var tailSeconds = 10.0

    func run() throws {
        let socket = common.socket
        let stop = Box(false)
        let results = Box<[LoadOutcome]>([])
        let group = DispatchGroup()
        let clock = ContinuousClock()
        let began = clock.now
        let eventsPerRequest = self.eventsPerRequest
        let run = "snap\(nowMicros())"
        for client in 0..<clients {
            group.enter()
            let thread = Thread {
                var outcome = LoadOutcome()
                do {
                    let connection = try TallyConnection(socketPath: socket, timeoutSeconds: 600)
                    var r = 0
                    while !stop.value {
                        let base = nowMicros()
                        let line = reportEventLine(id: r + 1, events: (0..<eventsPerRequest).map { e in
                            EventSpec(customerId: "ingest-\(client)", eventName: "ingest.call", idempotencyKey: "\(run)-\(client)-\(r)-\(e)", timestamp: rfc3339(micros: base),
                                      dimensions: [("region", dims10[e % 10]), ("model", models10[(e / 10) % 10])])
                        })
                        let sent = clock.now
                        try connection.sendLine(line)
                        guard let reply = try connection.readLine() else { break }
                        let latency = (clock.now - sent).seconds
                        let problem = (try? JSONParser.parse(reply))?.objectValue.flatMap(defaultCheck)
                        if let problem { outcome.errors[problem, default: 0] += 1 }
                        outcome.samples.append(Sample(sentAt: (sent - began).seconds, latency: latency, ok: problem == nil))
                        r += 1
                    }
                } catch {
                    outcome.errors["\(error)", default: 0] += 1
                }
                results.mutate { $0.append(outcome) }
                group.leave()
            }
            thread.start()
        }
        Thread.sleep(forTimeInterval: leadSeconds)
        let c = try TallyConnection(socketPath: socket, timeoutSeconds: 3600)
        let snapStart = (clock.now - began).seconds
        let manifest = try call(c, "createSnapshot", ["path": .string(snapshotPath)])
        let snapEnd = (clock.now - began).seconds
        Thread.sleep(forTimeInterval: tailSeconds)
        stop.value = true
        group.wait()
        let samples = results.value.flatMap(\.samples)
        func stats(_ from: Double, _ to: Double) -> (Int, Double, Double, Double) {
            let l = samples.filter { $0.ok && $0.sentAt >= from && $0.sentAt < to }.map(\.latency).sorted()
            return (l.count, percentile(l, 0.5), percentile(l, 0.99), Double(l.count * eventsPerRequest) / max(0.001, to - from))
        }
        let duration = snapEnd - snapStart
        let pre = stats(2, snapStart) // skip the first 2 s (connections, warm-up)
        let during = stats(snapStart, snapEnd)
        let post = stats(snapEnd, snapEnd + tailSeconds)
        let size = manifest["sizeBytes"]?.numberText ?? (manifest["files"]?.arrayValue.map { $0.reduce(0) { $0 + (Int($1["size"]?.numberText ?? "0") ?? 0) } }.map(String.init) ?? "?")
        print("== createSnapshot under ingest (\(clients) clients, reportEvent of \(eventsPerRequest) events, 1 in flight each)")
        print(f("snapshot: %.2f s, %@ bytes, sequence %@", duration, size, manifest["sequence"]?.numberText ?? "?"))
        print(f("before (%.1f s): %d requests, p50 %@ p99 %@, %.0f events/s", snapStart - 2, pre.0, ms(pre.1), ms(pre.2), pre.3))
        print(f("during (%.1f s): %d requests, p50 %@ p99 %@, %.0f events/s", duration, during.0, ms(during.1), ms(during.2), during.3))
        print(f("after  (%.1f s): %d requests, p50 %@ p99 %@, %.0f events/s", tailSeconds, post.0, ms(post.1), ms(post.2), post.3))
        print(f("RATIO ingest p99 during snapshot / before: %.2fx; / after: %.2fx; errors %@", during.2 / pre.2, during.2 / post.2,
                results.value.reduce(into: LoadOutcome()) { a, o in for (k, v) in o.errors { a.errors[k, default: 0] += v } }.errorText))
    }
}

// MARK: 7. tallyd replay vs raw scan of the events column family

struct ReplayBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "replay", abstract: "`tallyd replay --data-dir` vs a raw scan of the events column family (daemon stopped).")
    @Option var tallyd: String
    @Option var dataDir: String
    @Option var rounds = 2

    func rawScan() throws -> (Double, Int) {
        var n = 0
        let s = try timed {
            let db = try DaemonDatabase.openReadOnly(dataDir: dataDir)
            n = try DaemonDatabase.scan(db, family: KeyLayout.eventsFamily, from: nil, to: nil).records
        }
        return (s, n)
    }

    /// The raw scan plus the one thing every replay must do per record besides reading it: its
    /// SHA-256 (sequence ‖ record). (Comparing it with the next record's prevHash is a 32-byte
    /// compare, left out: finding prevHash needs the record decoded.)
    func rawScanAndHash() throws -> (Double, Int) {
        var n = 0
        var last: UInt8 = 0
        let s = try timed {
            let db = try DaemonDatabase.openReadOnly(dataDir: dataDir)
            let iterator = db.makeIterator(in: db.columnFamily(KeyLayout.eventsFamily))
            iterator.seekToFirst()
            while iterator.isValid {
                let hash = EventRecord.hash(sequence: KeyLayout.sequence(fromEventKey: iterator.key) ?? 0, record: iterator.value)
                last ^= hash[0]
                n += 1
                iterator.next()
            }
            try iterator.check()
        }
        if last == 0x5A && n < 0 { print(last) } // keep the loop honest
        return (s, n)
    }

    func run() throws {
        let events = try DaemonDatabase.lastSequence(dataDir: dataDir)
        print("== replay of \(events) events in \(dataDir)")
        var before = try rawScan()
        print(f("raw scan (open read-only + iterate every event record): %.2f s, %d records, %.0f records/s", before.0, before.1, Double(before.1) / before.0))
        let chained = try rawScanAndHash()
        let again = try rawScan()
        print(f("raw scan + SHA-256 of every record: %.2f s (%.0f records/s) = %.3fx the raw scans around it (what a replay on one thread could reach at best)",
                chained.0, Double(chained.1) / chained.0, (Double(chained.1) / chained.0) / (Double(before.1 + again.1) / (before.0 + again.0))))
        before = again
        var ratios: [Double] = []
        for round in 1...rounds {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: tallyd)
            process.arguments = ["replay", "--data-dir", dataDir]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            var output = Data()
            let seconds = try timed {
                try process.run()
                output = out.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
            }
            var usage = rusage()
            getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &usage)
            let after = try rawScan()
            let rate = Double(events) / seconds
            let raw = Double(before.1 + after.1) / (before.0 + after.0)
            ratios.append(rate / raw)
            let firstLines = String(decoding: output, as: UTF8.self).split(separator: "\n").prefix(3).joined(separator: " | ")
            print(f("round %d: tallyd replay %.2f s (exit %d) = %.0f events/s; raw scan after %.2f s; ratio %.3fx; children CPU so far %.1f s; %@", round, seconds, process.terminationStatus, rate, after.0,
                    rate / raw, Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec), firstLines))
            before = after
        }
        print(f("RATIO replay / raw events scan (median of %d): %.3fx  [%@]", rounds, median(ratios), ratios.map { f("%.3f", $0) }.joined(separator: ", ")))
    }
}
