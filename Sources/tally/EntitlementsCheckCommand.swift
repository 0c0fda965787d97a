import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally entitlements check`: getEntitlement, with the answer in the exit status.
struct EntitlementsCheckCommand: ParsableCommand {
    /// The exit status when the daemon answers that access is denied.
    static let deniedExitCode: Int32 = 3

    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "May the customer use the feature (for --requested more units)? Prints ALLOWED or DENIED.",
        discussion: """
            Prints ALLOWED or DENIED with the reason (NO_FEATURE_ENTITLEMENT, USAGE_LIMIT_EXCEEDED, \
            CUSTOMER_NOT_FOUND, FEATURE_NOT_FOUND, …), the usage against the limit and the reset period.
            Exit status: 0 allowed, 3 denied (also with --json), 1 the daemon refused the request, \
            2 the daemon could not be reached, 64 bad usage.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The customer's id.")
    var customerId: String

    @Argument(help: "The feature's id.")
    var featureId: String

    @Option(parsing: .unconditional, help: ArgumentHelp("Units the caller is about to use (default 1).", valueName: "n"))
    var requested: String?

    @Option(help: ArgumentHelp("Count only usage of this resource.", valueName: "id"))
    var resource: String?

    func validate() throws {
        if let requested { try Checked.amount(requested, "--requested") }
    }

    func run() throws {
        var params: JSONObject = ["customerId": .string(customerId), "featureId": .string(featureId)]
        if let requested { params["requestedUsage"] = .string(requested) }
        if let resource { params["resourceId"] = .string(resource) }

        let context = TallyCommandContext(global)
        var allowed = false
        try context.run { connection in
            let result = try connection.call("getEntitlement", params)
            allowed = result["hasAccess"] == true
            context.output(result) { Self.render(result) }
        }
        if !allowed { throw ExitCode(Self.deniedExitCode) }
    }

    static func render(_ result: JSONValue) -> String {
        let allowed = result["hasAccess"] == true
        var rows: [(String, String)] = [
            (allowed ? "ALLOWED" : "DENIED", "\(Display.cell(result["customerId"])) / \(Display.cell(result["featureId"]))")
        ]
        if let reason = result["accessDeniedReason"] { rows.append(("reason", Display.cell(reason))) }
        rows.append(("usage", EntitlementsCommand.usage(result)))
        rows.append(("requested", Display.cell(result["requestedUsage"])))
        let period = EntitlementsCommand.period(result)
        if !period.isEmpty { rows.append(("period", period)) }
        if let balance = result["creditBalance"] {
            // {currencyId, balance} as `0 credits`; another shape as the daemon sent it.
            let text = balance["balance"].map { "\(Display.cell($0)) \(Display.cell(balance["currencyId"]))" } ?? Display.cell(balance)
            rows.append(("creditBalance", text))
        }
        if let source = result["source"] { rows.append(("source", Display.cell(source))) }
        return TableFormatter.keyValue(rows)
    }
}
