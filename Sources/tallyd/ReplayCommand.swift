import ArgumentParser
import Foundation
import TallyCore
import TallyEngine
import TallyStorage

/// `tallyd replay`: rebuilds every projection from the log alone, in memory, and with --verify
/// compares it with what is stored. Opens the database read-only; for a running daemon,
/// `tally ledger verify` does the same check against a consistent snapshot.
struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Rebuild every projection from the log alone and, with --verify, compare it with what is stored.",
        discussion: """
            Checks the hash chain over every event. With --verify also compares every stored \
            projection record, reads every idempotency record and checks the anchor. Opens the \
            database read-only (safe beside a running daemon, which keeps writing).
            Exit status: 0 everything checked is consistent; 1 a problem was found (each is \
            printed with what to do) or the database cannot be read; 64 bad usage.
            """)

    @Option(name: .long, help: "Data directory.")
    var dataDir: String = "./tally-data"

    @Flag(name: .long, help: "Compare the replay with the stored projections, idempotency records and anchor.")
    var verify = false

    // Unconditional: `--to-sequence -1` is a wrong value (said so), not a missing one.
    @Option(name: .long, parsing: .unconditional, help: "Replay events 1…N only (N: a sequence number, 0 or more).")
    var toSequence: UInt64?

    @Option(name: .long, help: "Replay the events recorded at or before this RFC 3339 timestamp.")
    var asOf: String?

    @Flag(name: .long, help: "Print every credit pool's balance as replayed: at the --as-of time, else at the last replayed event (what getCreditBalance asOf answers).")
    var balances = false

    func validate() throws {
        if toSequence != nil && asOf != nil { throw ValidationError("--to-sequence and --as-of cannot be combined.") }
        if verify && (toSequence != nil || asOf != nil) {
            throw ValidationError("--verify compares with the stored projections, which stand at the log's head; leave out --to-sequence/--as-of.")
        }
        if let asOf {
            do {
                _ = try Timestamp(parsingRFC3339: asOf)
            } catch {
                throw ValidationError("--as-of: \(error)")
            }
        }
    }

    func run() throws {
        let target: Audit.Target
        if let toSequence {
            target = .sequence(toSequence)
        } else if let asOf {
            do {
                target = .asOf(try Timestamp(parsingRFC3339: asOf))
            } catch {
                throw ValidationError("--as-of: \(error)")
            }
        } else {
            target = .head
        }
        let bar = ProgressBar(label: "replay", unit: "events")
        let report: Audit.Report
        do {
            report = try Audit.run(dataDirectory: dataDir, target: target, verify: verify, balances: balances) { bar.update($0, of: $1) }
        } catch {
            printError("tallyd replay: \(error)")
            throw ExitCode(1)
        }
        bar.finish(report.eventsRead, of: report.eventsRead)
        print(Self.render(report, verify: verify))
        if !report.isValid { throw ExitCode(1) }
    }

    static func render(_ report: Audit.Report, verify: Bool) -> String {
        var lines = ["replay of \(report.databasePath)"]
        if report.readToEnd {
            lines.append("events read: \(report.eventsRead) (through sequence \(report.lastSequence) of \(report.logLastSequence)); head hash \(report.headHash.hexString)")
        } else {
            // The log's last sequence is unknown when its last event is what does not decode.
            let end = report.logLastSequence > 0 ? ", before the log's last event (sequence \(report.logLastSequence))" : ""
            lines.append("events read: the replay stopped on damage\(end) (see PROBLEM)")
        }
        if report.chainProblem != nil {
            lines.append("hash chain: BROKEN")
        } else {
            lines.append(report.readToEnd ? "hash chain: valid" : "hash chain: not checked to the end: reading the log failed (see PROBLEM)")
        }
        let names = Set(report.replayedCounts.keys).union(report.storedCounts?.keys ?? [:].keys).sorted()
        for name in names {
            var line = "projection \(name): \(report.replayedCounts[name] ?? 0) replayed"
            if let stored = report.storedCounts { line += ", \(stored[name] ?? 0) stored" }
            lines.append(line)
        }
        if names.isEmpty { lines.append("projections: none") }
        if let note = report.olderLayoutNote { lines.append("projections: \(note)") }
        if let count = report.idempotencyRecords { lines.append("idempotency records: \(count) read") }
        for (customer, b) in report.balances ?? [] {
            lines.append("balance \(customer) \(b.currencyId) \(b.resourceId.map { "pool \($0)" } ?? "global"): \(b.balance) (grants remaining \(b.grantsRemaining), overdraft \(b.overdraft))")
        }
        if verify {
            lines.append("anchor: \(report.anchor.map { "\($0)" } ?? "none")\(report.readToEnd ? "" : " (not compared: the replay did not reach the end)")")
        }
        for problem in report.problems { lines.append("PROBLEM: \(problem)") }
        if !report.mismatches.isEmpty {
            // The other problems say what to do in their own line; a mismatch is one of many.
            lines.append("TO DO: the stored projections or idempotency records differ from what the log replays to (a missing idempotency record lets a retry of its command apply again). \(Ledger.restoreAdvice) If the hash chain is valid and the anchor matches, the log itself is intact: report the mismatch with the copy kept.")
        }
        if report.isValid {
            if verify, report.olderLayoutNote == nil {
                lines.append("OK: the log chains and every stored projection matches it.")
            } else {
                lines.append(verify ? "OK: the log chains (the stored projections were not compared: see above)." : "OK: the log chains.")
            }
        } else {
            lines.append("FAILED: \(report.problems.count) problem(s).")
        }
        return lines.joined(separator: "\n")
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
