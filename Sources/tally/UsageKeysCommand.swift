import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally usage keys`: listDimensionKeys.
struct UsageKeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "List the dimension keys present on a customer's usage and credit usage.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The customer's id.")
    var customerId: String

    @Option(help: "Only keys containing this text (case-insensitive).")
    var search: String?

    func run() throws {
        var params: JSONObject = ["customerId": .string(customerId)]
        if let search { params["search"] = .string(search) }
        let context = TallyCommandContext(global)
        try context.run { connection in
            let result = try connection.call("listDimensionKeys", params)
            context.output(result) {
                let keys = (result["keys"]?.arrayValue ?? []).map { Display.cell($0) }
                return keys.isEmpty ? "no dimension keys" : keys.joined(separator: "\n")
            }
        }
    }
}
