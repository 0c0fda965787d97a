import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally entitlements list`: getEntitlements as a table.
struct EntitlementsListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List a customer's entitlements: every feature its plans and promotions grant.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The customer's id.")
    var customerId: String

    func run() throws {
        let context = TallyCommandContext(global)
        try context.run { connection in
            let result = try connection.call("getEntitlements", ["customerId": .string(customerId)])
            context.output(result) { Self.render(result) }
        }
    }

    static func render(_ result: JSONValue) -> String {
        let entitlements = result["entitlements"]?.arrayValue ?? []
        guard !entitlements.isEmpty else { return "\(Display.cell(result["customerId"])) has no entitlements" }
        var table = TableFormatter(columns: [
            .init("FEATURE"), .init("ACCESS"), .init("USAGE", alignment: .right), .init("LIMIT", alignment: .right),
            .init("PERIOD"), .init("PERIOD END"), .init("SOURCE"),
        ])
        for entitlement in entitlements {
            let limit = entitlement["isUnlimited"] == true ? "unlimited" : Display.cell(entitlement["usageLimit"])
            var access = entitlement["hasAccess"] == true ? "yes" : "no"
            if let reason = entitlement["accessDeniedReason"]?.stringValue { access += " (\(reason))" }
            table.append([
                Display.cell(entitlement["featureId"]), access, Display.cell(entitlement["currentUsage"]), limit,
                Display.cell(entitlement["resetPeriod"]), Display.cell(entitlement["usagePeriodEnd"]),
                Display.cell(entitlement["source"]),
            ])
        }
        return table.render()
    }
}
