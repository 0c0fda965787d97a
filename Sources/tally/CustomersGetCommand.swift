import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally customers get`: getCustomer.
struct CustomersGetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Show a customer and its subscriptions.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The customer's id.")
    var customerId: String

    func run() throws {
        let context = TallyCommandContext(global)
        try context.run { connection in
            let customer = try connection.call("getCustomer", ["customerId": .string(customerId)])
            context.output(customer) { CustomersCommand.render(customer) }
        }
    }
}
