// tally-load: C connections to a running tallyd, each pipelining P requests at a time (send P
// lines, read P replies) until R are done; prints requests/s, reply latency percentiles and
// errors, and, in the same run and on the same disk, a raw RocksDB synced-batch baseline and the
// ratio of the two. See docs/performance.md.
import ArgumentParser
import BenchSupport
import Foundation
import TallyClient
import TallyProtocol

@main
struct TallyLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tally-load",
        abstract: "Load a running tallyd over its Unix socket and compare with raw synced RocksDB batches on the same disk."
    )

    @Option(help: "The daemon's Unix socket.")
    var socket: String

    @Option(help: "Connections, one thread each.")
    var clients = 1

    @Option(help: "Requests each connection sends.")
    var requestsPerClient = 1000

    @Option(help: "Requests in flight per connection: send P lines, then read P replies.")
    var pipeline = 1

    @Option(help: "provisionCustomer (a new customer per request: one event each) or getCustomer (reads).")
    var method = "provisionCustomer"

    @Option(help: "Where the baseline's temporary database goes. Default: next to the daemon's data directory (the socket's directory's parent).")
    var baselineParent: String?

    @Flag(help: "Skip the same-run baseline.")
    var noBaseline = false

    @Option(help: "A label printed with the results.")
    var label: String?

    mutating func validate() throws {
        guard clients >= 1, requestsPerClient >= 1, pipeline >= 1 else {
            throw ValidationError("--clients, --requests-per-client and --pipeline must be at least 1")
        }
        guard ["provisionCustomer", "getCustomer"].contains(method) else {
            throw ValidationError("--method must be provisionCustomer or getCustomer")
        }
    }

    @Option(help: "Rounds of baseline then load (a last baseline closes the run); the ratio reported is the median of the rounds'.")
    var rounds = 3

    @Option(help: "Minimum seconds each baseline measurement runs.")
    var baselineSeconds = 1.5

    func run() throws {
        let total = clients * requestsPerClient
        let parent = baselineParent ?? (((socket as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent)
        let baselineGroup = clients * pipeline
        let records = SampleRecords(count: 1000)
        let runId = String(UInt64(Date().timeIntervalSince1970 * 1000), radix: 36) + "-\(getpid())"

        var header = "== tally-load\(label.map { " [\($0)]" } ?? ""): \(method), \(clients) client(s) x \(requestsPerClient) requests, pipeline \(pipeline), \(rounds) round(s)"
        if !noBaseline {
            header += String(format: "\n   baseline: raw RocksDB synced WriteBatches of %d event records (%.0f B each, the ledger's options and column families) in a temp dir under %@", baselineGroup, records.averageEventBytes, parent)
        }
        print(header)
        var previous: Measured? = noBaseline ? nil : try baseline(parent: parent, records: records, group: baselineGroup, atLeast: total)
        var ratios: [Double] = []
        var perSync: [Double] = []
        var all = Outcome()
        for round in 1...rounds {
            let cpuBefore = processCPUSeconds()
            let outcome = try runLoad(runId: "\(runId)-r\(round)")
            let cpu = processCPUSeconds() - cpuBefore
            let seconds = outcome.wall.seconds
            let throughput = Double(outcome.completed) / seconds
            let latencies = outcome.latencies.sorted()
            var line = String(format: "round %d: %.0f requests/s (%d in %.3f s); latency p50 %@ p99 %@ p999 %@ max %@; errors %d; tally-load CPU %.2f s",
                              round, throughput, outcome.completed, seconds, ms(percentile(latencies, 0.5)), ms(percentile(latencies, 0.99)),
                              ms(percentile(latencies, 0.999)), ms(latencies.last ?? 0), outcome.errors.values.reduce(0, +), cpu)
            if let before = previous {
                let after = try baseline(parent: parent, records: records, group: baselineGroup, atLeast: total)
                let mean = (before.recordsPerSecond + after.recordsPerSecond) / 2
                let syncs = (before.syncsPerSecond + after.syncsPerSecond) / 2
                ratios.append(throughput / mean)
                perSync.append(throughput / syncs)
                line += String(format: "\n   baseline before/after: %.0f / %.0f records/s (disk: %.0f / %.0f single-record synced batches/s) => ratio %.3fx",
                                before.recordsPerSecond, after.recordsPerSecond, before.syncsPerSecond, after.syncsPerSecond, throughput / mean)
                previous = after
            }
            print(line)
            all.completed += outcome.completed
            all.latencies += outcome.latencies
            all.wall += outcome.wall
            for (key, value) in outcome.errors { all.errors[key, default: 0] += value }
        }
        let latencies = all.latencies.sorted()
        print(String(format: "ALL: %.0f requests/s; latency p50 %@ p99 %@ p999 %@; errors %d%@",
                     Double(all.completed) / all.wall.seconds, ms(percentile(latencies, 0.5)), ms(percentile(latencies, 0.99)),
                     ms(percentile(latencies, 0.999)), all.errors.values.reduce(0, +),
                     all.errors.isEmpty ? "" : " (" + all.errors.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + ")"))
        if !ratios.isEmpty {
            print(String(format: "RATIO (median of %d rounds): %.3fx raw synced batch (group %d) records/s  [rounds: %@];  %.1f requests per single-record disk sync",
                         ratios.count, median(ratios), baselineGroup, ratios.map { String(format: "%.3f", $0) }.joined(separator: ", "), median(perSync)))
        }
        if all.completed == 0 { throw ExitCode(1) }
    }

    struct Measured {
        var recordsPerSecond: Double
        var syncsPerSecond: Double
    }

    /// Raw synced batches of `group` records for at least `atLeast` records and `baselineSeconds`,
    /// then single-record synced batches for half as long (the disk's sync rate); in a fresh temp
    /// dir under `parent`, removed after.
    func baseline(parent: String, records: SampleRecords, group: Int, atLeast: Int) throws -> Measured {
        let raw = try RawBaseline(parent: parent, records: records)
        defer { raw.removeDirectory() }
        try raw.write(records: group, groupSize: group) // warm-up: WAL file, memtable
        let clock = ContinuousClock()
        var start = clock.now
        var written = 0
        while written < atLeast || (clock.now - start).seconds < baselineSeconds {
            try raw.write(records: group, groupSize: group)
            written += group
        }
        let rate = Double(written) / (clock.now - start).seconds
        start = clock.now
        var syncs = 0
        while (clock.now - start).seconds < baselineSeconds / 2 {
            try raw.write(records: 1, groupSize: 1)
            syncs += 1
        }
        return Measured(recordsPerSecond: rate, syncsPerSecond: Double(syncs) / (clock.now - start).seconds)
    }

    struct Outcome {
        var completed = 0
        var latencies: [Double] = []
        var errors: [String: Int] = [:]
        var wall: Duration = .zero
    }

    func runLoad(runId: String) throws -> Outcome {
        // Connect every client first, so connection setup is not timed.
        var connections: [TallyConnection] = []
        for _ in 0..<clients {
            do {
                connections.append(try TallyConnection(socketPath: socket, timeoutSeconds: 60))
            } catch {
                throw BenchError("cannot connect to \(socket): \(error)")
            }
        }
        let results = ResultsBox(count: clients)
        let start = DispatchSemaphore(value: 0)
        let group = DispatchGroup()
        let clock = ContinuousClock()
        let method = self.method
        let perClient = requestsPerClient
        let pipeline = self.pipeline
        for (index, connection) in connections.enumerated() {
            group.enter()
            let worker = UncheckedBox(connection)
            let thread = Thread {
                start.wait()
                let outcome = Self.client(connection: worker.value, index: index, runId: runId, method: method, requests: perClient, pipeline: pipeline, clock: clock)
                results.set(index, outcome)
                group.leave()
            }
            thread.name = "tally-load-\(index)"
            thread.start()
        }
        let began = clock.now
        for _ in 0..<clients { start.signal() }
        group.wait()
        var total = Outcome()
        total.wall = clock.now - began
        for outcome in results.all() {
            total.completed += outcome.completed
            total.latencies += outcome.latencies
            for (key, value) in outcome.errors { total.errors[key, default: 0] += value }
        }
        return total
    }

    /// One connection's loop: windows of `pipeline` requests written at once, then their replies
    /// read one by one, each reply's latency measured from the window's send.
    static func client(connection: TallyConnection, index: Int, runId: String, method: String, requests: Int, pipeline: Int, clock: ContinuousClock) -> Outcome {
        var outcome = Outcome()
        outcome.latencies.reserveCapacity(requests)
        var sent = 0
        var nextId = 1
        while sent < requests {
            let window = min(pipeline, requests - sent)
            var payload: [UInt8] = []
            var ids: [Int: Int] = [:]
            for slot in 0..<window {
                let customerId = "load-\(runId)-\(index)-\(sent + slot)"
                let params: JSONObject = method == "provisionCustomer"
                    ? ["customerId": .string(customerId), "name": .string("Customer \(sent + slot)"), "email": .string("\(customerId)@example.com")]
                    // Reads of customers this connection has already provisioned would need a
                    // first pass; reads of a missing id still go the whole way to RocksDB.
                    : ["customerId": .string(customerId)]
                let request: JSONValue = ["jsonrpc": "2.0", "id": .integer(nextId), "method": .string(method), "params": .object(params)]
                payload += request.serialized()
                payload.append(UInt8(ascii: "\n"))
                ids[nextId] = slot
                nextId += 1
            }
            let sentAt = clock.now
            do {
                try connection.sendLine(payload)
                for _ in 0..<window {
                    guard let line = try connection.readLine() else {
                        outcome.errors["connection closed", default: 0] += window
                        return outcome
                    }
                    let latency = (clock.now - sentAt).seconds
                    let value = try? JSONParser.parse(line)
                    guard let object = value?.objectValue, let idText = object["id"]?.numberText, let id = Int(idText), ids.removeValue(forKey: id) != nil else {
                        outcome.errors["unmatched reply", default: 0] += 1
                        continue
                    }
                    if let error = object["error"] {
                        let code = error["code"]?.numberText ?? "?"
                        let reason = error["data"]?["code"]?.stringValue ?? error["message"]?.stringValue ?? ""
                        // getCustomer of an id never provisioned is an expected not-found.
                        if method == "getCustomer" {
                            outcome.completed += 1
                            outcome.latencies.append(latency)
                        } else {
                            outcome.errors["\(code) \(reason)", default: 0] += 1
                        }
                    } else {
                        outcome.completed += 1
                        outcome.latencies.append(latency)
                    }
                }
            } catch {
                outcome.errors["transport: \(error)", default: 0] += requests - sent
                return outcome
            }
            sent += window
        }
        return outcome
    }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let rank = Int((p * Double(sorted.count)).rounded(.up)) - 1
    return sorted[max(0, min(sorted.count - 1, rank))]
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// User plus system CPU seconds of this process so far.
func processCPUSeconds() -> Double {
    var usage = rusage()
    #if os(Linux)
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

func ms(_ seconds: Double) -> String { String(format: "%.2f ms", seconds * 1000) }

final class ResultsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var outcomes: [TallyLoad.Outcome]
    init(count: Int) { outcomes = Array(repeating: .init(), count: count) }
    func set(_ index: Int, _ outcome: TallyLoad.Outcome) { lock.withLock { outcomes[index] = outcome } }
    func all() -> [TallyLoad.Outcome] { lock.withLock { outcomes } }
}

/// A connection handed to exactly one thread.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
