import ArgumentParser
import TallyProtocol

/// `tally usage …`: report usage and read its history.
struct UsageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage",
        abstract: "Report or import usage of metered features, show its history and dimension keys.",
        subcommands: [UsageReportCommand.self, UsageHistoryCommand.self, UsageImportCommand.self, UsageKeysCommand.self])

    /// `key=value` options (repeatable) as a JSON object of strings; the value may hold `=`.
    static func pairs(_ entries: [String]) -> JSONObject {
        var object = JSONObject()
        for entry in entries {
            let parts = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            object[String(parts[0])] = .string(String(parts[1]))
        }
        return object
    }

    /// Throws a usage error unless every entry is `key=value` with a non-empty key.
    static func validatePairs(_ entries: [String], option: String) throws {
        for entry in entries where !entry.contains("=") || entry.hasPrefix("=") {
            throw ValidationError("\(option) takes key=value, got '\(entry)'.")
        }
    }
}
