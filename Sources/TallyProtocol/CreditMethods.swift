public import TallyCore

/// Credit params in, credit results out.
public enum CreditMethods {
    public static let ledgerLimitDefault = 100
    public static let ledgerLimitMax = 1000

    public static func grantCredits(_ object: JSONObject) throws(RPCFailure) -> GrantCredits {
        var p = Params(object)
        let customerId = try p.requiredID("customerId")
        let currencyId = try p.requiredID("currencyId")
        let amount = try p.requiredAmount("amount")
        guard amount.isPositive else { throw .invalidParams(field: "amount", "must be greater than 0") }
        let grantType = try p.requiredEnum("grantType", GrantType.self)
        let priority = try p.optionalInt("priority", in: 0...100) ?? 50
        let effectiveAt = try p.optionalTimestamp("effectiveAt")
        let expireAt = try p.optionalTimestamp("expireAt")
        if let effectiveAt, let expireAt, expireAt <= effectiveAt { throw .invalidParams(field: "expireAt", "must be after effectiveAt") }
        var cost: Money?
        if let c = try p.optionalObject("cost") {
            var cp = Params(c, path: "cost")
            let costAmount = try cp.requiredAmount("amount")
            if costAmount.isNegative { throw .invalidParams(field: "cost.amount", "must not be negative") }
            cost = Money(amount: costAmount, currency: try cp.requiredID("currency"))
            try cp.finish()
        }
        let command = GrantCredits(
            customerId: customerId, currencyId: currencyId, amount: amount, grantType: grantType,
            displayName: try p.optionalText("displayName"), priority: priority, effectiveAt: effectiveAt, expireAt: expireAt,
            resourceId: try p.optionalID("resourceId"), cost: cost, metadata: try p.optionalStringMap("metadata") ?? [],
            comment: try p.optionalText("comment"), idempotencyKey: try p.optionalID("idempotencyKey")
        )
        try p.finish()
        return command
    }

    public static func grantID(_ object: JSONObject) throws(RPCFailure) -> String {
        try Params.singleID("grantId", in: object)
    }

    public static func setAutoRecharge(_ object: JSONObject) throws(RPCFailure) -> SetAutoRecharge {
        var p = Params(object)
        let customerId = try p.requiredID("customerId")
        let currencyId = try p.requiredID("currencyId")
        guard let enabled = try p.optionalBool("isEnabled") else { throw .invalidParams(field: "isEnabled", "is required") }
        // A configuration always has a threshold and a target: null cannot clear them.
        for name in ["thresholdValue", "targetBalance"] where p.isNull(name) {
            throw .invalidParams(field: name, "cannot be null: leave it out to keep the configured value")
        }
        let threshold = try p.optionalAmount("thresholdValue")
        if let threshold, threshold.isNegative { throw .invalidParams(field: "thresholdValue", "must not be negative") }
        let target = try p.optionalAmount("targetBalance")
        if let target, !target.isPositive { throw .invalidParams(field: "targetBalance", "must be greater than 0") }
        let limit = try p.optionalAmount("maxSpendLimit")
        if let limit, !limit.isPositive { throw .invalidParams(field: "maxSpendLimit", "must be greater than 0") }
        let command = SetAutoRecharge(
            customerId: customerId, currencyId: currencyId, isEnabled: enabled, thresholdValue: threshold, targetBalance: target,
            maxSpendLimit: FieldChange(limit, cleared: p.isNull("maxSpendLimit")),
            grantExpirationPeriod: FieldChange(try p.optionalResetPeriod("grantExpirationPeriod"), cleared: p.isNull("grantExpirationPeriod"))
        )
        _ = try p.optionalID("idempotencyKey")
        try p.finish()
        return command
    }

    public static func customerAndCurrency(_ object: JSONObject) throws(RPCFailure) -> (customerId: String, currencyId: String) {
        var p = Params(object)
        let r = (try p.requiredID("customerId"), try p.requiredID("currencyId"))
        try p.finish()
        return r
    }

    /// `asOf`: a timestamp, or `{sequence}`.
    public enum AsOf: Sendable {
        case timestamp(Timestamp)
        case sequence(UInt64)
    }

    public struct BalanceQuery: Sendable {
        public var customerId: String
        public var currencyId: String?
        public var resourceId: String?
        public var asOf: AsOf?
    }

    public static func balanceParams(_ object: JSONObject) throws(RPCFailure) -> BalanceQuery {
        var p = Params(object)
        var q = BalanceQuery(customerId: try p.requiredID("customerId"), currencyId: try p.optionalID("currencyId"), resourceId: try p.optionalID("resourceId"), asOf: nil)
        q.asOf = try asOf(object["asOf"])
        p.markRead("asOf")
        try p.finish()
        return q
    }

    /// `asOf`: an RFC 3339 timestamp, or `{sequence}`; nil when absent.
    public static func asOf(_ value: JSONValue?) throws(RPCFailure) -> AsOf? {
        switch value {
        case nil, .null?: return nil
        case .string(let text)?:
            do {
                return .timestamp(try Timestamp(parsingRFC3339: text))
            } catch {
                throw .invalidParams(field: "asOf", error.description)
            }
        case .object(let o)?:
            var ap = Params(o, path: "asOf")
            guard let sequence = try ap.optionalUInt64("sequence") else { throw .invalidParams(field: "asOf.sequence", "is required") }
            try ap.finish()
            return .sequence(sequence)
        case let other?: throw .invalidParams(field: "asOf", "must be a timestamp or {sequence}, not \(other.typeName)")
        }
    }

    public static func grantsParams(_ object: JSONObject) throws(RPCFailure) -> (customerId: String, currencyId: String?, resourceId: String?, status: GrantStatus?) {
        var p = Params(object)
        let r = (try p.requiredID("customerId"), try p.optionalID("currencyId"), try p.optionalID("resourceId"), try p.optionalEnum("status", GrantStatus.self))
        try p.finish()
        return r
    }

    public struct LedgerQuery: Sendable {
        public var customerId: String
        public var currencyId: String?
        public var resourceId: String?
        public var eventType: CreditEntryType?
        public var after: UInt64
        public var limit: Int
    }

    public static func ledgerParams(_ object: JSONObject) throws(RPCFailure) -> LedgerQuery {
        var p = Params(object)
        let q = LedgerQuery(
            customerId: try p.requiredID("customerId"), currencyId: try p.optionalID("currencyId"), resourceId: try p.optionalID("resourceId"),
            eventType: try p.optionalEnum("eventType", CreditEntryType.self), after: try p.optionalUInt64("after") ?? 0,
            limit: try p.optionalInt("limit", in: 1...ledgerLimitMax) ?? ledgerLimitDefault
        )
        try p.finish()
        return q
    }

    public enum TimeRange: String, Sendable, CaseIterable { case lastDay = "LAST_DAY", lastWeek = "LAST_WEEK", lastMonth = "LAST_MONTH", lastYear = "LAST_YEAR" }

    public struct UsageQuery: Sendable {
        public var customerId: String
        public var currencyId: String?
        public var timeRange: TimeRange
        public var startDate: Timestamp?
        public var endDate: Timestamp?
        public var groupBy: [String]
        public var resourceId: String?
    }

    public static func usageParams(_ object: JSONObject) throws(RPCFailure) -> UsageQuery {
        var p = Params(object)
        let q = UsageQuery(
            customerId: try p.requiredID("customerId"), currencyId: try p.optionalID("currencyId"),
            timeRange: try p.optionalEnum("timeRange", TimeRange.self) ?? .lastMonth,
            startDate: try p.optionalTimestamp("startDate"), endDate: try p.optionalTimestamp("endDate"),
            groupBy: try UsageMethods.groupByKeys(&p), resourceId: try p.optionalID("resourceId")
        )
        if let start = q.startDate, let end = q.endDate, end <= start { throw .invalidParams(field: "endDate", "must be after startDate") }
        try p.finish()
        return q
    }

    // MARK: Results

    /// The contract's CreditGrant, with the status as of `now`.
    public static func json(_ g: CreditGrant, now: Timestamp) -> JSONValue {
        var o: JSONObject = ["grantId": .string(g.grantId), "customerId": .string(g.customerId), "currencyId": .string(g.currencyId)]
        if let resource = g.resourceId { o["resourceId"] = .string(resource) }
        o["grantType"] = .string(g.grantType.rawValue)
        o["sourceType"] = .string(g.sourceType.rawValue)
        o["status"] = .string(g.status(at: now).rawValue)
        o["amount"] = .string(g.amount.description)
        o["consumedAmount"] = .string((g.consumed + g.repaid).description)
        o["remainingAmount"] = .string(g.remaining.description)
        if g.repaid.isPositive { o["overdraftRepaid"] = .string(g.repaid.description) }
        // A grant expired or voided with nothing left says so with a 0, as its ledger entry does.
        if g.expiredAmount.isPositive || g.expiredAt != nil { o["expiredAmount"] = .string(g.expiredAmount.description) }
        if g.voidedAmount.isPositive || g.voidedAt != nil { o["voidedAmount"] = .string(g.voidedAmount.description) }
        o["priority"] = .integer(g.priority)
        o["effectiveAt"] = .string(g.effectiveAt.rfc3339)
        if let expireAt = g.expireAt { o["expireAt"] = .string(expireAt.rfc3339) }
        o["createdAt"] = .string(g.createdAt.rfc3339)
        if let voidedAt = g.voidedAt { o["voidedAt"] = .string(voidedAt.rfc3339) }
        if let expiredAt = g.expiredAt { o["expiredAt"] = .string(expiredAt.rfc3339) }
        if let name = g.displayName { o["displayName"] = .string(name) }
        if let cost = g.cost { o["cost"] = ["amount": .string(cost.amount.description), "currency": .string(cost.currency)] }
        if !g.metadata.isEmpty { o["metadata"] = UsageMethods.stringMap(g.metadata) }
        if let comment = g.comment { o["comment"] = .string(comment) }
        return .object(o)
    }

    public static func json(_ a: AutoRecharge) -> JSONValue {
        var o: JSONObject = [
            "customerId": .string(a.customerId), "currencyId": .string(a.currencyId), "isEnabled": .bool(a.isEnabled),
            "thresholdValue": .string(a.thresholdValue.description), "targetBalance": .string(a.targetBalance.description),
        ]
        if let limit = a.maxSpendLimit { o["maxSpendLimit"] = .string(limit.description) }
        if let period = a.grantExpirationPeriod { o["grantExpirationPeriod"] = .string(period.rawValue) }
        return .object(o)
    }

    public static func json(_ c: CreditOutcome) -> JSONValue {
        var o: JSONObject = ["currencyId": .string(c.currencyId), "consumed": .string(c.consumed.description), "balance": .string(c.balance.description)]
        if let recharged = c.autoRecharged { o["autoRecharged"] = .string(recharged.description) }
        return .object(o)
    }

    public static func json(_ e: CreditLedgerEntry) -> JSONValue {
        var o: JSONObject = ["sequence": .integer(e.sequence), "eventType": .string(e.eventType.rawValue), "currencyId": .string(e.currencyId)]
        if let resource = e.resourceId { o["resourceId"] = .string(resource) }
        o["amount"] = .string(e.amount.description)
        o["balanceAfter"] = .string(e.balanceAfter.description)
        if let grant = e.grantId { o["creditGrantId"] = .string(grant) }
        if let feature = e.featureId { o["featureId"] = .string(feature) }
        if let key = e.idempotencyKey { o["idempotencyKey"] = .string(key) }
        o["timestamp"] = .string(e.timestamp.rfc3339)
        if !e.breakdown.isEmpty {
            o["breakdown"] = .array(e.breakdown.map { .object(["creditGrantId": .string($0.0), "amount": .string($0.1.description)]) })
        }
        if e.overdraftRepaid.isPositive { o["overdraftRepaid"] = .string(e.overdraftRepaid.description) }
        return .object(o)
    }
}
