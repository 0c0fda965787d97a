import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally plans define`: definePlan, creating or replacing one plan.
struct PlansDefineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "define",
        abstract: "Create a plan, or replace its definition (a new version: what the flags omit is not kept).",
        discussion: """
            --entitlement takes feature[:limit][:PERIOD], repeated once per feature:
              tally plans define pro --name Pro --entitlement api-calls:10000:MONTH \\
                --entitlement storage:unlimited --entitlement sso
            limit is a decimal or `unlimited`; PERIOD (DAY, WEEK, MONTH, YEAR) resets usage each \
            calendar period in UTC; `feature:none` lists the feature without access. A bare feature \
            (no limit) gives a BOOLEAN feature access and a METERED one a limit of 0.
            """)

    static let periods = ["DAY", "WEEK", "MONTH", "YEAR"]

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The plan's id.")
    var planId: String

    @Option(help: "Display name.")
    var name: String

    @Option(help: ArgumentHelp("A feature the plan grants; repeat for more.", valueName: "feature[:limit][:PERIOD]"))
    var entitlement: [String] = []

    @Option(name: .customLong("trial-days"), parsing: .unconditional, help: "Length of the trial, in days.")
    var trialDays: Int?

    @Option(help: "Makes a retry safe: the same key and payload returns the original result.")
    var idempotencyKey: String?

    func validate() throws {
        for entry in entitlement { _ = try Self.parseEntitlement(entry) }
        if let trialDays, trialDays < 0 { throw ValidationError("--trial-days must be 0 or more.") }
    }

    /// `feature[:limit][:PERIOD]` as a plan entitlement object.
    static func parseEntitlement(_ entry: String) throws -> JSONValue {
        let parts = entry.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard let featureId = parts.first, !featureId.isEmpty, parts.count <= 3 else {
            throw ValidationError("--entitlement takes feature[:limit][:PERIOD], got '\(entry)'.")
        }
        var object: JSONObject = ["featureId": .string(featureId)]
        var sawLimit = false, sawPeriod = false
        for part in parts.dropFirst() where !part.isEmpty {
            let upper = part.uppercased()
            if periods.contains(upper), !sawPeriod {
                object["resetPeriod"] = .string(upper)
                sawPeriod = true
            } else if !sawLimit, upper == "UNLIMITED" {
                object["hasUnlimitedUsage"] = true
                sawLimit = true
            } else if !sawLimit, upper == "NONE" {
                object["hasAccess"] = false
                sawLimit = true
            } else if !sawLimit, TableFormatter.isNumeric(part) || Checked.isAmount(part) {
                try Checked.amount(part, "The limit in --entitlement '\(entry)'")
                object["usageLimit"] = .string(part)
                sawLimit = true
            } else {
                throw ValidationError(
                    "--entitlement '\(entry)': '\(part)' is neither a limit (a decimal, unlimited, none) nor a period (\(periods.joined(separator: ", "))).")
            }
        }
        return .object(object)
    }

    func run() throws {
        var params: JSONObject = [
            "planId": .string(planId), "displayName": .string(name),
            "entitlements": .array(try entitlement.map(Self.parseEntitlement)),
        ]
        if let trialDays { params["trialDays"] = .integer(trialDays) }
        if let idempotencyKey { params["idempotencyKey"] = .string(idempotencyKey) }

        let context = TallyCommandContext(global)
        try context.run { connection in
            let plan = try connection.call("definePlan", params)
            context.output(plan) { PlansCommand.render(plan) }
        }
    }
}
