/// The catalog: currencies, features (with meters and credit costs), plans, and the customers'
/// subscriptions and promotional entitlements. Every definition is an event; a redefinition is a
/// new version, never an edit in place.

public struct Currency: Sendable, Equatable {
    public var id: String
    public var displayName: String
    public var symbol: String?
    public var version: UInt32

    public init(id: String, displayName: String, symbol: String?, version: UInt32) {
        self.id = id
        self.displayName = displayName
        self.symbol = symbol
        self.version = version
    }

    func encode(into w: inout ByteWriter) {
        w.writeString(id)
        w.writeString(displayName)
        w.writeOptional(symbol) { $0.writeString($1) }
        w.writeVarUInt(UInt64(version))
    }

    init(from r: inout ByteReader) throws(DecodingError) {
        id = try r.readString()
        displayName = try r.readString()
        symbol = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
        version = try r.readVersion()
    }

    public func encoded() -> [UInt8] { record { encode(into: &$0) } }
    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> Currency { try decodeRecord(bytes) { (r: inout ByteReader) throws(DecodingError) in try Currency(from: &r) } }
}

public enum FeatureType: String, Sendable, CaseIterable { case metered = "METERED", boolean = "BOOLEAN" }

public enum Aggregation: String, Sendable, CaseIterable {
    case count = "COUNT", sum = "SUM", max = "MAX", min = "MIN", uniqueCount = "UNIQUE_COUNT", latest = "LATEST"

    /// Whether the aggregation reads a field of the event.
    public var needsField: Bool { self != .count }

    /// Whether usage under it is a sum of amounts (COUNT, SUM), so a reported delta can be added
    /// to it; MAX, MIN, LATEST and UNIQUE_COUNT are computed from the raw events themselves.
    public var isAdditive: Bool { self == .count || self == .sum }
}

/// How a METERED feature's usage cells combine (`Feature.usageCombination`).
public enum UsageCombination: Sendable, Equatable, CustomStringConvertible {
    /// COUNT, SUM, or no meter (reported usage): amounts that add up.
    case sum
    case max, min, latest
    /// Distinct values of `field`.
    case uniqueCount(field: String)

    public var description: String {
        switch self {
        case .sum: "a sum (COUNT, SUM or no meter)"
        case .max: "MAX"
        case .min: "MIN"
        case .latest: "LATEST"
        case .uniqueCount(let field): "UNIQUE_COUNT of \"\(field)\""
        }
    }
}

public enum FilterOperator: String, Sendable, CaseIterable { case equals = "EQUALS", notEquals = "NOT_EQUALS", isIn = "IN", exists = "EXISTS" }

public struct MeterFilter: Sendable, Equatable {
    public var key: String
    public var op: FilterOperator
    public var values: [String]

    public init(key: String, op: FilterOperator, values: [String]) {
        self.key = key
        self.op = op
        self.values = values
    }

    /// Whether an event with these dimensions passes the filter. Values compare by their UTF-8
    /// bytes, as the series and UNIQUE_COUNT sets keep them: "é" and "e\u{301}" are two values.
    public func matches(_ dimensions: Dimensions) -> Bool {
        let value = dimensions[key]
        switch op {
        case .exists: return value != nil
        case .equals: return value != nil && UTF8Exact.equal(value, values.first)
        case .notEquals: return !UTF8Exact.equal(value, values.first)
        case .isIn: return value.map { v in values.contains { UTF8Exact.equal($0, v) } } ?? false
        }
    }
}

/// How raw events become usage of a feature.
public struct Meter: Sendable, Equatable {
    public var eventName: String
    public var filters: [MeterFilter]
    public var aggregation: Aggregation
    /// The dimension summed / counted unique / taken (not for COUNT).
    public var field: String?

    public init(eventName: String, filters: [MeterFilter], aggregation: Aggregation, field: String?) {
        self.eventName = eventName
        self.filters = filters
        self.aggregation = aggregation
        self.field = field
    }

    public func matches(_ dimensions: Dimensions) -> Bool { filters.allSatisfy { $0.matches(dimensions) } }
}

public struct CreditCost: Sendable, Equatable {
    public var currencyId: String
    public var amountPerUnit: Amount

    public init(currencyId: String, amountPerUnit: Amount) {
        self.currencyId = currencyId
        self.amountPerUnit = amountPerUnit
    }
}

public struct Feature: Sendable, Equatable {
    public var id: String
    public var displayName: String?
    public var type: FeatureType
    public var unit: String?
    public var meter: Meter?
    public var creditCost: CreditCost?
    public var version: UInt32

    public init(id: String, displayName: String?, type: FeatureType, unit: String?, meter: Meter?, creditCost: CreditCost?, version: UInt32) {
        self.id = id
        self.displayName = displayName
        self.type = type
        self.unit = unit
        self.meter = meter
        self.creditCost = creditCost
        self.version = version
    }

    /// The aggregation its usage cells use: the meter's, or SUM for reported (calculated) usage.
    public var aggregation: Aggregation { meter?.aggregation ?? .sum }

    /// How the usage cells already written combine with new usage; nil for a BOOLEAN feature, which
    /// records none. A redefinition must keep it (`redefinitionProblem`).
    public var usageCombination: UsageCombination? {
        guard type == .metered else { return nil }
        switch aggregation {
        case .count, .sum: return .sum
        case .max: return .max
        case .min: return .min
        case .latest: return .latest
        case .uniqueCount: return .uniqueCount(field: meter?.field ?? "")
        }
    }

    /// Why `new` may not replace this definition, or nil. Once a feature is METERED, its cells
    /// (history, period totals, unique sets) are combined by one rule; another rule would mix the
    /// cells written before with those written after, so that the history at one granularity, at
    /// another and `currentUsage` disagree. Filters, event name, unit and credit cost may change.
    public func redefinitionProblem(_ new: Feature) -> String? {
        guard let was = usageCombination, was != new.usageCombination else { return nil }
        let now = new.usageCombination.map { "\($0)" } ?? "BOOLEAN"
        return "feature \"\(id)\" records usage as \(was); a redefinition must keep that (this one is \(now)), "
            + "or the usage already recorded would be combined under another rule; define a new feature instead"
    }

    func encode(into w: inout ByteWriter) {
        w.writeString(id)
        w.writeOptional(displayName) { $0.writeString($1) }
        w.writeString(type.rawValue)
        w.writeOptional(unit) { $0.writeString($1) }
        w.writeOptional(meter) { w, m in
            w.writeString(m.eventName)
            w.writeArray(m.filters) { w, f in
                w.writeString(f.key)
                w.writeString(f.op.rawValue)
                w.writeArray(f.values) { $0.writeString($1) }
            }
            w.writeString(m.aggregation.rawValue)
            w.writeOptional(m.field) { $0.writeString($1) }
        }
        w.writeOptional(creditCost) { w, c in
            w.writeString(c.currencyId)
            w.writeAmount(c.amountPerUnit)
        }
        w.writeVarUInt(UInt64(version))
    }

    init(from r: inout ByteReader) throws(DecodingError) {
        id = try r.readString()
        displayName = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
        type = try r.readEnum(FeatureType.self)
        unit = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
        meter = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in
            Meter(
                eventName: try r.readString(),
                filters: try r.readArray { (r: inout ByteReader) throws(DecodingError) in
                    MeterFilter(key: try r.readString(), op: try r.readEnum(FilterOperator.self), values: try r.readArray { (r: inout ByteReader) throws(DecodingError) in try r.readString() })
                },
                aggregation: try r.readEnum(Aggregation.self),
                field: try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
            )
        }
        creditCost = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in
            CreditCost(currencyId: try r.readString(), amountPerUnit: try r.readAmount())
        }
        version = try r.readVersion()
    }

    public func encoded() -> [UInt8] { record { encode(into: &$0) } }
    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> Feature { try decodeRecord(bytes) { (r: inout ByteReader) throws(DecodingError) in try Feature(from: &r) } }
}

public struct PlanEntitlement: Sendable, Equatable {
    public var featureId: String
    public var hasAccess: Bool
    public var usageLimit: Amount?
    public var hasUnlimitedUsage: Bool
    public var resetPeriod: CalendarPeriod?

    public init(featureId: String, hasAccess: Bool, usageLimit: Amount?, hasUnlimitedUsage: Bool, resetPeriod: CalendarPeriod?) {
        self.featureId = featureId
        self.hasAccess = hasAccess
        self.usageLimit = usageLimit
        self.hasUnlimitedUsage = hasUnlimitedUsage
        self.resetPeriod = resetPeriod
    }

    func encode(into w: inout ByteWriter) {
        w.writeString(featureId)
        w.writeBool(hasAccess)
        w.writeOptional(usageLimit) { $0.writeAmount($1) }
        w.writeBool(hasUnlimitedUsage)
        w.writeOptional(resetPeriod) { $0.writeString($1.rawValue) }
    }

    init(from r: inout ByteReader) throws(DecodingError) {
        featureId = try r.readString()
        hasAccess = try r.readBool()
        usageLimit = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readAmount() }
        hasUnlimitedUsage = try r.readBool()
        resetPeriod = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readEnum(CalendarPeriod.self) }
    }
}

public struct Plan: Sendable, Equatable {
    public var id: String
    public var displayName: String
    public var entitlements: [PlanEntitlement]
    public var trialDays: Int?
    public var version: UInt32

    public init(id: String, displayName: String, entitlements: [PlanEntitlement], trialDays: Int?, version: UInt32) {
        self.id = id
        self.displayName = displayName
        self.entitlements = entitlements
        self.trialDays = trialDays
        self.version = version
    }

    func encode(into w: inout ByteWriter) {
        w.writeString(id)
        w.writeString(displayName)
        w.writeArray(entitlements) { $1.encode(into: &$0) }
        w.writeOptional(trialDays) { $0.writeVarInt(Int64($1)) }
        w.writeVarUInt(UInt64(version))
    }

    init(from r: inout ByteReader) throws(DecodingError) {
        id = try r.readString()
        displayName = try r.readString()
        entitlements = try r.readArray { (r: inout ByteReader) throws(DecodingError) in try PlanEntitlement(from: &r) }
        trialDays = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in
            let days = try r.readInt()
            guard (0...3650).contains(days) else { throw DecodingError("trialDays \(days) out of range") }
            return days
        }
        version = try r.readVersion()
    }

    public func encoded() -> [UInt8] { record { encode(into: &$0) } }
    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> Plan { try decodeRecord(bytes) { (r: inout ByteReader) throws(DecodingError) in try Plan(from: &r) } }
}

public enum SubscriptionStatus: String, Sendable, CaseIterable {
    case active = "ACTIVE", canceled = "CANCELED", trial = "TRIAL", paused = "PAUSED"

    /// Whether the subscription's plan grants its entitlements.
    public var grantsEntitlements: Bool { self == .active || self == .trial }
}

public struct Subscription: Sendable, Equatable {
    public var id: String
    public var customerId: String
    public var planId: String
    public var status: SubscriptionStatus
    public var startDate: Timestamp
    public var canceledAt: Timestamp?

    public init(id: String, customerId: String, planId: String, status: SubscriptionStatus, startDate: Timestamp, canceledAt: Timestamp?) {
        self.id = id
        self.customerId = customerId
        self.planId = planId
        self.status = status
        self.startDate = startDate
        self.canceledAt = canceledAt
    }

    /// The end of a TRIAL of `plan` (exclusive): `startDate` + the plan's `trialDays` days; nil for
    /// other statuses and for plans without `trialDays` (the trial does not end by itself).
    public func trialEnd(of plan: Plan) -> Timestamp? {
        guard status == .trial, let days = plan.trialDays else { return nil }
        return startDate.adding(microseconds: Int64(days) * 86_400_000_000)
    }

    /// Whether the subscription grants `plan`'s entitlements at `t`: ACTIVE or TRIAL, started
    /// (`startDate ≤ t`), and a TRIAL only before its `trialEnd`.
    public func grantsEntitlements(of plan: Plan, at t: Timestamp) -> Bool {
        guard status.grantsEntitlements, startDate <= t else { return false }
        return trialEnd(of: plan).map { t < $0 } ?? true
    }

    func encode(into w: inout ByteWriter) {
        w.writeString(id)
        w.writeString(customerId)
        w.writeString(planId)
        w.writeString(status.rawValue)
        w.writeTimestamp(startDate)
        w.writeOptional(canceledAt) { $0.writeTimestamp($1) }
    }

    init(from r: inout ByteReader) throws(DecodingError) {
        id = try r.readString()
        customerId = try r.readString()
        planId = try r.readString()
        status = try r.readEnum(SubscriptionStatus.self)
        startDate = try r.readTimestamp()
        canceledAt = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readTimestamp() }
    }

    public func encoded() -> [UInt8] { record { encode(into: &$0) } }
    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> Subscription { try decodeRecord(bytes) { (r: inout ByteReader) throws(DecodingError) in try Subscription(from: &r) } }
}

public struct PromotionalEntitlement: Sendable, Equatable {
    public var customerId: String
    public var featureId: String
    public var usageLimit: Amount?
    public var hasUnlimitedUsage: Bool
    public var resetPeriod: CalendarPeriod?
    public var endDate: Timestamp?
    public var grantedAt: Timestamp

    public init(customerId: String, featureId: String, usageLimit: Amount?, hasUnlimitedUsage: Bool, resetPeriod: CalendarPeriod?, endDate: Timestamp?, grantedAt: Timestamp) {
        self.customerId = customerId
        self.featureId = featureId
        self.usageLimit = usageLimit
        self.hasUnlimitedUsage = hasUnlimitedUsage
        self.resetPeriod = resetPeriod
        self.endDate = endDate
        self.grantedAt = grantedAt
    }

    public func isActive(at t: Timestamp) -> Bool { endDate.map { t < $0 } ?? true }

    func encode(into w: inout ByteWriter) {
        w.writeString(customerId)
        w.writeString(featureId)
        w.writeOptional(usageLimit) { $0.writeAmount($1) }
        w.writeBool(hasUnlimitedUsage)
        w.writeOptional(resetPeriod) { $0.writeString($1.rawValue) }
        w.writeOptional(endDate) { $0.writeTimestamp($1) }
        w.writeTimestamp(grantedAt)
    }

    init(from r: inout ByteReader) throws(DecodingError) {
        customerId = try r.readString()
        featureId = try r.readString()
        usageLimit = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readAmount() }
        hasUnlimitedUsage = try r.readBool()
        resetPeriod = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readEnum(CalendarPeriod.self) }
        endDate = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readTimestamp() }
        grantedAt = try r.readTimestamp()
    }

    public func encoded() -> [UInt8] { record { encode(into: &$0) } }
    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> PromotionalEntitlement { try decodeRecord(bytes) { (r: inout ByteReader) throws(DecodingError) in try PromotionalEntitlement(from: &r) } }
}

/// Sorted dimension pairs (key → value) of a usage report or raw event.
public struct Dimensions: Sendable, Hashable {
    public private(set) var pairs: [(String, String)]

    public init(_ pairs: [(String, String)]) { self.pairs = pairs.sorted { $0.0 < $1.0 } }

    public static let none = Dimensions([])

    public subscript(key: String) -> String? { pairs.first { $0.0 == key }?.1 }

    public var isEmpty: Bool { pairs.isEmpty }

    /// The pairs whose keys are in `keys`, in `keys` order (missing keys skipped).
    public func projected(onto keys: [String]) -> [(String, String)] {
        keys.compactMap { key in self[key].map { (key, $0) } }
    }

    /// By bytes, as the projections' keys hold them (`UTF8Exact`).
    public static func == (a: Dimensions, b: Dimensions) -> Bool {
        a.pairs.elementsEqual(b.pairs) { UTF8Exact.equal($0.0, $1.0) && UTF8Exact.equal($0.1, $1.1) }
    }

    public func hash(into hasher: inout Hasher) {
        for (k, v) in pairs {
            UTF8Exact.hash(k, into: &hasher)
            UTF8Exact.hash(v, into: &hasher)
        }
    }

    /// Length-prefixed bytes: unambiguous, and equal dimension sets give equal bytes.
    public var canonicalBytes: [UInt8] {
        var w = ByteWriter()
        w.writeStringMap(pairs)
        return w.bytes
    }

    public static func decode(canonical bytes: [UInt8]) throws(DecodingError) -> Dimensions {
        var r = ByteReader(bytes)
        let pairs = try r.readStringMap()
        try r.expectEnd()
        return Dimensions(pairs)
    }
}

// MARK: Record helpers

/// Version byte of catalog and usage records in the projections.
let catalogRecordVersion: UInt8 = 1

func record(_ body: (inout ByteWriter) -> Void) -> [UInt8] {
    var w = ByteWriter()
    w.writeByte(catalogRecordVersion)
    body(&w)
    return w.bytes
}

func decodeRecord<T>(_ bytes: [UInt8], _ body: (inout ByteReader) throws(DecodingError) -> T) throws(DecodingError) -> T {
    var r = ByteReader(bytes)
    let version = try r.readByte()
    guard version == catalogRecordVersion else { throw DecodingError("record version \(version) unknown") }
    let value = try body(&r)
    try r.expectEnd()
    return value
}

extension ByteReader {
    public mutating func readEnum<E: RawRepresentable>(_ type: E.Type) throws(DecodingError) -> E where E.RawValue == String {
        let raw = try readString()
        guard let value = E(rawValue: raw) else { throw DecodingError("\(E.self) value \(raw) unknown") }
        return value
    }
}
