import ArgumentParser
import TallyProtocol

/// `tally subscriptions …`: put customers on plans and take them off.
struct SubscriptionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscriptions",
        abstract: "Subscribe a customer to a plan, or cancel a subscription.",
        subcommands: [SubscriptionsProvisionCommand.self, SubscriptionsCancelCommand.self])

    /// A subscription for people: its fields, `plan.id` flattened.
    static func render(_ subscription: JSONValue) -> String {
        var text = TableFormatter.keyValue(
            Display.fields(
                subscription.objectValue ?? [:], leading: ["id", "customerId", "status", "plan", "startDate", "canceledAt"],
                excluding: ["duplicate"]))
        if subscription["duplicate"] == true { text += "\n(duplicate: the original result; nothing changed)" }
        return text
    }
}
