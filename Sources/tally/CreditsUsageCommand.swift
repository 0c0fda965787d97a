import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally credits usage`: getCreditUsage.
struct CreditsUsageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage",
        abstract: "Show the credits a customer consumed over time, per feature or per dimension.",
        discussion: """
            One row per series and bucket (TIMESTAMP, FEATURE or one column per --group-by key, CREDITS, \
            EVENTS), then each series' total. --start/--end override --range.
            """)

    enum Range: String, ExpressibleByArgument, CaseIterable {
        case lastDay = "LAST_DAY", lastWeek = "LAST_WEEK", lastMonth = "LAST_MONTH", lastYear = "LAST_YEAR"

        init?(argument: String) {
            let upper = String(argument.uppercased().map { $0 == "-" ? "_" : $0 })
            self.init(rawValue: upper.hasPrefix("LAST_") ? upper : "LAST_" + upper)
        }
    }

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The customer's id.")
    var customerId: String

    @Option(help: ArgumentHelp("Only this currency.", valueName: "id"))
    var currency: String?

    @Option(help: "A preset window ending now: LAST_DAY, LAST_WEEK, LAST_MONTH (default) or LAST_YEAR.")
    var range: Range?

    @Option(help: ArgumentHelp("The first instant (RFC 3339); overrides --range.", valueName: "time"), transform: Checked.timestamp)
    var start: String?

    @Option(help: ArgumentHelp("The end, exclusive (RFC 3339; default now).", valueName: "time"), transform: Checked.timestamp)
    var end: String?

    @Option(name: .customLong("group-by"), help: ArgumentHelp("A dimension key, or featureId, to split series by; up to 3.", valueName: "key"))
    var groupBy: [String] = []

    @Option(help: ArgumentHelp("Only this resource's pool.", valueName: "id"))
    var resource: String?

    func validate() throws {
        guard groupBy.count <= UsageMethods.groupByMax else {
            throw ValidationError("--group-by takes at most \(UsageMethods.groupByMax) keys.")
        }
    }

    func run() throws {
        var params: JSONObject = ["customerId": .string(customerId)]
        if let currency { params["currencyId"] = .string(currency) }
        if let range { params["timeRange"] = .string(range.rawValue) }
        if let start { params["startDate"] = .string(start) }
        if let end { params["endDate"] = .string(end) }
        if !groupBy.isEmpty { params["groupBy"] = .array(groupBy.map { .string($0) }) }
        if let resource { params["resourceId"] = .string(resource) }
        let context = TallyCommandContext(global)
        try context.run { connection in
            let result = try connection.call("getCreditUsage", params)
            context.output(result) { Self.render(result, groupBy: groupBy) }
        }
    }

    static func render(_ result: JSONValue, groupBy: [String]) -> String {
        let series = result["series"]?.arrayValue ?? []
        let labels = groupBy.isEmpty ? ["FEATURE"] : groupBy.map { $0.uppercased() }
        var points = TableFormatter(
            columns: [.init("TIMESTAMP"), .init("CURRENCY")] + labels.map { .init($0, alignment: .left) }
                + [.init("CREDITS", alignment: .right), .init("EVENTS", alignment: .right)])
        var totals = TableFormatter(
            columns: [.init("CURRENCY")] + labels.map { .init($0, alignment: .left) }
                + [.init("TOTAL CREDITS", alignment: .right), .init("EVENTS", alignment: .right)])
        for entry in series {
            let tags = groupBy.isEmpty ? [Display.cell(entry["featureId"])] : UsageHistoryCommand.tagValues(entry, groupBy: groupBy)
            let currency = Display.cell(entry["currencyId"])
            for point in entry["points"]?.arrayValue ?? [] {
                points.append([Display.cell(point["timestamp"]), currency] + tags + [Display.cell(point["value"]), Display.cell(point["eventCount"])])
            }
            totals.append([currency] + tags + [Display.cell(entry["totalCredits"]), Display.cell(entry["eventCount"])])
        }
        let window = "\(Display.cell(result["startDate"])) – \(Display.cell(result["endDate"]))"
        guard !series.isEmpty else { return "no credit usage for \(Display.cell(result["customerId"])) in \(window)" }
        return points.render() + "\n\ntotals (\(window), by \(Display.cell(result["granularity"])))\n" + totals.render()
    }
}
