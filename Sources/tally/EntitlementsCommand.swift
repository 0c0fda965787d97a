import ArgumentParser
import TallyProtocol

/// `tally entitlements …`: may a customer use a feature, and how much is left.
struct EntitlementsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "entitlements",
        abstract: "Check a customer's access to a feature, list its entitlements, grant or revoke a promotional one.",
        subcommands: [EntitlementsCheckCommand.self, EntitlementsListCommand.self, EntitlementsGrantCommand.self, EntitlementsRevokeCommand.self])

    /// `40 / 100`, `40 / unlimited`, or just the usage when there is no limit.
    static func usage(_ entitlement: JSONValue) -> String {
        let current = Display.cell(entitlement["currentUsage"])
        if entitlement["isUnlimited"] == true { return "\(current) / unlimited" }
        if let limit = entitlement["usageLimit"] { return "\(current) / \(Display.cell(limit))" }
        return current
    }

    /// `MONTH 2026-11-01T00:00:00.000Z → 2026-12-01T00:00:00.000Z`, or "" without a reset period.
    static func period(_ entitlement: JSONValue) -> String {
        guard let period = entitlement["resetPeriod"]?.stringValue else { return "" }
        let start = Display.cell(entitlement["usagePeriodStart"]), end = Display.cell(entitlement["usagePeriodEnd"])
        return start.isEmpty && end.isEmpty ? period : "\(period) \(start) → \(end)"
    }
}
