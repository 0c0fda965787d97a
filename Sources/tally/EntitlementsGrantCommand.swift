import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally entitlements grant`: grantPromotionalEntitlement.
struct EntitlementsGrantCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grant",
        abstract: "Grant a customer a promotional entitlement to a feature (it replaces an earlier one).",
        discussion: "Without --end-date it lasts until revoked. Give --limit or --unlimited; with neither, a BOOLEAN feature gets access and a METERED one a limit of 0.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The customer's id.")
    var customerId: String

    @Argument(help: "The feature's id.")
    var featureId: String

    @Option(parsing: .unconditional, help: ArgumentHelp("The usage limit, an exact decimal.", valueName: "amount"))
    var limit: String?

    @Flag(help: "No usage limit.")
    var unlimited = false

    @Option(help: ArgumentHelp("When the usage limit resets: DAY, WEEK, MONTH or YEAR (UTC calendar periods).", valueName: "period"), transform: Checked.period)
    var resetPeriod: String?

    @Option(help: ArgumentHelp("When the promotion ends (RFC 3339).", valueName: "time"), transform: Checked.timestamp)
    var endDate: String?

    func validate() throws {
        if unlimited, limit != nil { throw ValidationError("--limit and --unlimited cannot be combined.") }
        if let limit { try Checked.amount(limit, "--limit") }
    }

    func run() throws {
        var params: JSONObject = ["customerId": .string(customerId), "featureId": .string(featureId)]
        if let limit { params["usageLimit"] = .string(limit) }
        if unlimited { params["hasUnlimitedUsage"] = true }
        if let resetPeriod { params["resetPeriod"] = .string(resetPeriod.uppercased()) }
        if let endDate { params["endDate"] = .string(endDate) }
        let context = TallyCommandContext(global)
        try context.run { connection in
            let result = try connection.call("grantPromotionalEntitlement", params)
            context.output(result) { TableFormatter.keyValue(Display.fields(result.objectValue ?? [:], leading: ["customerId", "featureId"])) }
        }
    }
}
