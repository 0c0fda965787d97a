import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally subscriptions cancel`: cancelSubscription.
struct SubscriptionsCancelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a subscription: its plan's entitlements end now.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The subscription's id.")
    var subscriptionId: String

    @Option(help: "Makes a retry safe: the same key and payload returns the original result.")
    var idempotencyKey: String?

    func run() throws {
        var params: JSONObject = ["subscriptionId": .string(subscriptionId)]
        if let idempotencyKey { params["idempotencyKey"] = .string(idempotencyKey) }

        let context = TallyCommandContext(global)
        try context.run { connection in
            let subscription = try connection.call("cancelSubscription", params)
            context.output(subscription) { SubscriptionsCommand.render(subscription) }
        }
    }
}
