// Decoding one reportEvent request line of 1000 events (~200 KB): Tally's JSONParser
// (TallyProtocol, what tallyd uses) vs Foundation's JSONDecoder into Codable structs vs
// JSONSerialization. Every iteration decodes the same line once: throughput is lines/s (x1000
// for events/s). See docs/performance.md.
import Benchmark
import Foundation
import TallyProtocol

struct RequestLine: Decodable {
    struct Params: Decodable { var events: [Event] }
    struct Event: Decodable {
        var customerId: String
        var eventName: String
        var idempotencyKey: String
        var timestamp: String?
        var dimensions: [String: String]?
    }
    var jsonrpc: String
    var id: Int
    var method: String
    var params: Params
}

let line: [UInt8] = {
    var s = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"reportEvent\",\"params\":{\"events\":["
    for n in 0..<1000 {
        if n > 0 { s += "," }
        let seconds = 10 + n % 50
        s += "{\"customerId\":\"ingest-0\",\"eventName\":\"ingest.call\",\"idempotencyKey\":\"i1-0-\(n)\",\"timestamp\":\"2026-07-14T10:20:\(seconds).123456Z\",\"dimensions\":{\"region\":\"r\(n % 10)\",\"model\":\"m\((n / 10) % 10)\"}}"
    }
    s += "]}}"
    return Array(s.utf8)
}()
let data = Data(line)

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .mallocCountTotal],
        timeUnits: .microseconds,
        warmupIterations: 3,
        scalingFactor: .one,
        maxDuration: .seconds(5),
        maxIterations: 200
    )
    Benchmark("JSONParser (TallyProtocol)") { benchmark in
        blackHole(try JSONParser.parse(line))
    }
    Benchmark("JSONDecoder (Codable struct)") { benchmark in
        let decoder = JSONDecoder()
        blackHole(try decoder.decode(RequestLine.self, from: data))
    }
    Benchmark("JSONSerialization") { benchmark in
        blackHole(try JSONSerialization.jsonObject(with: data))
    }
}
