import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally ledger verify`: the daemon's verifyLedger (a replay of the whole log under one read
/// snapshot, compared with the stored projections while writes go on).
struct LedgerVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Replay the whole log on the running daemon and compare it with every stored projection.",
        discussion: "Exit status: 0 consistent; 1 the hash chain is broken or a projection differs (each mismatch is printed), or the daemon refused; 2 the daemon could not be reached.")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let context = TallyCommandContext(global)
        let patient = TallyCommandContext(global.forLongRequest)
        var valid = true
        try patient.run { connection in
            let result = try connection.call("verifyLedger")
            valid = result["hashChainValid"]?.boolValue == true && result["projectionsMatch"]?.boolValue == true
            context.output(result) {
                var lines = [
                    "events: \(result["events"]?.numberText ?? "?")",
                    "lastSequence: \(result["lastSequence"]?.numberText ?? "?")",
                    "headHash: \(result["headHash"]?.stringValue ?? "?")",
                    "hashChain: \(result["hashChainValid"]?.boolValue == true ? "valid" : "BROKEN: \(result["chainProblem"]?.stringValue ?? "")")",
                ]
                for (name, count) in (result["projections"]?.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
                    lines.append("projection \(name): \(count.numberText ?? "?")")
                }
                for mismatch in result["mismatches"]?.arrayValue ?? [] {
                    lines.append("MISMATCH \(mismatch["projection"]?.stringValue ?? "?") \(mismatch["key"]?.stringValue ?? "?"): expected \(mismatch["expected"]?.stringValue ?? "?"), stored \(mismatch["stored"]?.stringValue ?? "?")")
                }
                lines.append(valid ? "OK: the log chains and every projection matches it." : "FAILED: see above; docs/operating.md, \"Disaster recovery\".")
                return lines.joined(separator: "\n")
            }
        }
        if !valid { throw ExitCode(1) }
    }
}
