import Foundation
import Synchronization
import TallyClient
import TallyCore
import TallyProtocol
import Testing
#if canImport(Glibc)
import Glibc
#endif

// Credits through the real daemon (PROTOCOL.md "Credits", "Errors", "Durability and idempotency").
// The helpers here (CreditFixture, CreditClock, expectCreditInvariants, …) are shared with
// CreditsConcurrencyTests and CreditsCLITests.

// MARK: - Time

/// Instants in the daemon's result format (`2031-01-15T00:00:00.000Z`).
enum CreditTime {
    static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    static func parse(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text) ?? ISO8601DateFormatter().date(from: text)
    }

    /// The first instant of the UTC month after the one containing `date`.
    static func nextMonth(after date: Date) -> Date {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let start = calendar.date(from: calendar.dateComponents([.year, .month], from: date))!
        return calendar.date(byAdding: .month, value: 1, to: start)!
    }
}

/// The ledger clock of a `--test-clock` daemon, as the tests moved it (it only moves forward).
final class CreditClock: @unchecked Sendable {
    // @unchecked: `current` is a Mutex; LiveDaemon is only read.
    static let start = "2031-01-15T00:00:00.000Z"
    static var daemonArguments: [String] { ["--test-clock", "--test-clock-start", start] }

    let daemon: LiveDaemon
    private let current: Mutex<Date>

    init(_ daemon: LiveDaemon, start: String = CreditClock.start) {
        self.daemon = daemon
        current = Mutex(CreditTime.parse(start)!)
    }

    var now: Date { current.withLock { $0 } }
    var nowText: String { CreditTime.format(now) }

    /// `now + seconds` as text, without moving the clock.
    func at(_ seconds: Double) -> String { CreditTime.format(now.addingTimeInterval(seconds)) }

    /// Moves the daemon's clock forward by `seconds` (debug.setClock runs due expiries first).
    @discardableResult
    func advance(_ seconds: Double) throws -> String { try set(now.addingTimeInterval(seconds)) }

    @discardableResult
    func set(_ date: Date) throws -> String {
        let text = CreditTime.format(date)
        let reply = try daemon.call("debug.setClock", ["now": .string(text)])
        #expect(reply["now"] == .string(text), "debug.setClock: \(reply.jsonText)")
        current.withLock { $0 = date }
        return text
    }
}

// MARK: - Fixture

/// A customer, a currency and a credit-backed METERED feature of its own on one daemon.
struct CreditFixture {
    let daemon: LiveDaemon
    let customer: String
    let currency: String
    let feature: String

    init(_ daemon: LiveDaemon, amountPerUnit: String = "1", prefix: String = "cr") throws {
        self.daemon = daemon
        customer = uniqueID("\(prefix)-cust")
        currency = uniqueID("\(prefix)-cur")
        feature = uniqueID("\(prefix)-feat")
        _ = try daemon.call("provisionCustomer", ["customerId": .string(customer), "name": "Credits customer"])
        _ = try daemon.call("defineCurrency", ["currencyId": .string(currency), "displayName": "Credits"])
        _ = try daemon.call("defineFeature", [
            "featureId": .string(feature), "type": "METERED",
            "creditCost": ["currencyId": .string(currency), "amountPerUnit": .string(amountPerUnit)],
        ])
    }

    /// Another credit-backed feature (same currency unless given).
    func newFeature(id: String = uniqueID("cr-feat"), amountPerUnit: String = "1", currency other: String? = nil) throws -> String {
        _ = try daemon.call("defineFeature", [
            "featureId": .string(id), "type": "METERED",
            "creditCost": ["currencyId": .string(other ?? currency), "amountPerUnit": .string(amountPerUnit)],
        ])
        return id
    }

    /// A credit-backed feature (0.001 credits per token) metered from raw events `eventName` by
    /// SUM over dimension `tokens`.
    func newTokenMeter() throws -> (eventName: String, featureId: String) {
        let eventName = uniqueID("cr-evt"), featureId = uniqueID("cr-tokens")
        _ = try daemon.call("defineFeature", [
            "featureId": .string(featureId), "type": "METERED",
            "meter": ["eventName": .string(eventName), "aggregation": "SUM", "field": "tokens"],
            "creditCost": ["currencyId": .string(currency), "amountPerUnit": "0.001"],
        ])
        return (eventName, featureId)
    }

    func newCurrency() throws -> String {
        let id = uniqueID("cr-cur")
        _ = try daemon.call("defineCurrency", ["currencyId": .string(id), "displayName": "Other credits"])
        return id
    }

    func grantParams(_ amount: String, _ type: String = "PAID", _ extra: JSONObject = [:]) -> JSONObject {
        var params: JSONObject = [
            "customerId": .string(customer), "currencyId": .string(currency), "amount": .string(amount), "grantType": .string(type),
        ]
        for (key, value) in extra { params[key] = value }
        return params
    }

    /// grantCredits; returns the CreditGrant.
    @discardableResult
    func grant(_ amount: String, _ type: String = "PAID", _ extra: JSONObject = [:]) throws -> JSONValue {
        try daemon.call("grantCredits", grantParams(amount, type, extra))
    }

    func grantId(_ amount: String, _ type: String = "PAID", _ extra: JSONObject = [:]) throws -> String {
        let grant = try grant(amount, type, extra)
        guard let id = grant["grantId"]?.stringValue else { throw LiveTestError("grantCredits has no grantId: \(grant.jsonText)") }
        return id
    }

    func usageParams(_ value: String, _ extra: JSONObject = [:]) -> JSONObject {
        var params: JSONObject = ["customerId": .string(customer), "featureId": .string(feature), "value": .string(value)]
        for (key, v) in extra { params[key] = v }
        return params
    }

    /// reportUsage on the fixture's feature (or `extra["featureId"]`).
    @discardableResult
    func use(_ value: String, _ extra: JSONObject = [:]) throws -> JSONValue {
        try daemon.call("reportUsage", usageParams(value, extra))
    }

    /// getCreditBalance of one pool: its entry.
    func pool(resource: String? = nil, currency other: String? = nil, asOf: JSONValue? = nil) throws -> JSONValue {
        var params: JSONObject = ["customerId": .string(customer), "currencyId": .string(other ?? currency)]
        if let resource { params["resourceId"] = .string(resource) }
        if let asOf { params["asOf"] = asOf }
        let result = try daemon.call("getCreditBalance", params)
        let entries = result["balances"]?.arrayValue ?? []
        guard let entry = entries.first(where: { $0["resourceId"]?.stringValue == resource }) else {
            throw LiveTestError("getCreditBalance has no pool for resource \(resource ?? "(global)"): \(result.jsonText)")
        }
        return entry
    }

    /// The balance of one pool, as the daemon answers it now.
    func balance(resource: String? = nil, currency other: String? = nil, asOf: JSONValue? = nil) throws -> String {
        try pool(resource: resource, currency: other, asOf: asOf)["balance"]?.stringValue ?? "?"
    }

    /// Every entry of getCreditLedger, following `next`.
    func ledger(_ extra: JSONObject = [:]) throws -> [JSONValue] {
        try creditLedger(daemon, customer, extra)
    }

    func grants(_ extra: JSONObject = [:]) throws -> [JSONValue] {
        var params: JSONObject = ["customerId": .string(customer)]
        for (key, value) in extra { params[key] = value }
        return try daemon.call("getCreditGrants", params)["grants"]?.arrayValue ?? []
    }

    func grant(withId id: String) throws -> JSONValue? {
        try grants().first { $0["grantId"]?.stringValue == id }
    }

    /// The breakdown of a ledger entry as [(grantId, amount)].
    static func breakdown(_ entry: JSONValue?) -> [String] {
        (entry?["breakdown"]?.arrayValue ?? []).map { "\($0["creditGrantId"]?.stringValue ?? "?")=\($0["amount"]?.stringValue ?? "?")" }
    }
}

/// Every entry of a customer's credit ledger, following `next` with pages of `pageSize`.
func creditLedger(_ daemon: LiveDaemon, _ customer: String, _ extra: JSONObject = [:], pageSize: Int = 1000) throws -> [JSONValue] {
    let connection = try daemon.connect()
    defer { connection.close() }
    var entries: [JSONValue] = []
    var after: JSONValue?
    while true {
        var params: JSONObject = ["customerId": .string(customer), "limit": .integer(pageSize)]
        for (key, value) in extra { params[key] = value }
        if let after { params["after"] = after }
        let page = try connection.call("getCreditLedger", params)
        entries += page["entries"]?.arrayValue ?? []
        guard let next = page["next"], !next.isNull else { return entries }
        after = next
    }
}

func amount(_ value: JSONValue?, sourceLocation: SourceLocation = #_sourceLocation) -> Amount {
    guard let text = value?.stringValue, let a = try? Amount(parsing: text) else {
        Issue.record("not an amount string: \(value?.jsonText ?? "absent")", sourceLocation: sourceLocation)
        return .zero
    }
    return a
}

/// The contract's bookkeeping, checked from getCreditLedger + getCreditGrants + getCreditBalance:
/// per currency/pool the ledger is chronological and `balanceAfter` is its running sum, the
/// running sum is granted − consumed − expired − voided, every grant's remaining is within
/// [0, amount] and adds up with what it lost, and the balance is what the active grants hold less
/// the overdraft (= the ledger sum when no grant is scheduled).
func expectCreditInvariants(_ daemon: LiveDaemon, _ customer: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    struct Pool: Hashable, CustomStringConvertible {
        var currency: String
        var resource: String?
        var description: String { "\(currency)/\(resource ?? "global")" }
    }
    struct Sums { var running = Amount.zero, granted = Amount.zero, consumed = Amount.zero, expired = Amount.zero, voided = Amount.zero }
    let grants = try daemon.call("getCreditGrants", ["customerId": .string(customer)])["grants"]?.arrayValue ?? []
    var repaidByGrant: [String: Amount] = [:]
    // A grant scheduled when granted repaid when it became effective, which has no ledger entry:
    // the walk takes its repayment off at the end.
    var repaidAtActivation: [Pool: Amount] = [:]
    for grant in grants {
        guard let id = grant["grantId"]?.stringValue, let repaid = grant["overdraftRepaid"] else { continue }
        let effectiveAt = grant["effectiveAt"]?.stringValue.flatMap(CreditTime.parse), createdAt = grant["createdAt"]?.stringValue.flatMap(CreditTime.parse)
        if let effectiveAt, let createdAt, effectiveAt > createdAt {
            let pool = Pool(currency: grant["currencyId"]?.stringValue ?? "?", resource: grant["resourceId"]?.stringValue)
            repaidAtActivation[pool, default: .zero] = repaidAtActivation[pool, default: .zero] + amount(repaid, sourceLocation: sourceLocation)
        } else {
            repaidByGrant[id] = amount(repaid, sourceLocation: sourceLocation)
        }
    }
    let entries = try creditLedger(daemon, customer)
    var sums: [Pool: Sums] = [:]
    var drawn: [String: Amount] = [:]  // grantId → what deductions drew from it
    var lastSequence = 0
    // The overdraft of each pool as the ledger goes: what deductions left uncovered, less what
    // grants (overdraftRepaid) and later deductions (drawing more than their cost) repaid.
    var overdraft: [Pool: Amount] = [:]
    for entry in entries {
        let sequence = entry["sequence"]?.intValue ?? 0
        #expect(sequence > lastSequence, "the credit ledger is not chronological at \(entry.jsonText)", sourceLocation: sourceLocation)
        lastSequence = sequence
        let pool = Pool(currency: entry["currencyId"]?.stringValue ?? "?", resource: entry["resourceId"]?.stringValue)
        let value = amount(entry["amount"], sourceLocation: sourceLocation)
        var s = sums[pool] ?? Sums()
        s.running = s.running + value
        #expect(amount(entry["balanceAfter"], sourceLocation: sourceLocation) == s.running,
                "\(pool): balanceAfter is not the previous balanceAfter + amount at \(entry.jsonText)", sourceLocation: sourceLocation)
        switch entry["eventType"]?.stringValue {
        case "CREDITS_GRANTED":
            #expect(value.isPositive, "a grant entry adds: \(entry.jsonText)", sourceLocation: sourceLocation)
            s.granted = s.granted + value
            if let id = entry["creditGrantId"]?.stringValue, let repaid = repaidByGrant[id] { overdraft[pool] = (overdraft[pool] ?? .zero) - repaid }
        case "CREDITS_CONSUMED":
            #expect(value.isNegative, "a consumption entry subtracts: \(entry.jsonText)", sourceLocation: sourceLocation)
            s.consumed = s.consumed - value
            var total = Amount.zero
            for part in entry["breakdown"]?.arrayValue ?? [] {
                let id = part["creditGrantId"]?.stringValue ?? "?"
                let draw = amount(part["amount"], sourceLocation: sourceLocation)
                #expect(draw.isPositive, "a breakdown draws a positive amount: \(entry.jsonText)", sourceLocation: sourceLocation)
                drawn[id] = (drawn[id] ?? .zero) + draw
                total = total + draw
            }
            overdraft[pool] = (overdraft[pool] ?? .zero) + (-value - total)
            if let repaid = entry["overdraftRepaid"] {
                #expect(total == -value + amount(repaid, sourceLocation: sourceLocation) || total <= -value, "breakdown vs amount + overdraftRepaid: \(entry.jsonText)", sourceLocation: sourceLocation)
            }
        case "CREDITS_EXPIRED":
            #expect(!value.isPositive, "\(entry.jsonText)", sourceLocation: sourceLocation)
            s.expired = s.expired - value
        case "CREDITS_VOIDED":
            #expect(!value.isPositive, "\(entry.jsonText)", sourceLocation: sourceLocation)
            s.voided = s.voided - value
        default:
            Issue.record("unknown credit ledger eventType: \(entry.jsonText)", sourceLocation: sourceLocation)
        }
        sums[pool] = s
        #expect(!(overdraft[pool] ?? .zero).isNegative, "\(pool): more overdraft repaid than there was, at \(entry.jsonText)", sourceLocation: sourceLocation)
    }

    struct GrantSums { var amount = Amount.zero, consumed = Amount.zero, expired = Amount.zero, voided = Amount.zero, activeRemaining = Amount.zero, scheduledRemaining = Amount.zero }
    var grantSums: [Pool: GrantSums] = [:]
    for grant in grants {
        let pool = Pool(currency: grant["currencyId"]?.stringValue ?? "?", resource: grant["resourceId"]?.stringValue)
        let total = amount(grant["amount"], sourceLocation: sourceLocation)
        let remaining = amount(grant["remainingAmount"], sourceLocation: sourceLocation)
        let consumed = amount(grant["consumedAmount"], sourceLocation: sourceLocation)
        let expired = grant["expiredAmount"].map { amount($0, sourceLocation: sourceLocation) } ?? .zero
        let voided = grant["voidedAmount"].map { amount($0, sourceLocation: sourceLocation) } ?? .zero
        let repaid = grant["overdraftRepaid"].map { amount($0, sourceLocation: sourceLocation) } ?? .zero
        let id = grant["grantId"]?.stringValue ?? "?"
        #expect(!remaining.isNegative && remaining <= total, "grant \(id): remaining out of [0, amount]: \(grant.jsonText)", sourceLocation: sourceLocation)
        #expect(consumed + expired + voided + remaining == total, "grant \(id): consumed + expired + voided + remaining ≠ amount: \(grant.jsonText)", sourceLocation: sourceLocation)
        #expect((drawn[id] ?? .zero) + repaid == consumed, "grant \(id): the ledger's breakdowns draw \(drawn[id] ?? .zero) (+ repaid \(repaid)) but consumedAmount is \(consumed)", sourceLocation: sourceLocation)
        var g = grantSums[pool] ?? GrantSums()
        g.amount = g.amount + total
        g.consumed = g.consumed + consumed
        g.expired = g.expired + expired
        g.voided = g.voided + voided
        switch grant["status"]?.stringValue {
        case "ACTIVE": g.activeRemaining = g.activeRemaining + remaining
        case "SCHEDULED": g.scheduledRemaining = g.scheduledRemaining + remaining
        default: #expect(remaining.isZero, "grant \(id) is \(grant["status"]?.stringValue ?? "?") but still holds \(remaining)", sourceLocation: sourceLocation)
        }
        grantSums[pool] = g
    }

    var overdraft_ = overdraft
    for (pool, repaid) in repaidAtActivation { overdraft_[pool, default: .zero] = overdraft_[pool, default: .zero] - repaid }
    let balances = try daemon.call("getCreditBalance", ["customerId": .string(customer)])["balances"]?.arrayValue ?? []
    for pool in Set(sums.keys).union(grantSums.keys) {
        let s = sums[pool] ?? Sums()
        let g = grantSums[pool] ?? GrantSums()
        #expect(s.running == s.granted - s.consumed - s.expired - s.voided, "\(pool): ledger sum ≠ granted − consumed − expired − voided", sourceLocation: sourceLocation)
        #expect(g.amount == s.granted, "\(pool): the grants' amounts (\(g.amount)) ≠ the ledger's grants (\(s.granted))", sourceLocation: sourceLocation)
        #expect(g.expired == s.expired, "\(pool): the grants' expiredAmount (\(g.expired)) ≠ the ledger's expiries (\(s.expired))", sourceLocation: sourceLocation)
        #expect(g.voided == s.voided, "\(pool): the grants' voidedAmount (\(g.voided)) ≠ the ledger's voids (\(s.voided))", sourceLocation: sourceLocation)
        let overdraft = s.consumed - g.consumed
        #expect(overdraft == (overdraft_[pool] ?? .zero), "\(pool): the overdraft from the grants (\(overdraft)) ≠ the one the ledger walk left (\(overdraft_[pool] ?? .zero))", sourceLocation: sourceLocation)
        #expect(!overdraft.isNegative, "\(pool): grants were drawn (\(g.consumed)) beyond what was consumed (\(s.consumed))", sourceLocation: sourceLocation)
        guard let b = balances.first(where: { $0["currencyId"]?.stringValue == pool.currency && $0["resourceId"]?.stringValue == pool.resource }) else {
            Issue.record("getCreditBalance has no pool \(pool): \(balances)", sourceLocation: sourceLocation)
            continue
        }
        let balance = amount(b["balance"], sourceLocation: sourceLocation)
        #expect(amount(b["overdraft"], sourceLocation: sourceLocation) == overdraft, "\(pool): overdraft \(b.jsonText), expected \(overdraft)", sourceLocation: sourceLocation)
        #expect(balance == g.activeRemaining - overdraft, "\(pool): balance \(balance) ≠ active grants' remaining \(g.activeRemaining) − overdraft \(overdraft)", sourceLocation: sourceLocation)
        #expect(balance == s.running - g.scheduledRemaining, "\(pool): balance \(balance) ≠ granted − consumed − expired − voided (\(s.running)) less scheduled grants (\(g.scheduledRemaining))", sourceLocation: sourceLocation)
        if let ledgerBalance = b["ledgerBalance"] {
            #expect(amount(ledgerBalance, sourceLocation: sourceLocation) == s.running, "\(pool): ledgerBalance \(b.jsonText) ≠ the ledger's sum \(s.running)", sourceLocation: sourceLocation)
        }
    }
}

extension LiveDaemon {
    /// Runs `body` expecting an RPC error `code` (with `field` or `reason`), and checks nothing was appended.
    func expectCreditRefusal(code: Int, field: String? = nil, reason: String? = nil, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) throws {
        let before = try lastSequence()
        let error = expectRPCError(code: code, reason: reason, sourceLocation: sourceLocation, body)
        if let field { #expect(error?.field == field, "expected data.field \(field): \(error.map { "\($0)" } ?? "no error")", sourceLocation: sourceLocation) }
        #expect(try lastSequence() == before, "a refused command (\(code)) must append nothing", sourceLocation: sourceLocation)
    }
}

// MARK: - The suite on one --test-clock daemon

/// Serialized: tests compare `lastSequence` before and after a refusal, and move the one clock.
@Suite("credits through the real daemon", .serialized, SharedDaemonTrait(extraArguments: CreditClock.daemonArguments))
struct CreditsTests {
    let daemon: LiveDaemon
    let clock: CreditClock

    init() throws {
        daemon = try SharedDaemon.get()
        // One clock tracker per daemon: the tests of the suite share it.
        clock = try SharedDaemon.companion("clock") { CreditClock($0) }
    }

    // MARK: grantCredits

    @Test("grantCredits: ACTIVE now, SCHEDULED for a future effectiveAt, consumed/remaining follow deductions")
    func grantResult() throws {
        let f = try CreditFixture(daemon)
        let now = clock.nowText
        let active = try f.grant("25.5", "PAID", [
            "displayName": "Top-up", "comment": "first", "cost": ["amount": "9.99", "currency": "USD"], "metadata": ["invoice": "inv-7"],
        ])
        #expect(active["status"] == "ACTIVE" && active["grantType"] == "PAID" && active["sourceType"] == "MANUAL", "\(active.jsonText)")
        #expect(active["comment"] == "first" && active["cost"] == ["amount": "9.99", "currency": "USD"] && active["metadata"] == ["invoice": "inv-7"], "\(active.jsonText)")
        #expect(try f.grant(withId: active["grantId"]?.stringValue ?? "")?["cost"] == active["cost"], "getCreditGrants shows the same grant")
        #expect(active["amount"] == "25.5" && active["consumedAmount"] == "0" && active["remainingAmount"] == "25.5", "\(active.jsonText)")
        #expect(active["priority"] == 50 && active["effectiveAt"] == .string(now) && active["createdAt"] == .string(now), "\(active.jsonText)")
        #expect(active["customerId"] == .string(f.customer) && active["currencyId"] == .string(f.currency) && active["displayName"] == "Top-up")
        #expect(active["expireAt"] == nil && active["voidedAt"] == nil && active["resourceId"] == nil, "\(active.jsonText)")

        let later = clock.at(3600)
        let expire = clock.at(7200)
        let scheduled = try f.grant("10", "PROMOTIONAL", ["effectiveAt": .string(later), "expireAt": .string(expire), "priority": 7])
        #expect(scheduled["status"] == "SCHEDULED" && scheduled["effectiveAt"] == .string(later) && scheduled["expireAt"] == .string(expire), "\(scheduled.jsonText)")
        #expect(scheduled["remainingAmount"] == "10" && scheduled["consumedAmount"] == "0" && scheduled["priority"] == 7, "\(scheduled.jsonText)")
        #expect(try f.balance() == "25.5", "a scheduled grant is not in the balance yet")

        _ = try f.use("5.25")
        let after = try f.grant(withId: active["grantId"]?.stringValue ?? "")
        #expect(after?["consumedAmount"] == "5.25" && after?["remainingAmount"] == "20.25", "\(after?.jsonText ?? "missing")")
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("grantCredits refusals: -32602 naming the field, 1001, 1003; nothing appended")
    func grantRefusals() throws {
        let f = try CreditFixture(daemon)
        let cases: [(JSONObject, String)] = [
            (f.grantParams("0"), "amount"),
            (f.grantParams("-5"), "amount"),
            (f.grantParams("1.0000000000001"), "amount"),  // 13 fractional digits
            (f.grantParams("1", "FREE"), "grantType"),
            (f.grantParams("1", "PAID", ["priority": 101]), "priority"),
            (f.grantParams("1", "PAID", ["priority": -1]), "priority"),
            (f.grantParams("1", "PAID", ["effectiveAt": .string(clock.at(7200)), "expireAt": .string(clock.at(3600))]), "expireAt"),
            (f.grantParams("1", "PAID", ["effectiveAt": .string(clock.at(3600)), "expireAt": .string(clock.at(3600))]), "expireAt"),
            (f.grantParams("1", "PAID", ["expireAt": .string(clock.at(-60))]), "expireAt"),  // already past
        ]
        for (params, field) in cases {
            try daemon.expectCreditRefusal(code: -32602, field: field) { _ = try daemon.call("grantCredits", params) }
        }
        var missing = f.grantParams("1")
        missing["amount"] = nil
        try daemon.expectCreditRefusal(code: -32602, field: "amount") { _ = try daemon.call("grantCredits", missing) }

        var noCustomer = f.grantParams("1")
        noCustomer["customerId"] = .string(uniqueID("nocust"))
        try daemon.expectCreditRefusal(code: 1001, reason: "CUSTOMER_NOT_FOUND") { _ = try daemon.call("grantCredits", noCustomer) }
        var noCurrency = f.grantParams("1")
        noCurrency["currencyId"] = .string(uniqueID("nocur"))
        try daemon.expectCreditRefusal(code: 1003, reason: "CURRENCY_NOT_FOUND") { _ = try daemon.call("grantCredits", noCurrency) }
        #expect(try f.grants().isEmpty)
        // 12 fractional digits are exact.
        let exact = try f.grant("1.000000000001")
        #expect(exact["amount"] == "1.000000000001", "\(exact.jsonText)")
    }

    @Test("grantCredits idempotency: same key + payload → duplicate, nothing appended; other payload → 1011")
    func grantIdempotency() throws {
        let f = try CreditFixture(daemon)
        let key = uniqueID("gkey")
        let first = try f.grant("40", "PAID", ["idempotencyKey": .string(key)])
        #expect(first["duplicate"] == nil || first["duplicate"] == false, "\(first.jsonText)")
        let before = try daemon.lastSequence()
        let again = try f.grant("40", "PAID", ["idempotencyKey": .string(key)])
        #expect(again["duplicate"] == true, "\(again.jsonText)")
        #expect(again["grantId"] == first["grantId"] && again["amount"] == "40", "\(again.jsonText)")
        #expect(try daemon.lastSequence() == before, "a duplicate appends nothing")
        try daemon.expectCreditRefusal(code: 1011, reason: "IDEMPOTENCY_CONFLICT") {
            _ = try f.grant("41", "PAID", ["idempotencyKey": .string(key)])
        }
        try daemon.expectCreditRefusal(code: 1011, reason: "IDEMPOTENCY_CONFLICT") {
            _ = try f.grant("40", "PROMOTIONAL", ["idempotencyKey": .string(key)])
        }
        #expect(try f.balance() == "40")
        #expect(try f.ledger(["eventType": "CREDITS_GRANTED"]).count == 1)
    }

    // MARK: Consumption order

    /// Grants three (or more) grants, then one deduction that spans them; returns its breakdown.
    func breakdown(_ f: CreditFixture, use value: String) throws -> [String] {
        let reply = try f.use(value)
        guard let sequence = try f.ledger(["eventType": "CREDITS_CONSUMED"]).last else { throw LiveTestError("no CREDITS_CONSUMED entry") }
        #expect(sequence["amount"] == .string("-" + value), "\(sequence.jsonText)")
        #expect(reply.field("credit.consumed") == .string(value), "\(reply.jsonText)")
        return CreditFixture.breakdown(sequence)
    }

    @Test("order 1: lowest priority first, whatever the later tie-breakers say")
    func orderPriority() throws {
        let f = try CreditFixture(daemon)
        // a would win every later tie-breaker; b and c win on priority.
        let a = try f.grantId("5", "PROMOTIONAL", ["priority": 60, "expireAt": .string(clock.at(86_400)), "effectiveAt": .string(clock.at(-7200))])
        let b = try f.grantId("5", "PAID", ["priority": 10])
        let c = try f.grantId("5", "PAID", ["priority": 30])
        #expect(try breakdown(f, use: "12") == ["\(b)=5", "\(c)=5", "\(a)=2"])
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("order 2: then the earliest expireAt, no expireAt last")
    func orderExpireAt() throws {
        let f = try CreditFixture(daemon)
        let a = try f.grantId("5", "PROMOTIONAL", ["effectiveAt": .string(clock.at(-7200))])  // no expireAt: last
        let b = try f.grantId("5", "PAID", ["expireAt": .string(clock.at(3 * 86_400))])
        let c = try f.grantId("5", "PAID", ["expireAt": .string(clock.at(86_400))])
        #expect(try breakdown(f, use: "12") == ["\(c)=5", "\(b)=5", "\(a)=2"])
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("order 3: then PROMOTIONAL before PAID")
    func orderType() throws {
        let f = try CreditFixture(daemon)
        let expire = clock.at(5 * 86_400)
        let a = try f.grantId("5", "PAID", ["expireAt": .string(expire), "effectiveAt": .string(clock.at(-7200))])
        let b = try f.grantId("5", "PROMOTIONAL", ["expireAt": .string(expire)])
        let c = try f.grantId("5", "PAID", ["expireAt": .string(expire), "effectiveAt": .string(clock.at(-3600))])
        #expect(try breakdown(f, use: "12") == ["\(b)=5", "\(a)=5", "\(c)=2"])
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("order 4: then the earliest effectiveAt")
    func orderEffectiveAt() throws {
        let f = try CreditFixture(daemon)
        let a = try f.grantId("5", "PAID", ["effectiveAt": .string(clock.at(-3600))])
        let b = try f.grantId("5", "PAID", ["effectiveAt": .string(clock.at(-3 * 3600))])
        let c = try f.grantId("5", "PAID", ["effectiveAt": .string(clock.at(-2 * 3600))])
        #expect(try breakdown(f, use: "12") == ["\(b)=5", "\(c)=5", "\(a)=2"])
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("order 5: then the earlier grant")
    func orderSequence() throws {
        let f = try CreditFixture(daemon)
        let a = try f.grantId("5", "PAID")
        let b = try f.grantId("5", "PAID")
        let c = try f.grantId("5", "PAID")
        #expect(try breakdown(f, use: "12") == ["\(a)=5", "\(b)=5", "\(c)=2"])
        let grants = try f.grants()
        #expect(grants.map { $0["remainingAmount"] } == ["0", "0", "3"], "\(grants)")
        #expect(grants.map { $0["consumedAmount"] } == ["5", "5", "2"], "\(grants)")
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("only grants in the usage's pool (resourceId) are drawn")
    func pools() throws {
        let f = try CreditFixture(daemon)
        let global = try f.grantId("10")
        let r1 = try f.grantId("10", "PAID", ["resourceId": "r1"])
        let r1b = try f.grantId("2", "PROMOTIONAL", ["resourceId": "r1"])
        _ = try f.grantId("10", "PAID", ["resourceId": "r2"])

        let reply = try f.use("4", ["resourceId": "r1"])
        #expect(reply.field("credit.balance") == "8", "\(reply.jsonText)")
        #expect(CreditFixture.breakdown(try f.ledger(["eventType": "CREDITS_CONSUMED"]).last) == ["\(r1b)=2", "\(r1)=2"])
        #expect(try f.balance(resource: "r1") == "8")
        #expect(try f.balance() == "10")
        #expect(try f.balance(resource: "r2") == "10")

        let plain = try f.use("3")
        #expect(plain.field("credit.balance") == "7", "\(plain.jsonText)")
        #expect(CreditFixture.breakdown(try f.ledger(["eventType": "CREDITS_CONSUMED"]).last) == ["\(global)=3"])
        // r1 holds 8: a strict 9 there is refused even though the global pool and r2 hold more.
        try daemon.expectCreditRefusal(code: 1010, reason: "INSUFFICIENT_CREDITS") { _ = try f.use("9", ["resourceId": "r1", "strict": true]) }
        let all = try daemon.call("getCreditBalance", ["customerId": .string(f.customer)])["balances"]?.arrayValue ?? []
        #expect(Set(all.map { "\($0["resourceId"]?.stringValue ?? "-")=\($0["balance"]?.stringValue ?? "?")" }) == ["-=7", "r1=8", "r2=10"], "\(all)")
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("a scheduled grant is not drawn before its effectiveAt, and is once the clock passes it")
    func scheduledGrant() throws {
        let f = try CreditFixture(daemon)
        let a = try f.grantId("5")
        let start = clock.at(3600)
        let s = try f.grantId("10", "PAID", ["effectiveAt": .string(start)])
        #expect(try f.grant(withId: s)?["status"] == "SCHEDULED")
        #expect(try f.balance() == "5")
        try daemon.expectCreditRefusal(code: 1010, reason: "INSUFFICIENT_CREDITS") { _ = try f.use("8", ["strict": true]) }
        try clock.advance(1800)
        try daemon.expectCreditRefusal(code: 1010, reason: "INSUFFICIENT_CREDITS") { _ = try f.use("8", ["strict": true]) }
        try clock.set(CreditTime.parse(start)!)
        #expect(try f.grant(withId: s)?["status"] == "ACTIVE")
        #expect(try f.balance() == "15")
        let reply = try f.use("8", ["strict": true])
        #expect(reply.field("credit.balance") == "7", "\(reply.jsonText)")
        #expect(CreditFixture.breakdown(try f.ledger(["eventType": "CREDITS_CONSUMED"]).last) == ["\(a)=5", "\(s)=3"])
        try expectCreditInvariants(daemon, f.customer)
    }

    // MARK: reportUsage on a credit-backed feature

    @Test("reportUsage: credit holds the exact balance after, equal to getCreditBalance")
    func usageBalance() throws {
        let f = try CreditFixture(daemon, amountPerUnit: "0.25")
        try f.grant("10")
        for (value, balance) in [("3", "9.25"), ("0.5", "9.125"), ("12", "6.125")] {
            let reply = try f.use(value)
            #expect(reply.field("credit.currencyId") == .string(f.currency), "\(reply.jsonText)")
            #expect(reply.field("credit.balance") == .string(balance), "\(reply.jsonText)")
            #expect(try f.balance() == balance)
        }
        let last = try f.ledger().last
        #expect(last?["eventType"] == "CREDITS_CONSUMED" && last?["amount"] == "-3" && last?["balanceAfter"] == "6.125" && last?["featureId"] == .string(f.feature), "\(last?.jsonText ?? "")")
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("non-strict uncovered cost → overdraft; the next grant repays it first")
    func overdraft() throws {
        let f = try CreditFixture(daemon)
        let g = try f.grantId("5")
        let reply = try f.use("8")
        #expect(reply.field("credit.consumed") == "8" && reply.field("credit.balance") == "-3", "\(reply.jsonText)")
        let pool = try f.pool()
        #expect(pool["balance"] == "-3" && pool["overdraft"] == "3" && pool["grantsRemaining"] == "0", "\(pool.jsonText)")
        let consumed = try f.ledger().last
        #expect(consumed?["amount"] == "-8" && consumed?["balanceAfter"] == "-3" && CreditFixture.breakdown(consumed) == ["\(g)=5"], "\(consumed?.jsonText ?? "")")
        try expectCreditInvariants(daemon, f.customer)

        let repay = try f.grant("10")
        #expect(repay["overdraftRepaid"] == "3" && repay["remainingAmount"] == "7" && repay["consumedAmount"] == "3", "\(repay.jsonText)")
        let after = try f.pool()
        #expect(after["balance"] == "7" && after["overdraft"] == "0" && after["grantsRemaining"] == "7", "\(after.jsonText)")
        let granted = try f.ledger().last
        #expect(granted?["eventType"] == "CREDITS_GRANTED" && granted?["amount"] == "10" && granted?["balanceAfter"] == "7", "\(granted?.jsonText ?? "")")
        // A grant smaller than the overdraft repays what it can.
        _ = try f.use("20")
        let small = try f.grant("4")
        #expect(small["overdraftRepaid"] == "4" && small["remainingAmount"] == "0", "\(small.jsonText)")
        #expect(try f.balance() == "-9")
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("at a negative balance, what costs nothing is refused neither by strict reportUsage nor by getEntitlement; anything more is")
    func zeroCostAtNegativeBalance() throws {
        let f = try CreditFixture(daemon)
        _ = try f.use("3")  // overdraft 3
        let zero = try f.use("0", ["strict": true])
        #expect(zero.field("credit.balance") == "-3", "\(zero.jsonText)")
        let free = try daemon.entitlement(f.customer, f.feature, requested: "0")
        #expect(free["hasAccess"] == true && free["accessDeniedReason"] == nil, "\(free.jsonText)")
        let one = try daemon.entitlement(f.customer, f.feature, requested: "1")
        #expect(one["hasAccess"] == false && one["accessDeniedReason"] == "INSUFFICIENT_CREDITS", "\(one.jsonText)")
        try daemon.expectCreditRefusal(code: 1010, reason: "INSUFFICIENT_CREDITS") { _ = try f.use("1", ["strict": true]) }
    }

    @Test("strict with insufficient balance → 1010, nothing appended (no usage either)")
    func strictInsufficient() throws {
        let f = try CreditFixture(daemon, amountPerUnit: "2")
        try f.grant("5")
        try daemon.expectCreditRefusal(code: 1010, reason: "INSUFFICIENT_CREDITS") { _ = try f.use("3", ["strict": true, "idempotencyKey": "s1"]) }
        let entitlement = try daemon.call("getEntitlement", ["customerId": .string(f.customer), "featureId": .string(f.feature)])
        #expect(entitlement["currentUsage"] == "0", "no usage was recorded: \(entitlement.jsonText)")
        #expect(try f.balance() == "5")
        // The key was not consumed by the refusal: a smaller report with it succeeds.
        let ok = try f.use("2.5", ["strict": true, "idempotencyKey": "s1"])
        #expect(ok.field("credit.balance") == "0" && ok["duplicate"] == nil, "\(ok.jsonText)")
        try daemon.expectCreditRefusal(code: 1010, reason: "INSUFFICIENT_CREDITS") { _ = try f.use("0.000000000001", ["strict": true]) }
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("strict compares the cost with the balance net of the overdraft, which a scheduled grant repaid when it became active")
    func strictWithOverdraft() throws {
        let f = try CreditFixture(daemon)
        try f.grant("5")
        _ = try f.use("8")  // overdraft 3
        let start = clock.at(600)
        let s = try f.grantId("10", "PAID", ["effectiveAt": .string(start)])
        try clock.set(CreditTime.parse(start)!)
        #expect(try f.grant(withId: s)?["status"] == "ACTIVE")
        let pool = try f.pool()
        #expect(pool["balance"] == "7" && pool["overdraft"] == "0" && pool["grantsRemaining"] == "7", "\(pool.jsonText)")
        // The balance is 7: a strict report costing 9 exceeds it and must be refused.
        try daemon.expectCreditRefusal(code: 1010, reason: "INSUFFICIENT_CREDITS") { _ = try f.use("9", ["strict": true]) }
        #expect(try f.balance() == "7")
        let ok = try f.use("7", ["strict": true])
        #expect(ok.field("credit.balance") == "0", "\(ok.jsonText)")
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("a grant scheduled for later repays the overdraft when it becomes effective (CREDITS_ACTIVATED), not at the next deduction; a void then removes only what is left")
    func activationRepaysOverdraft() throws {
        let f = try CreditFixture(daemon)
        try f.grant("5")
        _ = try f.use("8")  // overdraft 3
        let start = clock.at(600)
        let s = try f.grantId("10", "PAID", ["effectiveAt": .string(start)])
        let scheduled = try f.grant(withId: s)
        #expect(scheduled?["remainingAmount"] == "10" && scheduled?["overdraftRepaid"] == nil, "\(scheduled?.jsonText ?? "")")
        var pool = try f.pool()
        #expect(pool["balance"] == "-3" && pool["overdraft"] == "3" && pool["grantsRemaining"] == "0", "\(pool.jsonText)")
        let before = try daemon.lastSequence()
        try clock.set(CreditTime.parse(start)!)
        // debug.setClock runs the timer's tick: the activation is appended before it answers.
        let appended = try daemon.events(after: before)
        #expect(appended.map { $0["type"]?.stringValue ?? "?" } == ["CREDITS_ACTIVATED"], "\(appended)")
        #expect(appended.first?["data"]?["creditGrantId"] == .string(s) && appended.first?["data"]?["overdraftRepaid"] == "3", "\(appended)")
        let active = try f.grant(withId: s)
        #expect(active?["status"] == "ACTIVE" && active?["overdraftRepaid"] == "3" && active?["remainingAmount"] == "7" && active?["consumedAmount"] == "3", "\(active?.jsonText ?? "")")
        pool = try f.pool()
        #expect(pool["balance"] == "7" && pool["overdraft"] == "0" && pool["grantsRemaining"] == "7", "\(pool.jsonText)")
        // The next deduction draws only its cost.
        _ = try f.use("4")
        let entry = try f.ledger(["eventType": "CREDITS_CONSUMED"]).last
        #expect(entry?["amount"] == "-4" && CreditFixture.breakdown(entry) == ["\(s)=4"] && entry?["overdraftRepaid"] == nil, "\(entry?.jsonText ?? "")")
        // Voided now, the grant takes away only the 3 it still holds: the overdraft stays repaid.
        let voided = try daemon.call("voidCreditGrant", ["grantId": .string(s)])
        #expect(voided["voidedAmount"] == "3" && voided["remainingAmount"] == "0", "\(voided.jsonText)")
        pool = try f.pool()
        #expect(pool["balance"] == "0" && pool["overdraft"] == "0" && pool["ledgerBalance"] == "0", "\(pool.jsonText)")
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("with the clock behind the log (stepped back), commands decide at their recordedAt and reads answer at it too: the grant active then is drawn and shown active, an expireAt before it is refused, the default timestamp is it")
    func clockBehindTheLog() throws {
        let f = try CreditFixture(daemon)
        let g = try f.grantId("5")
        let was = clock.now
        try clock.set(was.addingTimeInterval(-7200))
        defer { _ = try? clock.set(was) }
        // Reads agree with what a command would be decided on (not with the stepped-back clock,
        // at which the grant would be SCHEDULED and the balance 0).
        #expect(try f.balance() == "5")
        #expect(try f.grants().first?["status"] == "ACTIVE")
        let check = try daemon.call("getEntitlement", ["customerId": .string(f.customer), "featureId": .string(f.feature), "requestedUsage": "1"])
        #expect(check["hasAccess"] == true && check.field("creditBalance.balance") == "5", "\(check.jsonText)")
        let reply = try f.use("1")
        #expect(reply.field("credit.balance") == "4", "\(reply.jsonText)")
        #expect(try f.balance() == "4", "the balance read after the deduction is the reply's")
        let usage = try daemon.call("getCreditUsage", ["customerId": .string(f.customer), "timeRange": "LAST_DAY"])
        #expect(usage["series"]?.arrayValue?.first?["totalCredits"] == "1", "the deduction is inside LAST_DAY: \(usage.jsonText)")
        #expect(reply.field("measurement.timestamp") == reply.field("measurement.createdAt"), "\(reply.jsonText)")
        #expect(CreditFixture.breakdown(try f.ledger(["eventType": "CREDITS_CONSUMED"]).last) == ["\(g)=1"])
        try daemon.expectCreditRefusal(code: -32602, field: "expireAt") {
            _ = try f.grant("3", "PAID", ["expireAt": .string(CreditTime.format(was.addingTimeInterval(-3600)))])
        }
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("a clock before 1970 on an empty log: commands are decided and recorded at the clock's time, not at 1970")
    func clockBefore1970() throws {
        let start = "1969-06-15T12:00:00.000Z"
        let daemon = try LiveDaemon(extraArguments: ["--test-clock", "--test-clock-start", start]).start()
        let customer = try daemon.call("provisionCustomer", ["customerId": "early"])
        #expect(customer["createdAt"] == .string(start), "\(customer.jsonText)")
        _ = try daemon.call("defineFeature", ["featureId": "calls", "type": "METERED"])
        let reply = try daemon.call("reportUsage", ["customerId": "early", "featureId": "calls", "value": "2"])
        #expect(reply.field("measurement.timestamp") == .string(start) && reply.field("measurement.createdAt") == .string(start), "\(reply.jsonText)")
        let events = try daemon.call("readLedger", ["after": 0, "limit": 10])["events"]?.arrayValue ?? []
        #expect(!events.isEmpty && events.allSatisfy { $0["recordedAt"] == .string(start) }, "\(events.map(\.jsonText))")
        #expect(try daemon.terminate() == 0)
    }

    @Test("getCreditUsage LAST_DAY counts back from now itself: a now one microsecond before the hour still starts the window at the hour 24 hours back")
    func lastDayFromNow() throws {
        let f = try CreditFixture(daemon)
        try f.grant("100")
        let clockNow = Timestamp(microsecondsSinceEpoch: Int64(clock.now.timeIntervalSince1970 * 1_000_000))
        let hour = CalendarUTC.periodStart(.hour, containing: clockNow).adding(microseconds: -3_600_000_000)
        _ = try f.use("2", ["timestamp": .string(hour.adding(microseconds: 1_800_000_000).rfc3339)])
        // 24 hours and 59:59.999999 after `hour`: the window's start, floored to the hour, is `hour`.
        let now = hour.adding(microseconds: 25 * 3_600_000_000 - 1)
        _ = try daemon.call("debug.setClock", ["now": .string(now.rfc3339)])
        defer { _ = try? clock.set(Date(timeIntervalSince1970: Double(now.microsecondsSinceEpoch) / 1_000_000 + 1)) }
        let usage = try daemon.call("getCreditUsage", ["customerId": .string(f.customer), "timeRange": "LAST_DAY"])
        #expect(usage["startDate"] == .string(hour.rfc3339), "\(usage.jsonText)")
        #expect(usage["series"]?.arrayValue?.first?["totalCredits"] == "2", "\(usage.jsonText)")
    }

    @Test("voidCreditGrant idempotency keys are scoped per customer, like every other command's")
    func voidKeyPerCustomer() throws {
        let a = try CreditFixture(daemon), b = try CreditFixture(daemon)
        let ga = try a.grantId("5"), gb = try b.grantId("5")
        let key = uniqueID("void")
        _ = try daemon.call("voidCreditGrant", ["grantId": .string(ga), "idempotencyKey": .string(key)])
        // Another customer's void with the same key is another command, not a conflict.
        let other = try daemon.call("voidCreditGrant", ["grantId": .string(gb), "idempotencyKey": .string(key)])
        #expect(other["status"] == "VOIDED" && other["duplicate"] == nil, "\(other.jsonText)")
        #expect(try b.balance() == "0")
    }

    @Test("a negative DELTA on a credit-backed feature → -32602 field value")
    func negativeDelta() throws {
        let f = try CreditFixture(daemon)
        try f.grant("5")
        try daemon.expectCreditRefusal(code: -32602, field: "value") { _ = try f.use("-1") }
        try daemon.expectCreditRefusal(code: -32602, field: "value") { _ = try f.use("-1", ["strict": true]) }
        #expect(try f.balance() == "5")
    }

    // MARK: voidCreditGrant

    @Test("voidCreditGrant: remaining leaves at once; again → 1012; same key → duplicate; unknown → 1004")
    func void() throws {
        let f = try CreditFixture(daemon)
        let g = try f.grantId("10")
        try f.grant("3", "PROMOTIONAL", ["priority": 90])
        _ = try f.use("4")
        let key = uniqueID("void")
        let voided = try daemon.call("voidCreditGrant", ["grantId": .string(g), "idempotencyKey": .string(key)])
        #expect(voided["status"] == "VOIDED" && voided["remainingAmount"] == "0" && voided["consumedAmount"] == "4", "\(voided.jsonText)")
        #expect(voided["voidedAt"] == .string(clock.nowText) && voided["voidedAmount"] == "6", "\(voided.jsonText)")
        #expect(try f.balance() == "3")
        let entry = try f.ledger().last
        #expect(entry?["eventType"] == "CREDITS_VOIDED" && entry?["amount"] == "-6" && entry?["creditGrantId"] == .string(g) && entry?["balanceAfter"] == "3", "\(entry?.jsonText ?? "")")

        let before = try daemon.lastSequence()
        let duplicate = try daemon.call("voidCreditGrant", ["grantId": .string(g), "idempotencyKey": .string(key)])
        #expect(duplicate["duplicate"] == true && duplicate["status"] == "VOIDED", "\(duplicate.jsonText)")
        #expect(try daemon.lastSequence() == before)
        try daemon.expectCreditRefusal(code: 1012, reason: "GRANT_NOT_ACTIVE") { _ = try daemon.call("voidCreditGrant", ["grantId": .string(g)]) }
        try daemon.expectCreditRefusal(code: 1012, reason: "GRANT_NOT_ACTIVE") {
            _ = try daemon.call("voidCreditGrant", ["grantId": .string(g), "idempotencyKey": .string(uniqueID("void"))])
        }
        try daemon.expectCreditRefusal(code: 1004, reason: "GRANT_NOT_FOUND") { _ = try daemon.call("voidCreditGrant", ["grantId": .string(uniqueID("grant"))]) }
        try daemon.expectCreditRefusal(code: -32602, field: "grantId") { _ = try daemon.call("voidCreditGrant", [:]) }
        // Consumed credits stay consumed: the deduction is still in the ledger.
        #expect(try f.ledger(["eventType": "CREDITS_CONSUMED"]).count == 1)
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("void of an expired grant → 1012")
    func voidExpired() throws {
        let f = try CreditFixture(daemon)
        let g = try f.grantId("10", "PAID", ["expireAt": .string(clock.at(600))])
        try clock.advance(601)
        #expect(try f.grant(withId: g)?["status"] == "EXPIRED")
        try daemon.expectCreditRefusal(code: 1012, reason: "GRANT_NOT_ACTIVE") { _ = try daemon.call("voidCreditGrant", ["grantId": .string(g)]) }
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("edges: a grant voided with nothing left says voidedAmount 0, as its ledger entry does; getCreditLedger after the largest sequence is empty (it wrapped to the start); getCreditUsage never answers a year 0000")
    func creditEdges() throws {
        let f = try CreditFixture(daemon)
        let g = try f.grantId("2")
        _ = try f.use("2")
        let voided = try daemon.call("voidCreditGrant", ["grantId": .string(g)])
        #expect(voided["status"] == "VOIDED" && voided["voidedAmount"] == "0" && voided["remainingAmount"] == "0", "\(voided.jsonText)")
        #expect(try f.ledger().last?["amount"] == "0")
        #expect(try f.grant(withId: g)?["voidedAmount"] == "0")

        let past = try daemon.call("getCreditLedger", ["customerId": .string(f.customer), "after": .number("18446744073709551615")])
        #expect(past["entries"]?.arrayValue?.isEmpty == true && past["next"] == .null, "\(past.jsonText.prefix(300))")
        let nearEnd = try daemon.call("getCreditLedger", ["customerId": .string(f.customer), "after": .number("18446744073709551614")])
        #expect(nearEnd["entries"]?.arrayValue?.isEmpty == true)

        // LAST_MONTH back from the first instant of year 1 widens into year 0000: the start is 0001-01-01.
        let first = try daemon.call("getCreditUsage", ["customerId": .string(f.customer), "endDate": "0001-01-01T00:00:00Z"])
        #expect(first["startDate"] == "0001-01-01T00:00:00.000Z" && first["endDate"] == "0001-01-01T00:00:00.000Z", "\(first.jsonText)")
        let lastYear = try daemon.call("getCreditUsage", ["customerId": .string(f.customer), "endDate": "0001-06-01T00:00:00Z", "timeRange": "LAST_YEAR"])
        #expect(lastYear["startDate"] == "0001-01-01T00:00:00.000Z", "\(lastYear.jsonText)")
        // And an end in year 10000 is left out (the end of the last hour of 9999).
        let last = try daemon.call("getCreditUsage", ["customerId": .string(f.customer), "endDate": "9999-12-31T23:59:59.999999Z", "timeRange": "LAST_DAY"])
        #expect(last["endDate"] == nil && last["startDate"] == "9999-12-30T23:00:00.000Z", "\(last.jsonText)")
    }

    // MARK: Expiry

    @Test("expiry: moving the clock to expireAt appends CREDITS_EXPIRED for the remaining amount; reads at T ≥ expireAt never count it")
    func expiry() throws {
        let f = try CreditFixture(daemon)
        let expireAt = clock.at(3600)
        let g = try f.grantId("10", "PAID", ["expireAt": .string(expireAt)])
        try f.grant("5", "PAID")
        _ = try f.use("3")  // drawn from the expiring grant first
        let beforeExpiry = try daemon.lastSequence()
        #expect(try f.balance() == "12")

        try clock.advance(1800)
        #expect(try f.ledger(["eventType": "CREDITS_EXPIRED"]).isEmpty, "nothing expires before expireAt")
        #expect(try f.balance() == "12")
        try clock.set(CreditTime.parse(expireAt)!)
        let expired = try f.ledger(["eventType": "CREDITS_EXPIRED"])
        #expect(expired.count == 1, "\(expired)")
        let e = expired.first
        #expect(e?["amount"] == "-7" && e?["creditGrantId"] == .string(g) && e?["balanceAfter"] == "5" && e?["timestamp"] == .string(expireAt), "\(e?.jsonText ?? "")")
        #expect((e?["sequence"]?.intValue ?? 0) > beforeExpiry)
        #expect(try f.balance() == "5")
        let grant = try f.grant(withId: g)
        #expect(grant?["status"] == "EXPIRED" && grant?["expiredAmount"] == "7" && grant?["remainingAmount"] == "0" && grant?["consumedAmount"] == "3", "\(grant?.jsonText ?? "")")
        #expect(try f.grants(["status": "EXPIRED"]).map { $0["grantId"] } == [.string(g)])

        // As the ledger stood: before the expiry the grant counted; at expireAt it never does.
        #expect(try f.balance(asOf: ["sequence": .integer(beforeExpiry)]) == "12")
        #expect(try f.balance(asOf: .string(expireAt)) == "5")
        let justBefore = CreditTime.format(CreditTime.parse(expireAt)!.addingTimeInterval(-0.001))
        #expect(try f.balance(asOf: .string(justBefore)) == "12")
        // A second tick finds nothing more to expire.
        try clock.advance(60)
        #expect(try f.ledger(["eventType": "CREDITS_EXPIRED"]).count == 1)
        try expectCreditInvariants(daemon, f.customer)
    }

    // MARK: Queries

    @Test("getCreditLedger: chronological, balanceAfter chains per pool, filters, cursor paging")
    func ledger() throws {
        let f = try CreditFixture(daemon)
        let other = try f.newCurrency()
        let otherFeature = try f.newFeature(currency: other)
        let g1 = try f.grantId("10")
        try f.grant("6", "PROMOTIONAL", ["resourceId": "r1"])
        _ = try f.use("3", ["idempotencyKey": "u1"])
        _ = try f.use("2", ["resourceId": "r1"])
        try f.grant("20", "PAID", ["currencyId": .string(other)])
        _ = try f.use("4", ["featureId": .string(otherFeature)])
        try clock.advance(60)
        _ = try daemon.call("voidCreditGrant", ["grantId": .string(g1)])
        _ = try f.use("1", ["resourceId": "r1"])
        try f.grant("2")

        let all = try f.ledger()
        #expect(all.count == 9, "\(all.map { $0["eventType"]?.stringValue ?? "?" })")
        #expect(all.map { $0["eventType"]?.stringValue ?? "" } == [
            "CREDITS_GRANTED", "CREDITS_GRANTED", "CREDITS_CONSUMED", "CREDITS_CONSUMED", "CREDITS_GRANTED",
            "CREDITS_CONSUMED", "CREDITS_VOIDED", "CREDITS_CONSUMED", "CREDITS_GRANTED",
        ])
        #expect(all.map { $0["balanceAfter"]?.stringValue ?? "" } == ["10", "6", "7", "4", "20", "16", "0", "3", "2"])
        #expect(all[2]["idempotencyKey"] == "u1" && all[2]["featureId"] == .string(f.feature), "\(all[2].jsonText)")
        #expect(all[5]["currencyId"] == .string(other), "\(all[5].jsonText)")
        let timestamps = all.compactMap { $0["timestamp"]?.stringValue.flatMap(CreditTime.parse) }
        #expect(timestamps.count == all.count && timestamps == timestamps.sorted(), "chronological timestamps")
        try expectCreditInvariants(daemon, f.customer)

        let byCurrency = try f.ledger(["currencyId": .string(other)])
        #expect(byCurrency.map { $0["amount"]?.stringValue ?? "" } == ["20", "-4"])
        let byResource = try f.ledger(["resourceId": "r1"])
        #expect(byResource.map { $0["amount"]?.stringValue ?? "" } == ["6", "-2", "-1"] && byResource.allSatisfy { $0["resourceId"] == "r1" })
        let consumed = try f.ledger(["eventType": "CREDITS_CONSUMED"])
        #expect(consumed.map { $0["amount"]?.stringValue ?? "" } == ["-3", "-2", "-4", "-1"])
        #expect(try f.ledger(["eventType": "CREDITS_VOIDED", "currencyId": .string(f.currency)]).map { $0["creditGrantId"] } == [.string(g1)])
        #expect(try f.ledger(["eventType": "CREDITS_EXPIRED"]).isEmpty)

        // Paging: limit 2, after = next, until next is null; the pages put together are the whole.
        var paged: [JSONValue] = []
        var after: JSONValue?
        var pages = 0
        while pages < 20 {
            var params: JSONObject = ["customerId": .string(f.customer), "limit": 2]
            if let after { params["after"] = after }
            let page = try daemon.call("getCreditLedger", params)
            let entries = page["entries"]?.arrayValue ?? []
            #expect(entries.count <= 2)
            if let after, let first = entries.first { #expect((first["sequence"]?.intValue ?? 0) > (after.intValue ?? 0)) }
            paged += entries
            pages += 1
            guard let next = page["next"], !next.isNull else { break }
            #expect(next == entries.last?["sequence"], "next is the last sequence of the page: \(page.jsonText)")
            after = next
        }
        #expect(paged == all, "paging by 2 yields the ledger")
        #expect(pages >= 5)
        // `after` alone skips through that sequence.
        let tail = try daemon.call("getCreditLedger", ["customerId": .string(f.customer), "after": all[6]["sequence"]!])["entries"]?.arrayValue ?? []
        #expect(tail == Array(all[7...]))
        try daemon.expectCreditRefusal(code: -32602, field: "limit") { _ = try daemon.call("getCreditLedger", ["customerId": .string(f.customer), "limit": 0]) }
        try daemon.expectCreditRefusal(code: -32602, field: "eventType") { _ = try daemon.call("getCreditLedger", ["customerId": .string(f.customer), "eventType": "CREDITS_STOLEN"]) }
        try daemon.expectCreditRefusal(code: 1001, reason: "CUSTOMER_NOT_FOUND") { _ = try daemon.call("getCreditLedger", ["customerId": .string(uniqueID("nocust"))]) }
    }

    @Test("getCreditGrants filters by currency, resource and status")
    func grantFilters() throws {
        let f = try CreditFixture(daemon)
        let other = try f.newCurrency()
        let active = try f.grantId("10")
        let scheduled = try f.grantId("5", "PAID", ["effectiveAt": .string(clock.at(86_400))])
        let voided = try f.grantId("3")
        _ = try daemon.call("voidCreditGrant", ["grantId": .string(voided)])
        let expiring = try f.grantId("4", "PROMOTIONAL", ["expireAt": .string(clock.at(300))])
        let resource = try f.grantId("6", "PAID", ["resourceId": "r9"])
        let foreign = try f.grantId("7", "PAID", ["currencyId": .string(other)])
        try clock.advance(301)

        func ids(_ extra: JSONObject) throws -> [String] { try f.grants(extra).compactMap { $0["grantId"]?.stringValue } }
        #expect(try ids([:]) == [active, scheduled, voided, expiring, resource, foreign])
        #expect(try ids(["status": "ACTIVE"]) == [active, resource, foreign])
        #expect(try ids(["status": "SCHEDULED"]) == [scheduled])
        #expect(try ids(["status": "VOIDED"]) == [voided])
        #expect(try ids(["status": "EXPIRED"]) == [expiring])
        #expect(try ids(["currencyId": .string(other)]) == [foreign])
        #expect(try ids(["resourceId": "r9"]) == [resource])
        #expect(try ids(["currencyId": .string(f.currency), "status": "ACTIVE"]) == [active, resource])
        try daemon.expectCreditRefusal(code: -32602, field: "status") { _ = try daemon.call("getCreditGrants", ["customerId": .string(f.customer), "status": "GONE"]) }
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("getCreditUsage: timeRange, startDate/endDate, groupBy a dimension and featureId, totals and eventCount")
    func creditUsage() throws {
        let f = try CreditFixture(daemon, amountPerUnit: "2")
        let second = try f.newFeature(amountPerUnit: "1")
        try f.grant("1000")
        let now = clock.now
        func ago(_ seconds: Double) -> JSONValue { .string(CreditTime.format(now.addingTimeInterval(-seconds))) }
        _ = try f.use("1", ["timestamp": ago(3 * 86_400), "dimensions": ["model": "a"]])
        _ = try f.use("2", ["timestamp": ago(5 * 3600), "dimensions": ["model": "b"]])
        _ = try f.use("3", ["timestamp": ago(600), "dimensions": ["model": "a", "region": "eu"]])
        _ = try f.use("7", ["featureId": .string(second), "timestamp": ago(600), "dimensions": ["model": "b"]])

        func series(_ extra: JSONObject) throws -> [JSONValue] {
            var params: JSONObject = ["customerId": .string(f.customer)]
            for (key, value) in extra { params[key] = value }
            return try daemon.call("getCreditUsage", params)["series"]?.arrayValue ?? []
        }
        func totals(_ s: [JSONValue], by key: (JSONValue) -> String) -> [String: String] {
            Dictionary(s.map { (key($0), "\($0["totalCredits"]?.stringValue ?? "?")/\($0["eventCount"]?.intValue ?? -1)") }, uniquingKeysWith: { a, b in a + "+" + b })
        }
        let byFeature = { (s: JSONValue) in s["featureId"]?.stringValue ?? "?" }
        let byTags = { (s: JSONValue) in (s["tags"]?.arrayValue ?? []).map { "\($0["key"]?.stringValue ?? "")=\($0["value"]?.stringValue ?? "")" }.joined(separator: ",") }

        // Default LAST_MONTH: everything, per feature.
        let month = try series([:])
        #expect(totals(month, by: byFeature) == [f.feature: "12/3", second: "7/1"], "\(month)")
        let monthPoints = month.first { $0["featureId"] == .string(f.feature) }?["points"]?.arrayValue ?? []
        #expect(monthPoints.reduce(0) { $0 + ($1["eventCount"]?.intValue ?? 0) } == 3 && monthPoints.count >= 2, "day buckets: \(monthPoints)")
        #expect(totals(try series(["timeRange": "LAST_DAY"]), by: byFeature) == [f.feature: "10/2", second: "7/1"])
        #expect(totals(try series(["timeRange": "LAST_WEEK", "currencyId": .string(f.currency)]), by: byFeature) == [f.feature: "12/3", second: "7/1"])
        // startDate/endDate override timeRange.
        let range = try series(["timeRange": "LAST_DAY", "startDate": ago(4 * 86_400), "endDate": ago(2 * 86_400)])
        #expect(totals(range, by: byFeature) == [f.feature: "2/1"], "\(range)")
        let hours = try series(["startDate": ago(6 * 3600)])
        #expect(totals(hours, by: byFeature) == [f.feature: "10/2", second: "7/1"], "\(hours)")

        #expect(totals(try series(["groupBy": ["model"]]), by: byTags) == ["model=a": "8/2", "model=b": "11/2"])
        #expect(totals(try series(["groupBy": ["featureId"]]), by: byTags) == ["featureId=\(f.feature)": "12/3", "featureId=\(second)": "7/1"])
        #expect(totals(try series(["groupBy": ["featureId", "model"]]), by: byTags) == [
            "featureId=\(f.feature),model=a": "8/2", "featureId=\(f.feature),model=b": "4/1", "featureId=\(second),model=b": "7/1",
        ])
        #expect(totals(try series(["groupBy": ["region"], "timeRange": "LAST_DAY"]), by: byTags) == ["region=eu": "6/1", "region=": "11/2"])
        // Three keys (the most), and LAST_YEAR.
        #expect(totals(try series(["groupBy": ["featureId", "model", "region"], "timeRange": "LAST_YEAR"]), by: byTags) == [
            "featureId=\(f.feature),model=a,region=": "2/1", "featureId=\(f.feature),model=a,region=eu": "6/1",
            "featureId=\(f.feature),model=b,region=": "4/1", "featureId=\(second),model=b,region=": "7/1",
        ])
        // Points are the day buckets of the deductions, with their credits.
        let days = try series(["timeRange": "LAST_WEEK", "groupBy": ["model"]]).first { byTags($0) == "model=a" }?["points"]?.arrayValue ?? []
        #expect(days.map { $0["value"]?.stringValue ?? "?" } == ["2", "6"], "model a, 3 days apart, in time order: \(days)")
        #expect(days.reduce(0) { $0 + ($1["eventCount"]?.intValue ?? 0) } == 2)
        try daemon.expectCreditRefusal(code: 1001) {
            _ = try daemon.call("getCreditUsage", ["customerId": .string(uniqueID("nobody"))])
        }
        try daemon.expectCreditRefusal(code: 1001) {
            _ = try daemon.call("getCreditBalance", ["customerId": .string(uniqueID("nobody"))])
        }
        try daemon.expectCreditRefusal(code: 1003) {
            _ = try daemon.call("getCreditBalance", ["customerId": .string(f.customer), "currencyId": .string(uniqueID("nocur"))])
        }
        try daemon.expectCreditRefusal(code: -32602, field: "groupBy") {
            _ = try daemon.call("getCreditUsage", ["customerId": .string(f.customer), "groupBy": ["a", "b", "c", "d"]])
        }
        try daemon.expectCreditRefusal(code: -32602, field: "timeRange") {
            _ = try daemon.call("getCreditUsage", ["customerId": .string(f.customer), "timeRange": "LAST_CENTURY"])
        }
        try daemon.expectCreditRefusal(code: -32602, field: "groupBy[1]") {
            _ = try daemon.call("getCreditUsage", ["customerId": .string(f.customer), "groupBy": ["model", "model"]])
        }
        // A startDate after now without an endDate is an empty range, refused as with an endDate.
        try daemon.expectCreditRefusal(code: -32602, field: "startDate") {
            _ = try daemon.call("getCreditUsage", ["customerId": .string(f.customer), "startDate": .string(clock.at(3600))])
        }

        let keys = try daemon.call("listDimensionKeys", ["customerId": .string(f.customer)])["keys"]?.arrayValue ?? []
        #expect(Set(keys) == ["model", "region"], "\(keys)")
        #expect(try daemon.call("listDimensionKeys", ["customerId": .string(f.customer), "search": "MOD"])["keys"] == ["model"])
        #expect(try daemon.call("listDimensionKeys", ["customerId": .string(f.customer), "search": "zzz"])["keys"] == [])
    }

    @Test("getCreditUsage startDate/endDate is exact to the hour: whole days from day cells, the ragged ends from hour cells")
    func creditUsageExactRange() throws {
        let f = try CreditFixture(daemon)
        try f.grant("100")
        let day = String(CreditClock.start.prefix(8))  // "2031-01-"; the clock is past the 10th
        _ = try f.use("1", ["timestamp": .string(day + "10T10:10:00Z")])
        _ = try f.use("2", ["timestamp": .string(day + "10T10:50:00Z")])
        _ = try f.use("3", ["timestamp": .string(day + "05T05:00:00Z")])
        _ = try f.use("4", ["timestamp": .string(day + "05T23:00:00Z")])
        func usage(_ start: String, _ end: String) throws -> (total: String, range: String) {
            let reply = try daemon.call("getCreditUsage", ["customerId": .string(f.customer), "currencyId": .string(f.currency), "startDate": .string(day + start), "endDate": .string(day + end)])
            let totals = (reply["series"]?.arrayValue ?? []).compactMap { $0["totalCredits"]?.stringValue.flatMap { try? Amount(parsing: $0) } }
            let range = "\(reply["startDate"]?.stringValue ?? "?") \(reply["endDate"]?.stringValue ?? "?")"
            return (totals.reduce(.zero, +).description, range)
        }
        // Within one hour: the hour holds both events, and the result says the range it read.
        let hour = try usage("10T10:30:00Z", "10T10:45:00Z")
        #expect(hour.total == "3" && hour.range == "\(day)10T10:00:00.000Z \(day)10T11:00:00.000Z", "\(hour)")
        #expect(try usage("10T11:00:00Z", "10T12:00:00Z").total == "0")
        #expect(try usage("10T10:00:00Z", "10T10:30:00Z").total == "3")  // widened to 11:00
        #expect(try usage("10T09:00:00Z", "10T10:00:00Z").total == "0")
        // Days: before, whole days were summed (the 05:00 usage counted from a range starting 10:00).
        #expect(try usage("05T10:00:00Z", "08T00:00:00Z").total == "4")
        #expect(try usage("05T00:00:00Z", "10T10:00:00Z").total == "7")
        #expect(try usage("05T06:00:00Z", "10T11:00:00Z").total == "7")
        #expect(try usage("04T12:00:00Z", "11T00:00:00Z").total == "10")
        // A whole day at HOUR granularity: the points are that day's hours, read from hour cells.
        let wholeDay = try daemon.call("getCreditUsage", ["customerId": .string(f.customer), "currencyId": .string(f.currency), "startDate": .string(day + "05T00:00:00Z"), "endDate": .string(day + "06T00:00:00Z")])
        let points = wholeDay["series"]?.arrayValue?.first?["points"]?.arrayValue ?? []
        #expect(wholeDay["granularity"] == "HOUR" && points.map { $0["timestamp"] } == [.string(day + "05T05:00:00.000Z"), .string(day + "05T23:00:00.000Z")]
                && points.map { $0["value"] } == ["3", "4"], "\(wholeDay.jsonText)")
    }

    @Test("getCreditBalance asOf a sequence and a timestamp equals what the daemon answered then")
    func balanceAsOf() throws {
        let f = try CreditFixture(daemon)
        let r = "pool-r"
        var steps: [(sequence: Int, time: String, global: String, resource: String)] = []
        func record() throws {
            steps.append((try daemon.lastSequence(), clock.nowText, try f.balance(), try f.balance(resource: r)))
            try clock.advance(60)
        }
        let g = try f.grantId("10")
        try record()
        try f.grant("5", "PROMOTIONAL", ["expireAt": .string(clock.at(150)), "resourceId": .string(r)])
        try record()
        _ = try f.use("3")
        try record()
        _ = try f.use("2", ["resourceId": .string(r)])
        try record()  // the resource grant expires during this step's advance
        _ = try f.use("5")
        try record()
        _ = try daemon.call("voidCreditGrant", ["grantId": .string(g)])
        try record()
        _ = try f.use("3")  // overdraft 3
        try record()
        try f.grant("4")  // repays it
        try record()
        #expect(steps.map(\.global) == ["10", "10", "7", "7", "2", "0", "-3", "1"], "\(steps)")
        #expect(steps.map(\.resource) == ["0", "5", "5", "3", "0", "0", "0", "0"], "\(steps)")

        for step in steps {
            #expect(try f.balance(asOf: ["sequence": .integer(step.sequence)]) == step.global, "asOf sequence \(step.sequence)")
            #expect(try f.balance(resource: r, asOf: ["sequence": .integer(step.sequence)]) == step.resource, "asOf sequence \(step.sequence), pool \(r)")
            #expect(try f.balance(asOf: .string(step.time)) == step.global, "asOf \(step.time)")
            #expect(try f.balance(resource: r, asOf: .string(step.time)) == step.resource, "asOf \(step.time), pool \(r)")
        }
        // The auditor's offline replay to the same point answers the same (one code path).
        func replayed(_ target: [String]) throws -> (global: String?, resource: String?) {
            let replay = try runProgram(Binaries.tallyd, ["replay", "--data-dir", daemon.dataDirectory, "--balances"] + target)
            #expect(replay.status == 0, "\(replay.stdout)\(replay.stderr)")
            func balance(_ pool: String) -> String? {
                let prefix = "balance \(f.customer) \(f.currency) \(pool): "
                return replay.stdout.split(separator: "\n").first { $0.hasPrefix(prefix) }?.dropFirst(prefix.count).split(separator: " ").first.map(String.init)
            }
            return (balance("global"), balance("pool \(r)"))
        }
        for step in [steps[2], steps[4], steps[6]] {
            let bySequence = try replayed(["--to-sequence", "\(step.sequence)"])
            #expect(bySequence.global == step.global && bySequence.resource == step.resource, "replay --to-sequence \(step.sequence): \(bySequence) vs \(step)")
            let byTime = try replayed(["--as-of", step.time])
            #expect(byTime.global == step.global && byTime.resource == step.resource, "replay --as-of \(step.time): \(byTime) vs \(step)")
        }
        // Offline as online: balances at a future instant are refused, not shown with the expiries due by then.
        let ahead = try runProgram(Binaries.tallyd, ["replay", "--data-dir", daemon.dataDirectory, "--balances", "--as-of", "2999-01-01T00:00:00Z"])
        #expect(ahead.status == 1 && ahead.stderr.contains("is in the future") && !ahead.stdout.contains("balance "), "\(ahead.stdout)\(ahead.stderr)")
        let answer = try daemon.call("getCreditBalance", ["customerId": .string(f.customer), "asOf": ["sequence": .integer(steps[2].sequence)]])
        #expect(answer.field("asOf.sequence") == .integer(steps[2].sequence), "\(answer.jsonText)")
        try daemon.expectCreditRefusal(code: -32602, field: "asOf.sequence") {
            _ = try daemon.call("getCreditBalance", ["customerId": .string(f.customer), "asOf": ["sequence": .integer(steps.last!.sequence + 1_000_000)]])
        }
        // A future instant is not how the ledger stood: refused, for balances and usage history alike.
        let future = JSONValue.string("2999-01-01T00:00:00Z")
        try daemon.expectCreditRefusal(code: -32602, field: "asOf") {
            _ = try daemon.call("getCreditBalance", ["customerId": .string(f.customer), "asOf": future])
        }
        try daemon.expectCreditRefusal(code: -32602, field: "asOf") {
            _ = try daemon.call("getUsageHistory", ["customerId": .string(f.customer), "featureId": .string(f.feature), "startDate": "2026-01-01T00:00:00Z", "asOf": future])
        }
        try expectCreditInvariants(daemon, f.customer)
    }

    // MARK: Auto-recharge

    func setAutoRecharge(_ f: CreditFixture, enabled: Bool = true, threshold: String = "10", target: String = "100", maxSpend: String? = nil) throws -> JSONValue {
        var params: JSONObject = [
            "customerId": .string(f.customer), "currencyId": .string(f.currency), "isEnabled": .bool(enabled),
            "thresholdValue": .string(threshold), "targetBalance": .string(target),
        ]
        if let maxSpend { params["maxSpendLimit"] = .string(maxSpend) }
        return try daemon.call("setAutoRecharge", params)
    }

    @Test("auto-recharge: a deduction below the threshold tops up to the target with an AUTO_RECHARGE grant in the same commit")
    func autoRecharge() throws {
        let f = try CreditFixture(daemon)
        let config = try setAutoRecharge(f)
        #expect(config["isEnabled"] == true && config["thresholdValue"] == "10" && config["targetBalance"] == "100", "\(config.jsonText)")
        try f.grant("20")
        let above = try f.use("5")
        #expect(above.field("credit.balance") == "15" && above.field("credit.autoRecharged") == nil, "\(above.jsonText)")
        let atThreshold = try f.use("5")
        #expect(atThreshold.field("credit.balance") == "10" && atThreshold.field("credit.autoRecharged") == nil, "not below 10: \(atThreshold.jsonText)")

        let below = try f.use("2.5")
        #expect(below.field("credit.autoRecharged") == "92.5" && below.field("credit.balance") == "100", "\(below.jsonText)")
        #expect(try f.balance() == "100")
        let tail = Array(try f.ledger().suffix(2))
        #expect(tail.map { $0["eventType"]?.stringValue ?? "" } == ["CREDITS_CONSUMED", "CREDITS_GRANTED"], "\(tail)")
        if tail.count == 2 {
            let consumedAt = tail[0]["sequence"]?.intValue ?? 0
            #expect(tail[1]["sequence"]?.intValue == consumedAt + 1, "consecutive sequences: \(tail)")
            #expect(tail[1]["timestamp"] == tail[0]["timestamp"] && tail[1]["amount"] == "92.5" && tail[1]["balanceAfter"] == "100")
            // The usage, its deduction and the top-up: one commit, three consecutive events.
            let measurement = below.field("measurement.id")?.stringValue ?? ""
            #expect(measurement == "m_\(consumedAt - 1)", "measurement \(measurement), deduction at \(consumedAt)")
            #expect(try daemon.lastSequence() == consumedAt + 1)
            let grant = try f.grant(withId: tail[1]["creditGrantId"]?.stringValue ?? "")
            #expect(grant?["grantType"] == "PAID" && grant?["sourceType"] == "AUTO_RECHARGE" && grant?["amount"] == "92.5" && grant?["status"] == "ACTIVE", "\(grant?.jsonText ?? "missing")")
        }
        // An overdraft below the threshold tops up to the target as well.
        let deep = try f.use("130")
        #expect(deep.field("credit.autoRecharged") == "130" && deep.field("credit.balance") == "100", "\(deep.jsonText)")
        #expect(try f.balance() == "100")
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("reportEvent through a SUM meter deducts in the same commit, grants drawn in order; auto-recharge tops up from raw events too, its grant expiring one grantExpirationPeriod later")
    func meteredDeduction() throws {
        let f = try CreditFixture(daemon)
        let (eventName, tokens) = try f.newTokenMeter()
        let promotional = try f.grantId("4", "PROMOTIONAL", ["priority": 10])  // drawn first
        let paid = try f.grantId("20")
        func send(_ count: Int) throws -> JSONValue {
            let events = (0..<count).map { i in usageEvent(f.customer, eventName, key: uniqueID("ev"), dimensions: ["tokens": "1500", "model": "m\(i % 2)"]) }
            return try daemon.call("reportEvent", ["events": .array(events)])
        }
        let before = try daemon.lastSequence()
        #expect(try send(5)["accepted"] == 5)
        // 5 × 1500 tokens × 0.001 = 7.5 credits: the promotional 4 first, then 3.5 of the paid grant.
        #expect(try f.balance() == "16.5")
        let types = try daemon.events(after: before).map { $0["type"]?.stringValue ?? "" }
        #expect(types == Array(repeating: ["EVENT_RECEIVED", "CREDITS_CONSUMED"], count: 5).flatMap { $0 }, "each event with its deduction: \(types)")
        let consumed = try f.ledger(["eventType": "CREDITS_CONSUMED"])
        #expect(consumed.map { $0["amount"]?.stringValue ?? "" } == Array(repeating: "-1.5", count: 5), "\(consumed)")
        #expect(consumed.allSatisfy { $0["featureId"]?.stringValue == tokens })
        #expect(consumed.map(CreditFixture.breakdown) == [
            ["\(promotional)=1.5"], ["\(promotional)=1.5"], ["\(promotional)=1", "\(paid)=0.5"], ["\(paid)=1.5"], ["\(paid)=1.5"],
        ], "\(consumed)")
        let history = try daemon.history(f.customer, tokens, start: "2000-01-01T00:00:00Z", ["granularity": "MONTH"])
        #expect(history["series"]?.arrayValue?.first?["total"] == "7500", "\(history.jsonText)")
        let usage = try daemon.call("getCreditUsage", ["customerId": .string(f.customer), "currencyId": .string(f.currency), "startDate": "2000-01-01T00:00:00Z", "groupBy": ["model"]])
        let byModel = Dictionary(uniqueKeysWithValues: (usage["series"]?.arrayValue ?? []).map { ($0["tags"]?.arrayValue?.first?["value"]?.stringValue ?? "?", $0["totalCredits"]?.stringValue ?? "?") })
        #expect(byModel == ["m0": "4.5", "m1": "3"], "\(usage.jsonText)")

        // Auto-recharge from raw events: of 3 more events, the second leaves 13.5, below 15, so it
        // tops up by 36.5 to 50 in its commit; the third brings that to 48.5.
        _ = try daemon.call("setAutoRecharge", [
            "customerId": .string(f.customer), "currencyId": .string(f.currency), "isEnabled": true,
            "thresholdValue": "15", "targetBalance": "50", "grantExpirationPeriod": "MONTH",
        ])
        #expect(try send(3)["accepted"] == 3)
        #expect(try f.balance() == "48.5")
        let recharges = try f.grants().filter { $0["sourceType"] == "AUTO_RECHARGE" }
        #expect(recharges.map { $0["amount"] } == ["36.5"], "\(recharges.map(\.jsonText))")
        if let recharge = recharges.first, let expireAt = recharge["expireAt"]?.stringValue.flatMap(CreditTime.parse), let grantedAt = recharge["effectiveAt"]?.stringValue.flatMap(CreditTime.parse) {
            let days = expireAt.timeIntervalSince(grantedAt) / 86_400
            #expect(days >= 28 && days <= 31, "grantExpirationPeriod MONTH: expires \(days) days after it was granted")
        } else {
            Issue.record("the recharge grant has no expireAt: \(recharges.map(\.jsonText))")
        }
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("raw events on a credit-backed SUM meter follow reportUsage's rules: a negative value or a cost needing 13 fractional digits rejects that event alone")
    func meteredDeductionRules() throws {
        let f = try CreditFixture(daemon)
        let (eventName, tokens) = try f.newTokenMeter()
        try f.grant("10")
        let values = ["1000", "-500", "0.0000000001", "2000"]
        let events = values.map { usageEvent(f.customer, eventName, key: uniqueID("ev"), dimensions: ["tokens": $0]) }
        let before = try daemon.lastSequence()
        let reply = try daemon.call("reportEvent", ["events": .array(events)])
        #expect(reply["accepted"] == 2, "\(reply.jsonText)")
        let rejected = reply["rejected"]?.arrayValue ?? []
        #expect(rejected.map { $0["index"] } == [1, 2], "\(reply.jsonText)")
        #expect(rejected.allSatisfy { $0["code"] == -32602 && ($0["message"]?.stringValue ?? "").contains("dimensions.tokens") }, "\(reply.jsonText)")
        // Only the good events and their deductions were appended: 3 credits of 10.
        #expect(try daemon.lastSequence() == before + 4)
        #expect(try f.balance() == "7")
        let history = try daemon.history(f.customer, tokens, start: "2000-01-01T00:00:00Z", ["granularity": "MONTH"])
        #expect(history["series"]?.arrayValue?.first?["total"] == "3000", "\(history.jsonText)")
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("amounts too large for the ledger are refused with -32602 and never crash it: a cost, an overdraft or a pool balance of 10^21 or more")
    func ledgerRange() throws {
        let f = try CreditFixture(daemon, amountPerUnit: "100000000000000000000")  // 10^20 credits per unit
        // A cost of 10^26 (fits Int128, beyond what one amount may be), then one of exactly 10^21.
        try daemon.expectCreditRefusal(code: -32602, field: "value") { _ = try f.use("1000000") }
        try daemon.expectCreditRefusal(code: -32602, field: "value") { _ = try f.use("10") }
        // Overdrafts of 4 × 10^20 are taken until the next would bring it to 10^21 or more.
        try f.use("4")
        try f.use("4")
        #expect(try f.balance() == "-800000000000000000000")
        try daemon.expectCreditRefusal(code: -32602, field: "value") { _ = try f.use("4") }
        try daemon.expectCreditRefusal(code: -32602, field: "value") { _ = try f.use("4", ["strict": true]) }
        #expect(try f.balance() == "-800000000000000000000")
        _ = try daemon.call("getStatus")  // still serving
        // Two credit-backed meters of one event charge one pool: their costs together are checked.
        let event = uniqueID("cr-evt")
        for _ in 0..<2 {
            _ = try daemon.call("defineFeature", ["featureId": .string(uniqueID("cr-twin")), "type": "METERED",
                                                  "meter": ["eventName": .string(event), "aggregation": "SUM", "field": "n"],
                                                  "creditCost": ["currencyId": .string(f.currency), "amountPerUnit": "100000000000000000000"]])
        }
        let twins = try daemon.call("reportEvent", ["events": [usageEvent(f.customer, event, key: uniqueID("ev"), dimensions: ["n": "1"])]])
        #expect(twins["accepted"] == 0 && twins["rejected"]?.arrayValue?.first?["code"] == -32602, "8 + 1 + 1 reaches 10: \(twins.jsonText)")
        #expect(try f.balance() == "-800000000000000000000")
        // A grant that would bring the pool's balance to 10^21 or more is refused too.
        let other = try CreditFixture(daemon)
        try other.grant("999999999999999999999")
        try daemon.expectCreditRefusal(code: -32602, field: "amount") { try other.grant("1") }
        try f.grant("999999999999999999999")  // repays the overdraft first: the balance stays below 10^21
        #expect(try f.balance() == "199999999999999999999")
        try daemon.expectCreditRefusal(code: -32602, field: "amount") { try f.grant("900000000000000000000") }
        try expectCreditInvariants(daemon, f.customer)
        try expectCreditInvariants(daemon, other.customer)
    }

    @Test("auto-recharge: maxSpendLimit counts the month a top-up is recorded in, also when the clock steps back across a month boundary")
    func autoRechargeClockBack() throws {
        let own = try LiveDaemon(extraArguments: ["--test-clock", "--test-clock-start", "2031-02-01T00:00:00Z"]).start()
        defer { _ = try? own.terminate() }
        let f = try CreditFixture(own)
        _ = try own.call("setAutoRecharge", [
            "customerId": .string(f.customer), "currencyId": .string(f.currency), "isEnabled": true,
            "thresholdValue": "10", "targetBalance": "100", "maxSpendLimit": "150",
        ])
        #expect(try f.use("50").field("credit.autoRecharged") == "150")
        // The wall clock steps back into January; events are still recorded in February (recordedAt
        // never goes back), so February's limit, already spent, holds.
        _ = try own.call("debug.setClock", ["now": "2031-01-31T23:00:00Z"])
        // (The February top-up is not effective yet at that clock: the balance is -1, a top-up would be 101.)
        let later = try f.use("1")
        #expect(later.field("credit.autoRecharged") == nil, "\(later.jsonText)")
        #expect(try f.grants().filter { $0["sourceType"] == "AUTO_RECHARGE" }.count == 1)
    }

    @Test("auto-recharge without maxSpendLimit: a month's top-ups stay below 10^21 in all (the ledger's range), then stop")
    func autoRechargeRange() throws {
        let f = try CreditFixture(daemon, amountPerUnit: "100000000000000000000")  // 10^20 per unit
        _ = try daemon.call("setAutoRecharge", [
            "customerId": .string(f.customer), "currencyId": .string(f.currency), "isEnabled": true,
            "thresholdValue": "450000000000000000000", "targetBalance": "500000000000000000000",
        ])
        // Top-ups of 6, then 1, 1, 1 × 10^20 (9 × 10^20 this month); a fifth would make 10^21.
        for _ in 0..<5 { try f.use("1") }
        let recharges = try f.grants().filter { $0["sourceType"] == "AUTO_RECHARGE" }.map { $0["amount"]?.stringValue ?? "" }
        #expect(recharges == ["600000000000000000000", "100000000000000000000", "100000000000000000000", "100000000000000000000"], "\(recharges)")
        #expect(try f.balance() == "400000000000000000000")
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("auto-recharge: maxSpendLimit stops top-ups beyond this calendar month's limit; a new month starts over")
    func autoRechargeLimit() throws {
        let f = try CreditFixture(daemon)
        _ = try setAutoRecharge(f, maxSpend: "186")
        try f.grant("20")
        #expect(try f.use("15").field("credit.autoRecharged") == "95")  // spent 95
        let atLimit = try f.use("91")  // 95 + 91 = 186: exactly the limit, allowed
        #expect(atLimit.field("credit.autoRecharged") == "91" && atLimit.field("credit.balance") == "100", "\(atLimit.jsonText)")
        let refused = try f.use("91")  // would make 277 > 186
        #expect(refused.field("credit.autoRecharged") == nil && refused.field("credit.balance") == "9", "\(refused.jsonText)")
        #expect(try f.grants().filter { $0["sourceType"] == "AUTO_RECHARGE" }.count == 2)
        #expect(try f.balance() == "9")

        try clock.set(CreditTime.nextMonth(after: clock.now).addingTimeInterval(60))
        let fresh = try f.use("1")
        #expect(fresh.field("credit.autoRecharged") == "92" && fresh.field("credit.balance") == "100", "a new month: \(fresh.jsonText)")
        try expectCreditInvariants(daemon, f.customer)
    }

    @Test("auto-recharge: isEnabled false stops top-ups and keeps the configuration")
    func autoRechargeDisabled() throws {
        let f = try CreditFixture(daemon)
        let none = try daemon.call("getAutoRecharge", ["customerId": .string(f.customer), "currencyId": .string(f.currency)])
        #expect(none["isEnabled"] == false, "\(none.jsonText)")
        _ = try setAutoRecharge(f, threshold: "10", target: "100", maxSpend: "500")
        _ = try setAutoRecharge(f, enabled: false, threshold: "10", target: "100", maxSpend: "500")
        let config = try daemon.call("getAutoRecharge", ["customerId": .string(f.customer), "currencyId": .string(f.currency)])
        #expect(config["isEnabled"] == false && config["thresholdValue"] == "10" && config["targetBalance"] == "100" && config["maxSpendLimit"] == "500", "\(config.jsonText)")
        try f.grant("20")
        let reply = try f.use("15")
        #expect(reply.field("credit.autoRecharged") == nil && reply.field("credit.balance") == "5", "\(reply.jsonText)")
        try daemon.expectCreditRefusal(code: -32602, field: "targetBalance") { _ = try setAutoRecharge(f, threshold: "10", target: "10") }
        try daemon.expectCreditRefusal(code: 1003, reason: "CURRENCY_NOT_FOUND") {
            _ = try daemon.call("setAutoRecharge", [
                "customerId": .string(f.customer), "currencyId": .string(uniqueID("nocur")), "isEnabled": true, "thresholdValue": 1, "targetBalance": 2,
            ])
        }
    }

    @Test("setAutoRecharge: null clears maxSpendLimit and grantExpirationPeriod, leaving them out keeps them; threshold and target cannot be null")
    func autoRechargeClearsOptionalFields() throws {
        let f = try CreditFixture(daemon)
        let base: JSONObject = ["customerId": .string(f.customer), "currencyId": .string(f.currency), "isEnabled": true]
        func set(_ extra: JSONObject) throws -> JSONValue {
            var params = base
            for (key, value) in extra { params[key] = value }
            return try daemon.call("setAutoRecharge", params)
        }
        _ = try set(["thresholdValue": "10", "targetBalance": "100", "maxSpendLimit": "50", "grantExpirationPeriod": "MONTH"])
        let kept = try set([:])
        #expect(kept["maxSpendLimit"] == "50" && kept["grantExpirationPeriod"] == "MONTH", "\(kept.jsonText)")
        let noLimit = try set(["maxSpendLimit": nil])
        #expect(noLimit["maxSpendLimit"] == nil && noLimit["grantExpirationPeriod"] == "MONTH" && noLimit["thresholdValue"] == "10", "\(noLimit.jsonText)")
        _ = try set(["grantExpirationPeriod": nil])
        let config = try daemon.call("getAutoRecharge", ["customerId": .string(f.customer), "currencyId": .string(f.currency)])
        #expect(config["maxSpendLimit"] == nil && config["grantExpirationPeriod"] == nil && config["targetBalance"] == "100", "\(config.jsonText)")
        // With the limit of 50 gone, a top-up of 95 (from 5 to the target of 100) goes through.
        try f.grant("20")
        let topUp = try f.use("15")
        #expect(topUp.field("credit.autoRecharged") != nil && topUp.field("credit.balance") == "100", "\(topUp.jsonText)")
        for field in ["thresholdValue", "targetBalance"] {
            try daemon.expectCreditRefusal(code: -32602, field: field) { _ = try set([field: nil]) }
        }
    }

    @Test("every credit query answers 1003 for an unknown currency and 1001 for an unknown customer")
    func unknownCurrencyOrCustomer() throws {
        let f = try CreditFixture(daemon)
        let nowhere = uniqueID("nocur"), nobody = uniqueID("nobody")
        for method in ["getCreditBalance", "getCreditGrants", "getCreditLedger", "getCreditUsage", "getAutoRecharge"] {
            let params: JSONObject = method == "getCreditUsage" ? ["timeRange": "LAST_DAY"] : [:]
            var unknownCurrency = params, unknownCustomer = params
            unknownCurrency["customerId"] = .string(f.customer)
            unknownCurrency["currencyId"] = .string(nowhere)
            unknownCustomer["customerId"] = .string(nobody)
            unknownCustomer["currencyId"] = .string(f.currency)
            expectRPCError(code: 1003, reason: "CURRENCY_NOT_FOUND") { _ = try daemon.call(method, unknownCurrency) }
            expectRPCError(code: 1001, reason: "CUSTOMER_NOT_FOUND") { _ = try daemon.call(method, unknownCustomer) }
        }
    }

    // MARK: Entitlements

    @Test("getEntitlement with requestedUsage costing more than the balance → INSUFFICIENT_CREDITS with creditBalance")
    func entitlement() throws {
        let f = try CreditFixture(daemon, amountPerUnit: "2")
        try f.grant("5")
        let denied = try daemon.call("getEntitlement", ["customerId": .string(f.customer), "featureId": .string(f.feature), "requestedUsage": 3])
        #expect(denied["hasAccess"] == false && denied["accessDeniedReason"] == "INSUFFICIENT_CREDITS", "\(denied.jsonText)")
        #expect(denied.field("creditBalance.balance") == "5" && denied.field("creditBalance.currencyId") == .string(f.currency), "\(denied.jsonText)")
        let allowed = try daemon.call("getEntitlement", ["customerId": .string(f.customer), "featureId": .string(f.feature), "requestedUsage": "2.5"])
        #expect(allowed["hasAccess"] == true && allowed["accessDeniedReason"] == nil, "\(allowed.jsonText)")
        #expect(allowed.field("creditBalance.balance") == "5", "\(allowed.jsonText)")
    }

    @Test("getEntitlement: a requestedUsage whose cost is not an amount (13 fractional digits, or 10^21 or more) is -32602, as strict reportUsage refuses it, not a lack of credits")
    func entitlementCostBeyondTwelveDigits() throws {
        let f = try CreditFixture(daemon, amountPerUnit: "0.5")
        try f.grant("100")
        for requested in ["0.000000000001", "1.000000000001"] {
            let error = expectRPCError(code: -32602) {
                _ = try daemon.call("getEntitlement", ["customerId": .string(f.customer), "featureId": .string(f.feature), "requestedUsage": .string(requested)])
            }
            #expect(error?.field == "requestedUsage", "\(error.map { "\($0)" } ?? "no error")")
            try daemon.expectCreditRefusal(code: -32602, field: "value") {
                _ = try daemon.call("reportUsage", ["customerId": .string(f.customer), "featureId": .string(f.feature), "value": .string(requested), "strict": true])
            }
        }
        let fits = try daemon.call("getEntitlement", ["customerId": .string(f.customer), "featureId": .string(f.feature), "requestedUsage": "0.000000000002"])
        #expect(fits["hasAccess"] == true && fits["requestedCost"] == "0.000000000001", "\(fits.jsonText)")
        // A cost of 10^21 or more is beyond any amount: refused the same way, not shown.
        let dear = try f.newFeature(amountPerUnit: "10")
        let tooDear = expectRPCError(code: -32602) {
            _ = try daemon.call("getEntitlement", ["customerId": .string(f.customer), "featureId": .string(dear), "requestedUsage": "100000000000000000000"])
        }
        #expect(tooDear?.field == "requestedUsage", "\(tooDear.map { "\($0)" } ?? "no error")")
        try daemon.expectCreditRefusal(code: -32602, field: "value") {
            _ = try daemon.call("reportUsage", ["customerId": .string(f.customer), "featureId": .string(dear), "value": "100000000000000000000", "strict": true])
        }
        let dearest = try daemon.call("getEntitlement", ["customerId": .string(f.customer), "featureId": .string(dear), "requestedUsage": "99999999999999999999.9999999999"])
        #expect(dearest["requestedCost"] == "999999999999999999999.999999999", "\(dearest.jsonText)")
        #expect(dearest["hasAccess"] == false && dearest["accessDeniedReason"] == "INSUFFICIENT_CREDITS", "\(dearest.jsonText)")
    }

    @Test("balance and entitlement reads of a pool with hundreds of grants run off the event loops: while a batch of them is read, getStatus on every other connection is answered")
    func largePoolReadsLeaveTheLoopsFree() throws {
        let f = try CreditFixture(daemon, prefix: "big")
        let setup = try daemon.connect()
        defer { setup.close() }
        let grants: [JSONValue] = (0..<400).map { .object(["jsonrpc": "2.0", "id": .integer($0), "method": "grantCredits", "params": .object(f.grantParams("1"))]) }
        try setup.sendLine(JSONValue.array(grants).serialized())
        let granted = try setup.readReply().arrayValue ?? []
        #expect(granted.count == 400 && granted.allSatisfy { $0["result"] != nil }, "the 400 grants")
        // Each read settles the pool's 400 open grants: the batch takes a while (far longer than a
        // getStatus), on one thread off the loops, not on the loop its connection is served by.
        let reads: [JSONValue] = (0..<300).map { i in
            let params: JSONObject = i % 2 == 0
                ? ["customerId": .string(f.customer), "currencyId": .string(f.currency)]
                : ["customerId": .string(f.customer), "featureId": .string(f.feature), "requestedUsage": "1"]
            return .object(["jsonrpc": "2.0", "id": .integer(i), "method": i % 2 == 0 ? "getCreditBalance" : "getEntitlement", "params": .object(params)])
        }
        let reader = try daemon.connect()
        defer { reader.close() }
        try reader.sendLine(JSONValue.array(reads).serialized())
        // Meanwhile, from another thread: connections are spread over the event loops in turn, so
        // of eight more, some are served by the reader's loop.
        let othersAnswered = Mutex<Result<ContinuousClock.Instant, any Error>?>(nil)
        let socket = daemon.socketPath
        let others = Thread {
            Thread.sleep(forTimeInterval: 0.2)  // the reader's batch is being read by now
            let result = Result<ContinuousClock.Instant, any Error> {
                for _ in 0..<8 {
                    let other = try TallyConnection(socketPath: socket)
                    defer { other.close() }
                    _ = try other.call("getStatus")
                }
                return .now
            }
            othersAnswered.withLock { $0 = result }
        }
        others.start()
        let replies = try #require(try reader.readReply().arrayValue)
        let batchAnswered = ContinuousClock.now
        while othersAnswered.withLock({ $0 }) == nil { Thread.sleep(forTimeInterval: 0.01) }
        let answered = try #require(othersAnswered.withLock { $0 }).get()
        #expect(answered < batchAnswered, "a getStatus waited for the batch of balance reads: they ran on an event loop")
        #expect(replies.count == 300 && replies.allSatisfy { $0["result"] != nil }, "every read answered")
        let balance = replies.first { $0["id"] == 0 }?.field("result.balances")?.arrayValue?.first?["balance"]
        #expect(balance == "400", "\(balance?.jsonText ?? "no balance")")
        let entitlement = replies.first { $0["id"] == 1 }?["result"]
        #expect(entitlement?["hasAccess"] == true && entitlement?.field("creditBalance.balance") == "400", "\(entitlement?.jsonText ?? "no entitlement")")
    }
}

// MARK: - Expiry across restarts and in real time (own daemons)

/// A second `tallyd serve` on a LiveDaemon's data directory with other arguments (LiveDaemon's
/// arguments are fixed when it is made).
final class TallydProcess {
    let process: ChildProcess
    let socketPath: String
    let logPath: String

    init(dataDirectory: String, socketPath: String, logPath: String, extraArguments: [String]) throws {
        self.socketPath = socketPath
        self.logPath = logPath
        let log = try openLogFile(logPath)
        defer { close(log) }
        process = try ChildProcess(Binaries.tallyd, ["serve", "--data-dir", dataDirectory, "--socket", socketPath, "--log-level", "debug"] + extraArguments, stdout: log, stderr: log)
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let status = process.poll() { throw LiveTestError("tallyd exited with \(status):\n\(self.log)") }
            if let connection = try? TallyConnection(socketPath: socketPath, timeoutSeconds: 10), (try? connection.call("getStatus")) != nil { return }
            usleep(20_000)
        }
        throw LiveTestError("tallyd did not answer within 20 s:\n\(self.log)")
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func call(_ method: String, _ params: JSONObject = [:]) throws -> JSONValue {
        let connection = try TallyConnection(socketPath: socketPath, timeoutSeconds: 30)
        defer { connection.close() }
        return try connection.call(method, params)
    }

    func terminate() -> Int32 {
        process.signal(SIGTERM)
        return process.waitUntilExit()
    }
}

@Suite("credit expiry across restarts and in real time")
struct CreditExpiryRestartTests {
    @Test("expiries missed while stopped are appended at start, in expireAt order")
    func missedWhileStopped() throws {
        let t0 = "2032-06-10T08:00:00.000Z"
        let daemon = try LiveDaemon(extraArguments: ["--test-clock", "--test-clock-start", t0]).start()
        let clock = CreditClock(daemon, start: t0)
        let f = try CreditFixture(daemon)
        let g1 = try f.grantId("1", "PAID", ["expireAt": .string(clock.at(3 * 3600))])
        let g2 = try f.grantId("2", "PAID", ["expireAt": .string(clock.at(1 * 3600))])
        let g3 = try f.grantId("3", "PROMOTIONAL", ["expireAt": .string(clock.at(2 * 3600))])
        _ = try f.grantId("4", "PAID")
        let g5 = try f.grantId("5", "PAID", ["expireAt": .string(clock.at(10 * 3600))])
        let consumedGrant = try f.grantId("6", "PAID", ["expireAt": .string(clock.at(1800)), "priority": 0])
        _ = try f.use("6")  // uses up consumedGrant: nothing left to expire
        #expect(try f.balance() == "15")
        let stoppedAt = try daemon.lastSequence()
        #expect(try daemon.terminate() == 0)

        let restarted = try TallydProcess(
            dataDirectory: daemon.dataDirectory, socketPath: daemon.socketPath, logPath: daemon.directory.path + "/restart.log",
            extraArguments: ["--test-clock", "--test-clock-start", clock.at(5 * 3600)])
        // Appended at start, before the first request is served.
        let expired = (try restarted.call("getCreditLedger", ["customerId": .string(f.customer), "eventType": "CREDITS_EXPIRED"])["entries"]?.arrayValue) ?? []
        #expect(expired.map { $0["creditGrantId"]?.stringValue ?? "" } == [g2, g3, g1], "in expireAt order: \(expired)")
        #expect(expired.map { $0["amount"]?.stringValue ?? "" } == ["-2", "-3", "-1"])
        #expect(expired.map { $0["balanceAfter"]?.stringValue ?? "" } == ["13", "10", "9"])
        #expect(expired.map { $0["sequence"]?.intValue ?? 0 } == [stoppedAt + 1, stoppedAt + 2, stoppedAt + 3])
        #expect(!expired.contains { $0["creditGrantId"]?.stringValue == g5 || $0["creditGrantId"]?.stringValue == consumedGrant })
        let balances = try restarted.call("getCreditBalance", ["customerId": .string(f.customer)])
        #expect(balances.field("balances")?.arrayValue?.first?["balance"] == "9", "\(balances.jsonText)")
        let report = try restarted.call("verifyLedger")
        #expect(report["hashChainValid"] == true && report["projectionsMatch"] == true, "\(report.jsonText)")
        #expect(restarted.terminate() == 0, "\(restarted.log)")
    }

    @Test("real clock: a balance read at T ≥ expireAt never counts the grant, whether or not the timer ran yet")
    func realTimeExpiry() throws {
        let daemon = try LiveDaemon().start()
        defer { _ = try? daemon.terminate() }
        let f = try CreditFixture(daemon)
        // Millisecond instant ~1.2 s ahead.
        let expireDate = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 * 1000 + 1200).rounded(.down) / 1000)
        try f.grant("10", "PAID", ["expireAt": .string(CreditTime.format(expireDate))])
        try f.grant("5", "PAID")
        let connection = try daemon.connect()
        defer { connection.close() }
        var readsAfter = 0, readsBefore = 0
        while Date() < expireDate.addingTimeInterval(0.7) {
            let sentAt = Date()
            let result = try connection.call("getCreditBalance", ["customerId": .string(f.customer), "currencyId": .string(f.currency)])
            let receivedAt = Date()
            let balance = result.field("balances")?.arrayValue?.first?["balance"]?.stringValue
            if sentAt >= expireDate {
                readsAfter += 1
                #expect(balance == "5", "read sent at \(CreditTime.format(sentAt)) ≥ expireAt counted the grant: \(balance ?? "?")")
            } else if receivedAt < expireDate {
                readsBefore += 1
                #expect(balance == "15", "read before expireAt: \(balance ?? "?")")
            }
            usleep(2000)
        }
        #expect(readsBefore > 10 && readsAfter > 10, "reads before \(readsBefore), after \(readsAfter)")
        // The timer appends the expiry within its interval.
        var expired: [JSONValue] = []
        for _ in 0..<100 where expired.isEmpty {
            expired = try f.ledger(["eventType": "CREDITS_EXPIRED"])
            if expired.isEmpty { usleep(20_000) }
        }
        #expect(expired.map { $0["amount"] } == ["-10"], "\(expired)")
        try expectCreditInvariants(daemon, f.customer)
    }
}
