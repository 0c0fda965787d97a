import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally customers provision`: provisionCustomer, an upsert.
struct CustomersProvisionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provision",
        abstract: "Create a customer, or update the given fields of an existing one.",
        discussion: """
            --metadata replaces the customer's whole metadata with the entries given (as \
            provisionCustomer does): give every entry to keep. Without --metadata it is left as it is.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The customer's id.")
    var customerId: String

    @Option(help: "Display name.")
    var name: String?

    @Option(help: "Email address.")
    var email: String?

    @Option(help: ArgumentHelp("An entry of the new metadata, which replaces all of it; repeat for more.", valueName: "key=value"))
    var metadata: [String] = []

    @Option(help: "Makes a retry safe: the same key and payload returns the original result.")
    var idempotencyKey: String?

    func validate() throws {
        var keys: Set<String> = []
        for entry in metadata {
            guard entry.contains("="), !entry.hasPrefix("=") else { throw ValidationError("--metadata takes key=value, got '\(entry)'.") }
            let key = String(entry.split(separator: "=", maxSplits: 1)[0])
            // Byte-exact, as the daemon compares keys; one value each.
            guard keys.insert(key).inserted else { throw ValidationError("--metadata gives '\(key)' twice; give each key once.") }
        }
    }

    func run() throws {
        var params: JSONObject = ["customerId": .string(customerId)]
        if let name { params["name"] = .string(name) }
        if let email { params["email"] = .string(email) }
        if !metadata.isEmpty {
            var entries = JSONObject()
            for entry in metadata {
                let parts = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                entries[String(parts[0])] = .string(String(parts[1]))
            }
            params["metadata"] = .object(entries)
        }
        if let idempotencyKey { params["idempotencyKey"] = .string(idempotencyKey) }

        let context = TallyCommandContext(global)
        try context.run { connection in
            let customer = try connection.call("provisionCustomer", params)
            context.output(customer) { CustomersCommand.render(customer) }
        }
    }
}
