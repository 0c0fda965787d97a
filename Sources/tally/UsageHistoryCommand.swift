import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally usage history`: getUsageHistory as a table, with a sparkline per series below it.
struct UsageHistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Show a feature's usage over time, bucketed by minute, hour, day or month.",
        discussion: """
            One row per bucket with usage (TIMESTAMP, one column per --group-by key, VALUE, EVENTS), \
            then a sparkline of each series; buckets without usage show as `·`.
            """)

    enum Granularity: String, ExpressibleByArgument, CaseIterable {
        case minute = "MINUTE", hour = "HOUR", day = "DAY", month = "MONTH"

        init?(argument: String) { self.init(rawValue: argument.uppercased()) }
    }

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The customer's id.")
    var customerId: String

    @Argument(help: "The feature's id.")
    var featureId: String

    @Option(help: ArgumentHelp("The first instant (RFC 3339).", valueName: "time"), transform: Checked.timestamp)
    var start: String

    @Option(help: ArgumentHelp("The end, exclusive (RFC 3339; default: open).", valueName: "time"), transform: Checked.timestamp)
    var end: String?

    @Option(help: "The bucket size.")
    var granularity: Granularity = .day

    @Option(name: .customLong("group-by"), help: ArgumentHelp("A dimension key to split series by; up to 3.", valueName: "key"))
    var groupBy: [String] = []

    @Option(help: ArgumentHelp("Only usage of this resource.", valueName: "id"))
    var resource: String?

    @OptionGroup var asOf: AsOfOptions

    func validate() throws {
        guard groupBy.count <= UsageMethods.groupByMax else {
            throw ValidationError("--group-by takes at most \(UsageMethods.groupByMax) keys.")
        }
    }

    func run() throws {
        var params: JSONObject = [
            "customerId": .string(customerId), "featureId": .string(featureId), "startDate": .string(start),
            "granularity": .string(granularity.rawValue),
        ]
        if let end { params["endDate"] = .string(end) }
        if !groupBy.isEmpty { params["groupBy"] = .array(groupBy.map { .string($0) }) }
        if let resource { params["resourceId"] = .string(resource) }
        if let asOf = asOf.param { params["asOf"] = asOf }

        let context = TallyCommandContext(global)
        try context.run { connection in
            let result = try connection.call("getUsageHistory", params)
            context.output(result) { Self.render(result, groupBy: groupBy, granularity: granularity) }
        }
    }

    static func render(_ result: JSONValue, groupBy: [String], granularity: Granularity) -> String {
        let series = result["series"]?.arrayValue ?? []
        var table = TableFormatter(
            columns: [.init("TIMESTAMP")] + groupBy.map { .init($0.uppercased(), alignment: .left) }
                + [.init("VALUE", alignment: .right), .init("EVENTS", alignment: .right)])
        var charts: [String] = []
        for entry in series {
            let tags = tagValues(entry, groupBy: groupBy)
            let points = entry["points"]?.arrayValue ?? []
            for point in points {
                table.append([Display.cell(point["timestamp"])] + tags + [Display.cell(point["value"]), Display.cell(point["eventCount"])])
            }
            guard !points.isEmpty else { continue }
            // As the table escapes them (the tags are stored data); a series without the key has
            // the value "" (docs/protocol.md), shown so, not as a value it could also be.
            let label = zip(groupBy, tags).map { "\($0)=\($1.isEmpty ? "\"\"" : TableFormatter.printable($1))" }.joined(separator: " ")
            let samples = points.map { (timestamp: $0["timestamp"]?.stringValue ?? "", value: $0["value"]?.stringValue ?? Display.cell($0["value"])) }
            charts.append(UsageChart.render(label: label.isEmpty ? "usage" : label, samples: samples,
                                            total: Display.cell(entry["total"]), granularity: granularity))
        }
        let asOf = AsOfOptions.note(result).map { "\n" + $0 } ?? ""
        if table.rows.isEmpty {
            return "no usage of \(Display.cell(result["featureId"])) for \(Display.cell(result["customerId"])) in this range" + asOf
        }
        var text = table.render()
        text += "\n\n" + charts.joined(separator: "\n")
        if let aggregation = result["aggregation"]?.stringValue { text += "\n(aggregation \(aggregation))" }
        return text + asOf
    }

    /// The series' tag values in --group-by order ("" for events without the dimension).
    static func tagValues(_ series: JSONValue, groupBy: [String]) -> [String] {
        let tags = series["tags"]?.arrayValue ?? []
        return groupBy.map { key in
            Display.cell(tags.first { $0["key"]?.stringValue == key }?["value"])
        }
    }
}
