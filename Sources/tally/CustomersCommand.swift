import ArgumentParser
import TallyProtocol

/// `tally customers …`: provision, show and list customers.
struct CustomersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "customers",
        abstract: "Provision, show and list customers.",
        subcommands: [CustomersProvisionCommand.self, CustomersGetCommand.self, CustomersListCommand.self])

    /// A customer for people: its fields, then its subscriptions as a table.
    static func render(_ customer: JSONValue) -> String {
        let object = customer.objectValue ?? [:]
        var text = TableFormatter.keyValue(
            Display.fields(
                object, leading: ["id", "name", "email", "createdAt", "updatedAt", "metadata"],
                excluding: ["subscriptions"]))
        let subscriptions = object["subscriptions"]?.arrayValue ?? []
        if subscriptions.isEmpty {
            text += "\n\nsubscriptions: none"
        } else {
            // The dates say what the status alone does not: a subscription not started yet, or when it ended.
            var table = TableFormatter(["ID", "STATUS", "PLAN", "PLAN NAME", "START", "CANCELED AT"])
            for subscription in subscriptions {
                table.append([
                    Display.cell(subscription["id"]), Display.cell(subscription["status"]),
                    Display.cell(subscription["plan"]?["id"]), Display.cell(subscription["plan"]?["name"]),
                    Display.cell(subscription["startDate"]), Display.cell(subscription["canceledAt"]),
                ])
            }
            text += "\n\nsubscriptions:\n" + table.render()
        }
        return text
    }
}
