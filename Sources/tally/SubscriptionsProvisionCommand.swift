import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally subscriptions provision`: provisionSubscription.
struct SubscriptionsProvisionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provision",
        abstract: "Subscribe a customer to a plan (or update the subscription given by --id).")

    enum Status: String, ExpressibleByArgument, CaseIterable {
        case active = "ACTIVE", trial = "TRIAL", paused = "PAUSED", canceled = "CANCELED"
        init?(argument: String) { self.init(rawValue: argument.uppercased()) }
    }

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The customer's id.")
    var customerId: String

    @Argument(help: "The plan's id.")
    var planId: String

    @Option(help: ArgumentHelp("The subscription's id (default: the daemon picks one).", valueName: "id"))
    var id: String?

    @Option(help: "The subscription's status (default ACTIVE).")
    var status: Status?

    @Option(name: .customLong("start-date"), help: ArgumentHelp("When it starts (RFC 3339; default: now).", valueName: "time"), transform: Checked.timestamp)
    var startDate: String?

    @Option(help: "Makes a retry safe: the same key and payload returns the original result.")
    var idempotencyKey: String?

    func run() throws {
        var params: JSONObject = ["customerId": .string(customerId), "planId": .string(planId)]
        if let id { params["subscriptionId"] = .string(id) }
        if let status { params["status"] = .string(status.rawValue) }
        if let startDate { params["startDate"] = .string(startDate) }
        if let idempotencyKey { params["idempotencyKey"] = .string(idempotencyKey) }

        let context = TallyCommandContext(global)
        try context.run { connection in
            let subscription = try connection.call("provisionSubscription", params)
            context.output(subscription) { SubscriptionsCommand.render(subscription) }
        }
    }
}
