public import TallyCore

/// Catalog, usage and entitlement params in, results out.
public enum UsageMethods {
    public static let bulkItemsMax = 1000
    public static let eventsPerCallMax = 10_000
    public static let dimensionsMax = 32
    /// A meter's filters, and one IN filter's values: each event of the meter's name is checked
    /// against all of them, so they are bounded.
    public static let meterFiltersMax = 32
    public static let filterValuesMax = 256
    public static let groupByMax = 3

    /// `groupBy`: at most `groupByMax` distinct keys, each a dimension key.
    static func groupByKeys(_ p: inout Params) throws(RPCFailure) -> [String] {
        let groupBy = try p.optionalStringArray("groupBy") ?? []
        guard groupBy.count <= groupByMax else { throw .invalidParams(field: "groupBy", "takes at most \(groupByMax) keys") }
        for (i, key) in groupBy.enumerated() {
            guard Params.isDimensionKey(key) else { throw .invalidParams(field: "groupBy[\(i)]", "must match ^[a-zA-Z0-9_$.-]+$") }
            if let first = groupBy.firstIndex(of: key), first < i {
                throw .invalidParams(field: "groupBy[\(i)]", "repeats groupBy[\(first)] (\"\(key)\")")
            }
        }
        return groupBy
    }

    // MARK: Params

    public static func defineCurrency(_ object: JSONObject) throws(RPCFailure) -> DefineCurrency {
        var p = Params(object)
        let c = DefineCurrency(currencyId: try p.requiredID("currencyId"), displayName: try p.requiredText("displayName"), symbol: try p.optionalText("symbol"))
        _ = try p.optionalID("idempotencyKey")
        try p.finish()
        return c
    }

    public static func defineFeature(_ object: JSONObject) throws(RPCFailure) -> DefineFeature {
        var p = Params(object)
        let featureId = try p.requiredID("featureId")
        let displayName = try p.optionalText("displayName")
        let type = try p.requiredEnum("type", FeatureType.self)
        let unit = try p.optionalText("unit")
        var meter: Meter?
        if let m = try p.optionalObject("meter") {
            var mp = Params(m, path: p.field("meter"))
            let eventName = try mp.requiredID("eventName")
            let aggregation = try mp.requiredEnum("aggregation", Aggregation.self)
            let field = try mp.optionalDimensionKey("field")
            if aggregation.needsField, field == nil { throw .invalidParams(field: mp.field("field"), "is required for \(aggregation.rawValue)") }
            if !aggregation.needsField, field != nil { throw .invalidParams(field: mp.field("field"), "is not used by COUNT") }
            var filters: [MeterFilter] = []
            let filterItems = try mp.optionalArray("filters") ?? []
            guard filterItems.count <= UsageMethods.meterFiltersMax else {
                throw .invalidParams(field: mp.field("filters"), "may hold at most \(UsageMethods.meterFiltersMax) filters")
            }
            for (index, item) in filterItems.enumerated() {
                let path = mp.field("filters[\(index)]")
                guard case .object(let f) = item else { throw .invalidParams(field: path, "must be an object") }
                var fp = Params(f, path: path)
                let key = try fp.requiredDimensionKey("key")
                let op = try fp.requiredEnum("op", FilterOperator.self)
                let values = try fp.optionalStringArray("values") ?? []
                guard values.count <= UsageMethods.filterValuesMax else {
                    throw .invalidParams(field: fp.field("values"), "may hold at most \(UsageMethods.filterValuesMax) values")
                }
                // A value no event's dimensions may hold would never match.
                for (i, value) in values.enumerated() {
                    if let problem = Identifier.problem(with: value) { throw .invalidParams(field: fp.field("values[\(i)]"), problem) }
                }
                switch op {
                case .exists where !values.isEmpty: throw .invalidParams(field: fp.field("values"), "is not used by EXISTS")
                case .equals, .notEquals:
                    if values.count != 1 { throw .invalidParams(field: fp.field("values"), "must hold exactly one value for \(op.rawValue)") }
                case .isIn where values.isEmpty: throw .invalidParams(field: fp.field("values"), "must hold at least one value for IN")
                default: break
                }
                try fp.finish()
                filters.append(MeterFilter(key: key, op: op, values: values))
            }
            try mp.finish()
            meter = Meter(eventName: eventName, filters: filters, aggregation: aggregation, field: field)
        }
        var creditCost: CreditCost?
        if let c = try p.optionalObject("creditCost") {
            var cp = Params(c, path: p.field("creditCost"))
            let currencyId = try cp.requiredID("currencyId")
            let amount = try cp.requiredAmount("amountPerUnit")
            guard amount.isPositive else { throw .invalidParams(field: cp.field("amountPerUnit"), "must be greater than 0") }
            try cp.finish()
            creditCost = CreditCost(currencyId: currencyId, amountPerUnit: amount)
        }
        if type == .boolean, meter != nil || creditCost != nil {
            throw .invalidParams(field: p.field(meter != nil ? "meter" : "creditCost"), "applies to METERED features only")
        }
        _ = try p.optionalID("idempotencyKey")
        try p.finish()
        return DefineFeature(featureId: featureId, displayName: displayName, type: type, unit: unit, meter: meter, creditCost: creditCost)
    }

    public static func definePlan(_ object: JSONObject) throws(RPCFailure) -> DefinePlan {
        var p = Params(object)
        let planId = try p.requiredID("planId")
        let displayName = try p.requiredText("displayName")
        var entitlements: [PlanEntitlement] = []
        guard let items = try p.optionalArray("entitlements") else { throw .invalidParams(field: "entitlements", "is required") }
        var seen: Set<ByteExactString> = []  // ids by bytes: "é" and "e\u{301}" are two features
        for (index, item) in items.enumerated() {
            let path = "entitlements[\(index)]"
            guard case .object(let e) = item else { throw .invalidParams(field: path, "must be an object") }
            var ep = Params(e, path: path)
            let featureId = try ep.requiredID("featureId")
            guard seen.insert(ByteExactString(featureId)).inserted else { throw .invalidParams(field: ep.field("featureId"), "\"\(featureId)\" appears twice") }
            let limit = try ep.optionalAmount("usageLimit")
            if let limit, limit.isNegative { throw .invalidParams(field: ep.field("usageLimit"), "must not be negative") }
            let unlimited = try ep.optionalBool("hasUnlimitedUsage") ?? false
            if unlimited, limit != nil { throw .invalidParams(field: ep.field("usageLimit"), "cannot be set with hasUnlimitedUsage") }
            entitlements.append(PlanEntitlement(
                featureId: featureId, hasAccess: try ep.optionalBool("hasAccess") ?? true, usageLimit: limit,
                hasUnlimitedUsage: unlimited, resetPeriod: try ep.optionalResetPeriod("resetPeriod")
            ))
            try ep.finish()
        }
        let trialDays = try p.optionalInt("trialDays", in: 0...3650)
        _ = p.ignore("pricing")
        _ = p.ignore("addons")
        _ = try p.optionalID("idempotencyKey")
        try p.finish()
        return DefinePlan(planId: planId, displayName: displayName, entitlements: entitlements, trialDays: trialDays)
    }

    public static func provisionSubscription(_ object: JSONObject) throws(RPCFailure) -> ProvisionSubscription {
        var p = Params(object)
        let c = ProvisionSubscription(
            customerId: try p.requiredID("customerId"), planId: try p.requiredID("planId"), subscriptionId: try p.optionalID("subscriptionId"),
            status: try p.optionalEnum("status", SubscriptionStatus.self) ?? .active, startDate: try p.optionalTimestamp("startDate")
        )
        _ = try p.optionalID("idempotencyKey")
        try p.finish()
        return c
    }

    public static func cancelSubscription(_ object: JSONObject) throws(RPCFailure) -> String {
        try Params.singleID("subscriptionId", in: object)
    }

    public static func reportUsage(_ object: JSONObject, path: String = "") throws(RPCFailure) -> ReportUsage {
        var p = Params(object, path: path)
        let customerId = try p.requiredID("customerId")
        let featureId = try p.requiredID("featureId")
        let value = try p.requiredAmount("value")
        let behavior = try p.optionalEnum("updateBehavior", UpdateBehavior.self) ?? .delta
        if behavior == .set, value.isNegative { throw .invalidParams(field: p.field("value"), "must not be negative with SET") }
        let c = ReportUsage(
            customerId: customerId, featureId: featureId, value: value, updateBehavior: behavior,
            resourceId: try p.optionalID("resourceId"), idempotencyKey: try p.optionalID("idempotencyKey"),
            timestamp: try p.optionalTimestamp("timestamp"), dimensions: try p.dimensions("dimensions"),
            strict: try p.optionalBool("strict") ?? false
        )
        try p.finish()
        return c
    }

    /// reportEvent: shape errors become per-event rejections; `fingerprint` binds each event's key.
    public static func reportEvents(_ object: JSONObject, fingerprint: ([UInt8]) -> [UInt8]) throws(RPCFailure) -> ReportEvents {
        var p = Params(object)
        guard let items = try p.optionalArray("events") else { throw .invalidParams(field: "events", "is required") }
        try p.finish()
        guard !items.isEmpty else { throw .invalidParams(field: "events", "must hold at least one event") }
        guard items.count <= eventsPerCallMax else {
            throw .invalidParams(field: "events", "holds \(items.count) events; at most \(eventsPerCallMax) per call")
        }
        var events: [(index: Int, event: RawEvent)] = []
        var rejected: [EventRejection] = []
        events.reserveCapacity(items.count)
        for (index, item) in items.enumerated() {
            do {
                events.append((index, try rawEvent(item, index: index, fingerprint: fingerprint)))
            } catch {
                rejected.append(EventRejection(index: index, code: error.code, message: error.message))
            }
        }
        return ReportEvents(events: events, rejected: rejected)
    }

    public static func rawEvent(_ item: JSONValue, index: Int, fingerprint: ([UInt8]) -> [UInt8]) throws(RPCFailure) -> RawEvent {
        try rawEvent(item, path: "events[\(index)]", fingerprint: fingerprint)
    }

    /// The same, with errors naming `path` (importRecords: the vendor record it came from).
    public static func rawEvent(_ item: JSONValue, path: String, fingerprint: ([UInt8]) -> [UInt8]) throws(RPCFailure) -> RawEvent {
        guard case .object(let e) = item else { throw .invalidParams(field: path, "must be an object") }
        var p = Params(e, path: path)
        let event = RawEvent(
            customerId: try p.requiredID("customerId"), eventName: try p.requiredID("eventName"),
            idempotencyKey: try p.requiredID("idempotencyKey"), resourceId: try p.optionalID("resourceId"),
            timestamp: try p.optionalTimestamp("timestamp"), dimensions: try p.dimensions("dimensions"),
            fingerprint: fingerprint(item.canonicalSerialized())
        )
        try p.finish()
        return event
    }

    public static func grantPromotional(_ object: JSONObject) throws(RPCFailure) -> GrantPromotional {
        var p = Params(object)
        let limit = try p.optionalAmount("usageLimit")
        if let limit, limit.isNegative { throw .invalidParams(field: "usageLimit", "must not be negative") }
        let unlimited = try p.optionalBool("hasUnlimitedUsage") ?? false
        if unlimited, limit != nil { throw .invalidParams(field: "usageLimit", "cannot be set with hasUnlimitedUsage") }
        let c = GrantPromotional(
            customerId: try p.requiredID("customerId"), featureId: try p.requiredID("featureId"), usageLimit: limit,
            hasUnlimitedUsage: unlimited, resetPeriod: try p.optionalResetPeriod("resetPeriod"), endDate: try p.optionalTimestamp("endDate")
        )
        _ = try p.optionalID("idempotencyKey")
        try p.finish()
        return c
    }

    public static func customerAndFeature(_ object: JSONObject) throws(RPCFailure) -> (customerId: String, featureId: String) {
        var p = Params(object)
        let ids = (try p.requiredID("customerId"), try p.requiredID("featureId"))
        _ = try p.optionalID("idempotencyKey")
        try p.finish()
        return ids
    }

    public struct HistoryQuery: Sendable {
        public var customerId: String
        public var featureId: String
        public var startDate: Timestamp
        public var endDate: Timestamp?
        public var granularity: CalendarPeriod
        public var groupBy: [String]
        public var resourceId: String?
    }

    public static func historyParams(_ object: JSONObject) throws(RPCFailure) -> HistoryQuery {
        var p = Params(object)
        let customerId = try p.requiredID("customerId")
        let featureId = try p.requiredID("featureId")
        guard let start = try p.optionalTimestamp("startDate") else { throw .invalidParams(field: "startDate", "is required") }
        let end = try p.optionalTimestamp("endDate")
        if let end, end <= start { throw .invalidParams(field: "endDate", "must be after startDate") }
        let granularity = try p.optionalString("granularity").map { (text) throws(RPCFailure) -> CalendarPeriod in
            guard let period = CalendarPeriod(rawValue: text), [.minute, .hour, .day, .month].contains(period) else {
                throw .invalidParams(field: "granularity", "must be MINUTE, HOUR, DAY or MONTH")
            }
            return period
        } ?? .day
        let groupBy = try groupByKeys(&p)
        let q = HistoryQuery(customerId: customerId, featureId: featureId, startDate: start, endDate: end, granularity: granularity, groupBy: groupBy, resourceId: try p.optionalID("resourceId"))
        try p.finish()
        return q
    }

    public static func entitlementParams(_ object: JSONObject) throws(RPCFailure) -> (customerId: String, featureId: String, requestedUsage: Amount, resourceId: String?) {
        var p = Params(object)
        let customerId = try p.requiredID("customerId")
        let featureId = try p.requiredID("featureId")
        let requested = try p.optionalAmount("requestedUsage") ?? Amount(1)
        if requested.isNegative { throw .invalidParams(field: "requestedUsage", "must not be negative") }
        let resourceId = try p.optionalID("resourceId")
        try p.finish()
        return (customerId, featureId, requested, resourceId)
    }

    public static func dimensionKeyParams(_ object: JSONObject) throws(RPCFailure) -> (customerId: String, search: String?) {
        var p = Params(object)
        let r = (try p.requiredID("customerId"), try p.optionalText("search"))
        try p.finish()
        return r
    }

    // MARK: Results

    public static func json(_ c: Currency) -> JSONValue {
        var o: JSONObject = ["currencyId": .string(c.id), "displayName": .string(c.displayName)]
        if let symbol = c.symbol { o["symbol"] = .string(symbol) }
        o["version"] = .integer(c.version)
        return .object(o)
    }

    public static func json(_ f: Feature) -> JSONValue {
        var o: JSONObject = ["featureId": .string(f.id)]
        if let name = f.displayName { o["displayName"] = .string(name) }
        o["type"] = .string(f.type.rawValue)
        if let unit = f.unit { o["unit"] = .string(unit) }
        if let m = f.meter {
            var mo: JSONObject = ["eventName": .string(m.eventName)]
            mo["filters"] = .array(m.filters.map { f in
                var fo: JSONObject = ["key": .string(f.key), "op": .string(f.op.rawValue)]
                if !f.values.isEmpty { fo["values"] = .array(f.values.map { .string($0) }) }
                return .object(fo)
            })
            mo["aggregation"] = .string(m.aggregation.rawValue)
            if let field = m.field { mo["field"] = .string(field) }
            o["meter"] = .object(mo)
        }
        if let c = f.creditCost {
            o["creditCost"] = ["currencyId": .string(c.currencyId), "amountPerUnit": .string(c.amountPerUnit.description)]
        }
        o["version"] = .integer(f.version)
        return .object(o)
    }

    public static func json(_ plan: Plan) -> JSONValue {
        var o: JSONObject = ["planId": .string(plan.id), "displayName": .string(plan.displayName)]
        o["entitlements"] = .array(plan.entitlements.map { e in
            var eo: JSONObject = ["featureId": .string(e.featureId), "hasAccess": .bool(e.hasAccess), "hasUnlimitedUsage": .bool(e.hasUnlimitedUsage)]
            if let limit = e.usageLimit { eo["usageLimit"] = .string(limit.description) }
            if let period = e.resetPeriod { eo["resetPeriod"] = .string(period.rawValue) }
            return .object(eo)
        })
        if let trial = plan.trialDays { o["trialDays"] = .integer(trial) }
        o["version"] = .integer(plan.version)
        return .object(o)
    }

    /// In the seed Customer schema's Subscription shape `{id, status, plan: {id, name}}`, plus dates.
    public static func json(_ s: Subscription, planName: String?) -> JSONValue {
        var plan: JSONObject = ["id": .string(s.planId)]
        if let planName { plan["name"] = .string(planName) }
        var o: JSONObject = ["id": .string(s.id), "customerId": .string(s.customerId), "status": .string(s.status.rawValue), "plan": .object(plan)]
        o["startDate"] = .string(s.startDate.rfc3339)
        if let canceled = s.canceledAt { o["canceledAt"] = .string(canceled.rfc3339) }
        return .object(o)
    }

    public static func json(_ e: PromotionalEntitlement) -> JSONValue {
        var o: JSONObject = ["customerId": .string(e.customerId), "featureId": .string(e.featureId), "hasUnlimitedUsage": .bool(e.hasUnlimitedUsage)]
        if let limit = e.usageLimit { o["usageLimit"] = .string(limit.description) }
        if let period = e.resetPeriod { o["resetPeriod"] = .string(period.rawValue) }
        if let end = e.endDate { o["endDate"] = .string(end.rfc3339) }
        o["grantedAt"] = .string(e.grantedAt.rfc3339)
        return .object(o)
    }

    /// The seed "UsageMeasurement" shape (value a JSON number, as the schema says), plus Tally's fields.
    public static func measurementJSON(_ u: UsageOutcome) -> JSONValue {
        let e = u.event
        var o: JSONObject = [
            "id": .string(u.measurementId), "customerId": .string(e.customerId), "featureId": .string(e.featureId),
            "value": .number(e.value.description), "updateBehavior": .string(e.updateBehavior.rawValue),
            "idempotencyKey": e.idempotencyKey.map { .string($0) } ?? .null,
            "timestamp": .string(e.timestamp.rfc3339), "createdAt": .string(u.createdAt.rfc3339),
        ]
        o["delta"] = .string(e.delta.description)
        if let resource = e.resourceId { o["resourceId"] = .string(resource) }
        if !e.dimensions.isEmpty { o["dimensions"] = stringMap(e.dimensions.pairs) }
        return .object(o)
    }

    public static func json(_ u: UsageOutcome) -> JSONValue {
        var o: JSONObject = ["measurement": measurementJSON(u), "currentUsage": .string(u.currentUsage.description)]
        if let limit = u.usageLimit { o["usageLimit"] = .string(limit.description) }
        // Absent for the last periods of 9999, which end at 10000-01-01 (no 4-digit year).
        if let end = u.usagePeriodEnd, end.hasFourDigitYear { o["usagePeriodEnd"] = .string(end.rfc3339) }
        if let credit = u.credit { o["credit"] = CreditMethods.json(credit) }
        return .object(o)
    }

    public static func json(_ e: EventsOutcome) -> JSONValue {
        .object([
            "accepted": .integer(e.accepted), "duplicates": .integer(e.duplicates),
            "rejected": .array(e.rejected.map { r in .object(["index": .integer(r.index), "code": .integer(r.code), "message": .string(r.message)]) }),
        ])
    }

    static func stringMap(_ pairs: [(String, String)]) -> JSONValue {
        .object(JSONObject(pairs.map { ($0.0, JSONValue.string($0.1)) }))
    }
}

extension Params {
    /// Dimension keys match ^[a-zA-Z0-9_$.-]+$ (the contract), at most 256 bytes.
    public static func isDimensionKey(_ key: String) -> Bool {
        !key.isEmpty && key.utf8.count <= Identifier.bytesMax && key.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b == 0x24 || b == 0x2E || b == 0x2D
        }
    }

    public mutating func requiredDimensionKey(_ name: String) throws(RPCFailure) -> String {
        guard let key = try optionalDimensionKey(name) else { throw .invalidParams(field: field(name), "is required") }
        return key
    }

    public mutating func optionalDimensionKey(_ name: String) throws(RPCFailure) -> String? {
        guard let key = try optionalString(name) else { return nil }
        guard Self.isDimensionKey(key) else { throw .invalidParams(field: field(name), "must match ^[a-zA-Z0-9_$.-]+$") }
        return key
    }

    /// A dimensions object: keys per the dimension-key pattern, values strings (numbers and
    /// booleans are taken as their JSON text), ids' length rules.
    public mutating func dimensions(_ name: String) throws(RPCFailure) -> Dimensions {
        guard let object = try optionalObject(name) else { return .none }
        guard object.count <= UsageMethods.dimensionsMax else { throw .invalidParams(field: field(name), "may hold at most \(UsageMethods.dimensionsMax) keys") }
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(object.count)
        for (key, value) in object {
            let path = field("\(name).\(key)")
            guard Self.isDimensionKey(key) else { throw .invalidParams(field: path, "key must match ^[a-zA-Z0-9_$.-]+$") }
            guard let text = value.scalarText else {
                throw .invalidParams(field: path, "must be a string, number or boolean, not \(value.typeName)")
            }
            if let problem = Identifier.problem(with: text) { throw .invalidParams(field: path, problem) }
            pairs.append((key, text))
        }
        return Dimensions(pairs)
    }

    public mutating func optionalObject(_ name: String) throws(RPCFailure) -> JSONObject? {
        switch object[name] {
        case nil, .null?: markRead(name); return nil
        case .object(let o)?: markRead(name); return o
        case let other?: throw .invalidParams(field: field(name), "must be an object, not \(other.typeName)")
        }
    }

    public mutating func optionalArray(_ name: String) throws(RPCFailure) -> [JSONValue]? {
        switch object[name] {
        case nil, .null?: markRead(name); return nil
        case .array(let a)?: markRead(name); return a
        case let other?: throw .invalidParams(field: field(name), "must be an array, not \(other.typeName)")
        }
    }

    public mutating func optionalStringArray(_ name: String) throws(RPCFailure) -> [String]? {
        guard let items = try optionalArray(name) else { return nil }
        var strings: [String] = []
        for (i, item) in items.enumerated() {
            guard case .string(let s) = item else { throw .invalidParams(field: field("\(name)[\(i)]"), "must be a string") }
            strings.append(s)
        }
        return strings
    }

    public mutating func requiredEnum<E: RawRepresentable & CaseIterable>(_ name: String, _ type: E.Type) throws(RPCFailure) -> E where E.RawValue == String {
        guard let value = try optionalEnum(name, type) else { throw .invalidParams(field: field(name), "is required") }
        return value
    }

    public mutating func optionalEnum<E: RawRepresentable & CaseIterable>(_ name: String, _ type: E.Type) throws(RPCFailure) -> E? where E.RawValue == String {
        guard let text = try optionalString(name) else { return nil }
        guard let value = E(rawValue: text) else {
            throw .invalidParams(field: field(name), "must be one of \(E.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return value
    }

    /// A reset period: DAY, WEEK, MONTH or YEAR. Anything else — MINUTE and HOUR (calendar periods
    /// of history only) included — is -32602 listing just those four.
    /// The periods a usage limit resets on and a recharge grant expires after.
    public static let resetPeriods: [CalendarPeriod] = [.day, .week, .month, .year]

    public mutating func optionalResetPeriod(_ name: String) throws(RPCFailure) -> CalendarPeriod? {
        guard let text = try optionalString(name) else { return nil }
        guard let period = CalendarPeriod(rawValue: text), Self.resetPeriods.contains(period) else {
            throw .invalidParams(field: field(name), "must be DAY, WEEK, MONTH or YEAR")
        }
        return period
    }

    /// Accepts a field without interpreting it (documented as ignored).
    public mutating func ignore(_ name: String) -> JSONValue? {
        markRead(name)
        return object[name]
    }
}
