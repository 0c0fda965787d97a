import ArgumentParser
import TallyClient
import TallyProtocol

/// `tally features define`: defineFeature, creating or updating one feature.
struct FeaturesDefineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "define",
        abstract: "Create a feature, or replace its definition (a new version: what the flags omit is not kept).",
        discussion: """
            A metered feature can aggregate raw events (tally events send) with a meter:
              tally features define api-calls --type METERED \\
                --meter-event request --aggregation COUNT \\
                --filter method:IN:GET,POST --filter status:NOT_EQUALS:500
            --filter takes key:OP[:values] with OP one of EQUALS, NOT_EQUALS (one value, commas and \
            all), IN (v1,v2…) or EXISTS (no values).
            --field names the dimension SUM, MAX, MIN, UNIQUE_COUNT and LATEST read.
            --credit-currency with --credit-per-unit makes the feature credit-backed.
            """)

    enum FeatureType: String, ExpressibleByArgument, CaseIterable {
        case metered = "METERED", boolean = "BOOLEAN"
        init?(argument: String) { self.init(rawValue: argument.uppercased()) }
    }

    enum Aggregation: String, ExpressibleByArgument, CaseIterable {
        case count = "COUNT", sum = "SUM", max = "MAX", min = "MIN", uniqueCount = "UNIQUE_COUNT", latest = "LATEST"
        init?(argument: String) { self.init(rawValue: argument.uppercased()) }
    }

    static let filterOperators = ["EQUALS", "NOT_EQUALS", "IN", "EXISTS"]

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The feature's id.")
    var featureId: String

    @Option(help: "METERED (usage is counted) or BOOLEAN (on or off).")
    var type: FeatureType

    @Option(help: "Display name.")
    var name: String?

    @Option(help: "The unit of usage, e.g. requests or GB.")
    var unit: String?

    @Option(name: .customLong("meter-event"), help: ArgumentHelp("The raw event name the meter counts.", valueName: "event"))
    var meterEvent: String?

    @Option(help: "How the meter aggregates matching events.")
    var aggregation: Aggregation?

    @Option(help: ArgumentHelp("The dimension the aggregation reads (all but COUNT).", valueName: "key"))
    var field: String?

    @Option(help: ArgumentHelp("Only events matching this; repeat for more (all must match).", valueName: "key:OP:v1,v2"))
    var filter: [String] = []

    @Option(name: .customLong("credit-currency"), help: ArgumentHelp("The currency usage is paid in.", valueName: "currency"))
    var creditCurrency: String?

    @Option(name: .customLong("credit-per-unit"), parsing: .unconditional, help: ArgumentHelp("Credits deducted per unit of usage.", valueName: "amount"))
    var creditPerUnit: String?

    @Option(help: "Makes a retry safe: the same key and payload returns the original result.")
    var idempotencyKey: String?

    func validate() throws {
        if (meterEvent == nil) != (aggregation == nil) {
            throw ValidationError("--meter-event and --aggregation go together.")
        }
        if meterEvent == nil, field != nil || !filter.isEmpty {
            throw ValidationError("--field and --filter need a meter (--meter-event and --aggregation).")
        }
        if (creditCurrency == nil) != (creditPerUnit == nil) {
            throw ValidationError("--credit-currency and --credit-per-unit go together.")
        }
        if let creditPerUnit { try Checked.amount(creditPerUnit, "--credit-per-unit", positive: true) }
        // As the daemon: a unit (a label) is allowed on a BOOLEAN feature, a meter or a cost is not.
        if type == .boolean, meterEvent != nil || creditCurrency != nil {
            throw ValidationError("a BOOLEAN feature takes no meter or credit cost.")
        }
        for entry in filter { _ = try Self.parseFilter(entry) }
    }

    /// `key:OP[:v1,v2…]` as a meter filter object.
    static func parseFilter(_ entry: String) throws -> JSONValue {
        let parts = entry.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, !parts[0].isEmpty else {
            throw ValidationError("--filter takes key:OP[:v1,v2…], got '\(entry)'.")
        }
        let op = parts[1].uppercased()
        guard filterOperators.contains(op) else {
            throw ValidationError("--filter '\(entry)': OP must be one of \(filterOperators.joined(separator: ", ")).")
        }
        var filter: JSONObject = ["key": .string(parts[0]), "op": .string(op)]
        if parts.count == 3 {
            // Only IN takes a list: an EQUALS value may hold a comma ("k:EQUALS:a,b" is "a,b").
            let values = op == "IN" ? parts[2].split(separator: ",", omittingEmptySubsequences: false).map(String.init) : [parts[2]]
            filter["values"] = .array(values.map { .string($0) })
        }
        return .object(filter)
    }

    func run() throws {
        var params: JSONObject = ["featureId": .string(featureId), "type": .string(type.rawValue)]
        if let name { params["displayName"] = .string(name) }
        if let unit { params["unit"] = .string(unit) }
        if let meterEvent, let aggregation {
            var meter: JSONObject = ["eventName": .string(meterEvent), "aggregation": .string(aggregation.rawValue)]
            if let field { meter["field"] = .string(field) }
            if !filter.isEmpty { meter["filters"] = .array(try filter.map(Self.parseFilter)) }
            params["meter"] = .object(meter)
        }
        if let creditCurrency, let creditPerUnit {
            params["creditCost"] = ["currencyId": .string(creditCurrency), "amountPerUnit": .string(creditPerUnit)]
        }
        if let idempotencyKey { params["idempotencyKey"] = .string(idempotencyKey) }

        let context = TallyCommandContext(global)
        try context.run { connection in
            let feature = try connection.call("defineFeature", params)
            context.output(feature) { FeaturesCommand.render(feature) }
        }
    }
}
