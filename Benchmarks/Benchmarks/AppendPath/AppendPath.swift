// The append path: events/s through the engine's group commit against raw synced RocksDB
// batches of the same records, measured in the same run. See docs/performance.md.
//
// Every iteration appends `eventsPerIteration` (1000) events, so the scaled throughput of every
// benchmark here is events/s and the figures compare directly:
//   raw/events/N   - 1000/N synced WriteBatches of N pre-encoded event records (the baseline)
//   raw/engine-write-set/N - the same, plus what the engine writes beside each event
//                    (customer projection, projection mark): the same bytes as the engine
//   engine/N       - a Ledger in a temp dir; N provisionCustomer commands (distinct customers)
//                    submitted at once, then all N replies awaited; 1000/N rounds
import Benchmark
import BenchSupport
import Foundation
import Logging
import RocksDB
import TallyCore
import TallyEngine

let eventsPerIteration = 1000
let groupSizes = [1, 100, 1000]

/// Distinct writer groups the engine used per 1000 events (1000/N when every round of N
/// submissions is committed as one group).
let writerGroups = BenchmarkMetric.custom("writer groups", polarity: .prefersSmaller, useScalingFactor: false)

/// Mutable fixture state for one benchmark: set up in `setup`, removed in `teardown`.
final class Fixture: @unchecked Sendable {
    var raw: RawBaseline?
    var ledger: Ledger?
    var ledgerDirectory: String?
    var nextCustomer = 0
}

/// Waits for a known number of completions that arrive on the writer thread.
final class Countdown: @unchecked Sendable {
    private let condition = NSCondition()
    private var remaining: Int
    private(set) var failures: [String] = []
    private var heads = Set<UInt64>()

    init(_ count: Int) { remaining = count }

    func done(_ reply: CommandReply, head: UInt64) {
        condition.lock()
        if case .applied = reply {} else { failures.append("\(reply)") }
        heads.insert(head)
        remaining -= 1
        if remaining == 0 { condition.broadcast() }
        condition.unlock()
    }

    /// Returns the number of distinct committed heads seen, i.e. writer groups.
    func wait() -> Int {
        condition.lock()
        while remaining > 0 { condition.wait() }
        let groups = heads.count
        condition.unlock()
        return groups
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .cpuTotal, .syscalls],
        timeUnits: .milliseconds,
        warmupIterations: 1,
        scalingFactor: .kilo,
        maxDuration: .seconds(6),
        maxIterations: 25
    )
    let records = SampleRecords(count: eventsPerIteration)

    for groupSize in groupSizes {
        for writeSet in [RawBaseline.WriteSet.events, .engineWriteSet] {
            let fixture = Fixture()
            let name = writeSet == .events ? "raw/events/\(groupSize)" : "raw/engine-write-set/\(groupSize)"
            Benchmark(name, configuration: .init(tags: ["group": "\(groupSize)"])) { benchmark in
                do {
                    try fixture.raw!.write(records: eventsPerIteration, groupSize: groupSize, writeSet: writeSet)
                } catch {
                    benchmark.error("raw write failed: \(error)")
                }
            } setup: {
                fixture.raw = try RawBaseline(records: records)
            } teardown: {
                fixture.raw?.removeDirectory()
                fixture.raw = nil
            }
        }

        let fixture = Fixture()
        Benchmark(
            "engine/\(groupSize)",
            configuration: .init(
                metrics: Benchmark.defaultConfiguration.metrics + [writerGroups],
                tags: ["group": "\(groupSize)"])
        ) { benchmark in
            let ledger = fixture.ledger!
            var groups = 0
            for _ in 0..<(eventsPerIteration / groupSize) {
                let countdown = Countdown(groupSize)
                for _ in 0..<groupSize {
                    let command = SampleRecords.command(index: fixture.nextCustomer, prefix: "engine")
                    fixture.nextCustomer += 1
                    ledger.submit(.provisionCustomer(command), idempotency: nil) { reply in
                        // Runs on the writer thread after the group's commit, before the next group.
                        countdown.done(reply, head: ledger.head.sequence)
                    }
                }
                groups += countdown.wait()
                if let failure = countdown.failures.first {
                    benchmark.error("engine reply was not applied: \(failure)")
                    return
                }
            }
            benchmark.measurement(writerGroups, groups)
        } setup: {
            let directory = try makeTemporaryDirectory(prefix: "tally-bench-engine")
            fixture.ledgerDirectory = directory
            fixture.ledger = try Ledger(dataDirectory: directory, logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() })
        } teardown: {
            fixture.ledger?.shutdown()
            fixture.ledger = nil
            if let directory = fixture.ledgerDirectory {
                try? FileManager.default.removeItem(atPath: Anchor.mirrorPath(in: directory))  // beside it
                try? FileManager.default.removeItem(atPath: directory)
            }
            fixture.ledgerDirectory = nil
        }
    }
}
