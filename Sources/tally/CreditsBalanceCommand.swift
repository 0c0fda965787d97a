import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally credits balance`: getCreditBalance, now or as the ledger stood.
struct CreditsBalanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "balance",
        abstract: "Show a customer's credit balance per currency and pool, now or as of a time or sequence.",
        discussion: """
            BALANCE is what can be spent: the active grants' remaining credits less any OVERDRAFT.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The customer's id.")
    var customerId: String

    @Option(help: ArgumentHelp("Only this currency.", valueName: "id"))
    var currency: String?

    @Option(help: ArgumentHelp("Only this resource's pool.", valueName: "id"))
    var resource: String?

    @OptionGroup var asOf: AsOfOptions

    func run() throws {
        var params: JSONObject = ["customerId": .string(customerId)]
        if let currency { params["currencyId"] = .string(currency) }
        if let resource { params["resourceId"] = .string(resource) }
        if let asOf = asOf.param { params["asOf"] = asOf }
        let context = TallyCommandContext(global)
        try context.run { connection in
            let result = try connection.call("getCreditBalance", params)
            context.output(result) { Self.render(result) }
        }
    }

    static func render(_ result: JSONValue) -> String {
        let balances = result["balances"]?.arrayValue ?? []
        var text: String
        if balances.isEmpty {
            text = "no credits for \(Display.cell(result["customerId"]))"
        } else {
            var table = TableFormatter(columns: [
                .init("CURRENCY"), .init("POOL"), .init("BALANCE", alignment: .right), .init("GRANTS REMAINING", alignment: .right),
                .init("OVERDRAFT", alignment: .right),
            ])
            for balance in balances {
                table.append([
                    Display.cell(balance["currencyId"]), balance["resourceId"].map { Display.cell($0) } ?? "(global)",
                    Display.cell(balance["balance"]), Display.cell(balance["grantsRemaining"]), Display.cell(balance["overdraft"]),
                ])
            }
            text = table.render()
        }
        if let note = AsOfOptions.note(result) { text += "\n" + note }
        return text
    }
}

/// `tally credits grants`: getCreditGrants.
struct CreditsGrantsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grants",
        abstract: "List a customer's credit grants, oldest first.")

    enum Status: String, ExpressibleByArgument, CaseIterable {
        case scheduled = "SCHEDULED", active = "ACTIVE", expired = "EXPIRED", voided = "VOIDED"

        init?(argument: String) { self.init(rawValue: argument.uppercased()) }
    }

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The customer's id.")
    var customerId: String

    @Option(help: "Only grants with this status.")
    var status: Status?

    @Option(help: ArgumentHelp("Only this currency.", valueName: "id"))
    var currency: String?

    @Option(help: ArgumentHelp("Only this resource's pool.", valueName: "id"))
    var resource: String?

    func run() throws {
        var params: JSONObject = ["customerId": .string(customerId)]
        if let status { params["status"] = .string(status.rawValue) }
        if let currency { params["currencyId"] = .string(currency) }
        if let resource { params["resourceId"] = .string(resource) }
        let context = TallyCommandContext(global)
        try context.run { connection in
            let result = try connection.call("getCreditGrants", params)
            context.output(result) {
                let grants = result["grants"]?.arrayValue ?? []
                return grants.isEmpty ? "no grants" : CreditsCommand.grantsTable(grants).render()
            }
        }
    }
}
