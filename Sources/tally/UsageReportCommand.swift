import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally usage report`: reportUsage, one measurement.
struct UsageReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Report usage of a feature: add VALUE to the current usage, or set it with --set.",
        discussion: """
            Prints the measurement id, the recorded delta, the current usage and the limit.
            A negative delta goes after `--`: tally usage report acme api-calls -- -3
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The customer's id.")
    var customerId: String

    @Argument(help: "The metered feature's id.")
    var featureId: String

    @Argument(help: ArgumentHelp("An exact decimal: the delta, or the new total with --set.", valueName: "value"))
    var value: String

    @Flag(help: "Make the current usage equal to VALUE (updateBehavior SET) instead of adding it.")
    var set = false

    @Option(help: ArgumentHelp("The resource the usage belongs to.", valueName: "id"))
    var resource: String?

    @Option(help: ArgumentHelp("A dimension of the measurement; repeat for more.", valueName: "key=value"))
    var dimension: [String] = []

    @Option(help: ArgumentHelp("When the usage happened (RFC 3339; default: now).", valueName: "time"), transform: Checked.timestamp)
    var timestamp: String?

    @Option(help: "Makes a retry safe: the same key and payload returns the original result.")
    var idempotencyKey: String?

    @Flag(help: "For a credit-backed feature: refuse the report when its cost exceeds the balance.")
    var strict = false

    func validate() throws {
        // A negative delta is the daemon's to judge (refused for a credit-backed feature); a
        // negative total is not a total.
        try Checked.amount(value, set ? "VALUE with --set" : "VALUE", signed: !set)
        try UsageCommand.validatePairs(dimension, option: "--dimension")
    }

    func run() throws {
        var params: JSONObject = [
            "customerId": .string(customerId), "featureId": .string(featureId), "value": .string(value),
        ]
        if set { params["updateBehavior"] = "SET" }
        if let resource { params["resourceId"] = .string(resource) }
        if !dimension.isEmpty { params["dimensions"] = .object(UsageCommand.pairs(dimension)) }
        if let timestamp { params["timestamp"] = .string(timestamp) }
        if let idempotencyKey { params["idempotencyKey"] = .string(idempotencyKey) }
        if strict { params["strict"] = true }

        let context = TallyCommandContext(global)
        try context.run { connection in
            let result = try connection.call("reportUsage", params)
            context.output(result) { Self.render(result) }
        }
    }

    static func render(_ result: JSONValue) -> String {
        let measurement = result["measurement"]
        var rows: [(String, String)] = [
            ("measurement", Display.cell(measurement?["id"])),
            ("customer", Display.cell(measurement?["customerId"])),
            ("feature", Display.cell(measurement?["featureId"])),
            ("behavior", Display.cell(measurement?["updateBehavior"])),
            ("delta", Display.cell(measurement?["delta"])),
            ("currentUsage", Display.cell(result["currentUsage"])),
            ("usageLimit", result["usageLimit"].map { Display.cell($0) } ?? "none"),
        ]
        if let end = result["usagePeriodEnd"] { rows.append(("usagePeriodEnd", Display.cell(end))) }
        if let resource = measurement?["resourceId"] { rows.append(("resource", Display.cell(resource))) }
        if let credit = result["credit"]?.objectValue {
            rows += Display.fields(credit, leading: ["currencyId", "consumed", "balance"]).map { ("credit.\($0.0)", $0.1) }
        }
        rows.append(("timestamp", Display.cell(measurement?["timestamp"])))
        if result["duplicate"] == true { rows.append(("duplicate", "true (the original result; nothing was added)")) }
        return TableFormatter.keyValue(rows)
    }
}
