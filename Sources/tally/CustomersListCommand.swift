import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally customers list`: listCustomers, one page or (`--all`) every page.
struct CustomersListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List customers, a page at a time.")

    @OptionGroup var global: GlobalOptions

    @Option(parsing: .unconditional, help: "Customers per page (the daemon caps it).")
    var limit: Int?

    @Option(help: ArgumentHelp("Start after this cursor (the `next` of a previous page).", valueName: "cursor"))
    var after: String?

    @Flag(help: "Follow `next` until the last page.")
    var all = false

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1.") }
    }

    func run() throws {
        let context = TallyCommandContext(global)
        try context.run { connection in
            var customers: [JSONValue] = []
            var cursor: JSONValue? = after.map { .string($0) }
            var page: JSONValue
            repeat {
                var params = JSONObject()
                if let cursor { params["after"] = cursor }
                if let limit { params["limit"] = .number(String(min(limit, CustomerMethods.listLimitMax))) }
                page = try connection.call("listCustomers", params)
                customers += page["customers"]?.arrayValue ?? []
                // JSONValue is ExpressibleByNilLiteral: test isNull rather than map to `nil`.
                if let next = page["next"], !next.isNull { cursor = next } else { cursor = nil }
            } while all && cursor != nil

            let result: JSONValue = all ? .object(["customers": .array(customers), "next": .null]) : page
            context.output(result) {
                var table = TableFormatter(["ID", "NAME", "EMAIL", "CREATED"])
                for customer in customers {
                    table.append([
                        Display.cell(customer["id"]), Display.cell(customer["name"]),
                        Display.cell(customer["email"]), Display.cell(customer["createdAt"]),
                    ])
                }
                return table.render()
            }
            if !context.json, let cursor {
                Console.error("more: tally customers list --after \(Display.shellQuoted(Display.cell(cursor))) (or --all)")
            }
        }
    }
}
