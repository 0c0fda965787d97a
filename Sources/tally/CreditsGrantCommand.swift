import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally credits grant`: grantCredits.
struct CreditsGrantCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grant",
        abstract: "Grant credits to a customer's pool (the global pool, or a resource's with --resource).",
        discussion: """
            Prints the new grant: its id, status (ACTIVE, or SCHEDULED until --effective-at), amount and \
            what it repaid of an overdraft. Credits are drawn lowest --priority first (0–100, default 50).
            """)

    enum GrantType: String, ExpressibleByArgument, CaseIterable {
        case paid = "PAID", promotional = "PROMOTIONAL"

        init?(argument: String) { self.init(rawValue: argument.uppercased()) }
    }

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The customer's id.")
    var customerId: String

    @Argument(help: "The currency's id.")
    var currencyId: String

    @Argument(help: ArgumentHelp("How many credits: an exact decimal greater than 0.", valueName: "amount"))
    var amount: String

    @Option(help: "PAID (purchased) or PROMOTIONAL (free or incentive).")
    var type: GrantType = .paid

    @Option(parsing: .unconditional, help: ArgumentHelp("Draw order, 0–100: lower is drawn first (default 50).", valueName: "n"))
    var priority: Int?

    @Option(name: .customLong("expire-at"), help: ArgumentHelp("When what is left expires (RFC 3339).", valueName: "time"), transform: Checked.timestamp)
    var expireAt: String?

    @Option(name: .customLong("effective-at"), help: ArgumentHelp("When the credits become usable (RFC 3339; default now).", valueName: "time"), transform: Checked.timestamp)
    var effectiveAt: String?

    @Option(help: ArgumentHelp("Credit this resource's pool instead of the global one.", valueName: "id"))
    var resource: String?

    @Option(help: ArgumentHelp("A display name for the grant.", valueName: "text"))
    var name: String?

    @Option(help: ArgumentHelp("A comment kept with the grant.", valueName: "text"))
    var comment: String?

    @Option(help: "Makes a retry safe: the same key and payload returns the original grant.")
    var idempotencyKey: String?

    func validate() throws {
        try Checked.amount(amount, "AMOUNT", positive: true)
        if let priority, !(0...100).contains(priority) { throw ValidationError("--priority must be from 0 to 100, got \(priority).") }
    }

    func run() throws {
        var params: JSONObject = [
            "customerId": .string(customerId), "currencyId": .string(currencyId), "amount": .string(amount), "grantType": .string(type.rawValue),
        ]
        if let priority { params["priority"] = .number(String(priority)) }
        if let expireAt { params["expireAt"] = .string(expireAt) }
        if let effectiveAt { params["effectiveAt"] = .string(effectiveAt) }
        if let resource { params["resourceId"] = .string(resource) }
        if let name { params["displayName"] = .string(name) }
        if let comment { params["comment"] = .string(comment) }
        if let idempotencyKey { params["idempotencyKey"] = .string(idempotencyKey) }
        let context = TallyCommandContext(global)
        try context.run { connection in
            let result = try connection.call("grantCredits", params)
            context.output(result) { CreditsCommand.renderGrant(result) }
        }
    }
}

/// `tally credits void`: voidCreditGrant.
struct CreditsVoidCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "void",
        abstract: "Void a credit grant: what is left of it leaves the balance at once; consumed credits stay consumed.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The grant's id (as `tally credits grants` shows it).")
    var grantId: String

    @Option(help: "Makes a retry safe: the same key returns the original result.")
    var idempotencyKey: String?

    func run() throws {
        var params: JSONObject = ["grantId": .string(grantId)]
        if let idempotencyKey { params["idempotencyKey"] = .string(idempotencyKey) }
        let context = TallyCommandContext(global)
        try context.run { connection in
            let result = try connection.call("voidCreditGrant", params)
            context.output(result) { CreditsCommand.renderGrant(result) }
        }
    }
}
