import BenchSupport
import Foundation
import TallyClient
import TallyCore
import TallyProtocol

/// One request's fate in a load: when its window was sent (seconds since the load began), how
/// long its reply took, and whether it was an error.
struct Sample {
    var sentAt: Double
    var latency: Double
    var ok: Bool
}

struct LoadOutcome {
    var samples: [Sample] = []
    var errors: [String: Int] = [:]
    var wall: Double = 0
    var completed: Int { samples.filter(\.ok).count }
    var latencies: [Double] { samples.filter(\.ok).map(\.latency).sorted() }
    var errorCount: Int { errors.values.reduce(0, +) }
    var errorText: String { errors.isEmpty ? "0" : errors.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ") }
}

/// Pre-built request lines per client, sent `pipeline` at a time (one write), replies read back.
/// `check` turns a reply object into an error text, or nil when it is what was wanted.
func runLoad(socket: String, lines: [[[UInt8]]], pipeline: Int, timeoutSeconds: Int = 600,
             check: @escaping @Sendable (JSONObject) -> String? = defaultCheck) throws -> LoadOutcome {
    var connections: [TallyConnection] = []
    for _ in lines { connections.append(try TallyConnection(socketPath: socket, timeoutSeconds: timeoutSeconds)) }
    defer { for c in connections { c.close() } }
    let results = Box<[LoadOutcome]>(Array(repeating: LoadOutcome(), count: lines.count))
    let start = DispatchSemaphore(value: 0)
    let group = DispatchGroup()
    let clock = ContinuousClock()
    let began = Box<ContinuousClock.Instant>(clock.now)
    for (index, connection) in connections.enumerated() {
        group.enter()
        let worker = UncheckedSendable((connection, lines[index]))
        let thread = Thread {
            start.wait()
            let outcome = clientLoop(connection: worker.value.0, lines: worker.value.1, pipeline: pipeline, clock: clock, began: began.value, check: check)
            results.mutate { $0[index] = outcome }
            group.leave()
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
    began.value = clock.now
    for _ in lines { start.signal() }
    group.wait()
    var total = LoadOutcome()
    total.wall = (clock.now - began.value).seconds
    for outcome in results.value {
        total.samples += outcome.samples
        for (k, v) in outcome.errors { total.errors[k, default: 0] += v }
    }
    return total
}

@Sendable func defaultCheck(_ reply: JSONObject) -> String? {
    if let error = reply["error"] {
        return "\(error["code"]?.numberText ?? "?") \(error["data"]?["code"]?.stringValue ?? error["message"]?.stringValue ?? "")"
    }
    if case .array(let rejected)? = reply["result"]?["rejected"], let first = rejected.first {
        return "rejected events: \(first["message"]?.stringValue ?? "?")"
    }
    return nil
}

private func clientLoop(connection: TallyConnection, lines: [[UInt8]], pipeline: Int, clock: ContinuousClock,
                        began: ContinuousClock.Instant, check: (JSONObject) -> String?) -> LoadOutcome {
    var outcome = LoadOutcome()
    outcome.samples.reserveCapacity(lines.count)
    var next = 0
    while next < lines.count {
        let window = min(pipeline, lines.count - next)
        var payload: [UInt8] = []
        for line in lines[next..<(next + window)] {
            payload += line
            payload.append(UInt8(ascii: "\n"))
        }
        let sentAt = clock.now
        do {
            try connection.sendLine(payload)
            for _ in 0..<window {
                guard let reply = try connection.readLine() else {
                    outcome.errors["connection closed", default: 0] += 1
                    return outcome
                }
                let latency = (clock.now - sentAt).seconds
                let problem: String?
                if let object = (try? JSONParser.parse(reply))?.objectValue { problem = check(object) } else { problem = "unparsable reply" }
                if let problem { outcome.errors[String(problem.prefix(160)), default: 0] += 1 }
                outcome.samples.append(Sample(sentAt: (sentAt - began).seconds, latency: latency, ok: problem == nil))
            }
        } catch {
            outcome.errors["transport: \(error)", default: 0] += 1
            return outcome
        }
        next += window
    }
    return outcome
}

// MARK: Request lines

/// JSON text of a string (ids and keys here never need escaping beyond quotes).
@inline(__always) func q(_ s: String) -> String { "\"" + s + "\"" }

struct EventSpec {
    var customerId: String
    var eventName: String
    var idempotencyKey: String
    var timestamp: String?
    var dimensions: [(String, String)]
}

func reportEventLine(id: Int, events: [EventSpec]) -> [UInt8] {
    var s = "{\"jsonrpc\":\"2.0\",\"id\":\(id),\"method\":\"reportEvent\",\"params\":{\"events\":["
    s.reserveCapacity(events.count * 200 + 100)
    for (i, e) in events.enumerated() {
        if i > 0 { s += "," }
        s += "{\"customerId\":" + q(e.customerId) + ",\"eventName\":" + q(e.eventName) + ",\"idempotencyKey\":" + q(e.idempotencyKey)
        if let t = e.timestamp { s += ",\"timestamp\":" + q(t) }
        if !e.dimensions.isEmpty {
            s += ",\"dimensions\":{" + e.dimensions.map { q($0.0) + ":" + q($0.1) }.joined(separator: ",") + "}"
        }
        s += "}"
    }
    s += "]}}"
    return Array(s.utf8)
}

func requestLine(id: Int, method: String, params: JSONObject) -> [UInt8] {
    let request: JSONValue = ["jsonrpc": "2.0", "id": .integer(id), "method": .string(method), "params": .object(params)]
    return request.serialized()
}

/// RFC 3339 of a Unix time in microseconds.
func rfc3339(micros: Int64) -> String { Timestamp(microsecondsSinceEpoch: micros).rfc3339 }

func nowMicros() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }

// MARK: Statistics and plumbing

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let rank = Int((p * Double(sorted.count)).rounded(.up)) - 1
    return sorted[max(0, min(sorted.count - 1, rank))]
}

func median(_ values: [Double]) -> Double { percentile(values.sorted(), 0.5) }

func ms(_ seconds: Double) -> String { String(format: "%.3f ms", seconds * 1000) }

func f(_ format: String, _ args: CVarArg...) -> String { String(format: format, arguments: args) }

final class Box<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
    func mutate(_ body: (inout T) -> Void) { lock.withLock { body(&stored) } }
}

struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// A connection for setup and single calls; errors thrown as text.
func call(_ connection: TallyConnection, _ method: String, _ params: JSONObject = [:]) throws -> JSONValue {
    try connection.call(method, params)
}

/// Seconds `body` takes.
func timed(_ body: () throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    let start = clock.now
    try body()
    return (clock.now - start).seconds
}

/// Raw synced batches of `group` events' records (`writeSet`) from `records` for at least
/// `seconds` and `atLeast` events, in a fresh temp dir under `parent`; events/s.
func rawBatchRate(parent: String, records: SampleRecords, group: Int, atLeast: Int, seconds: Double, writeSet: RawBaseline.WriteSet = .events) throws -> Double {
    let raw = try RawBaseline(parent: parent, records: records)
    defer { raw.removeDirectory() }
    try raw.write(records: group, groupSize: group, writeSet: writeSet)
    let clock = ContinuousClock()
    let start = clock.now
    var written = 0
    while written < atLeast || (clock.now - start).seconds < seconds {
        try raw.write(records: group, groupSize: group, writeSet: writeSet)
        written += group
    }
    return Double(written) / (clock.now - start).seconds
}
