public import TallyCore
#if canImport(Glibc)
import Glibc
#endif

/// provisionCustomer, getCustomer and listCustomers: params in, Stigg-shaped customers out.
public enum CustomerMethods {
    public static let listLimitDefault = 100
    public static let listLimitMax = 1000

    /// provisionCustomer `{customerId, name?, email?, metadata?, idempotencyKey?}`. A null name or
    /// email clears it; metadata replaces the whole map.
    public static func provision(_ object: JSONObject) throws(RPCFailure) -> ProvisionCustomer {
        var p = Params(object)
        let command = ProvisionCustomer(
            customerId: try p.requiredID("customerId"),
            name: try p.change("name"),
            email: try Self.email(p.change("email")),
            metadata: try p.optionalStringMap("metadata"),
            idempotencyKey: try p.optionalID("idempotencyKey")
        )
        try p.finish()
        return command
    }

    /// An email address as the seed Customer schema's `"format": "email"` means it (RFC 5321's
    /// dot-atom form): `local@domain`, the local part of letters, digits and ``!#$%&'*+/=?^_`{|}~-``
    /// in dot-separated atoms (at most 64 bytes), the domain of dot-separated labels of letters,
    /// digits and inner hyphens, or an address literal in brackets (an IPv4 address, `IPv6:` and an
    /// IPv6 address, or RFC 5321's general `tag:content`). Quoted local parts are refused.
    static func email(_ change: FieldChange<String>) throws(RPCFailure) -> FieldChange<String> {
        guard case .set(let address) = change else { return change }
        func refuse(_ why: String) -> RPCFailure { .invalidParams(field: "email", "must be an email address (\(why))") }
        guard let at = address.utf8.lastIndex(of: UInt8(ascii: "@")) else { throw refuse("no @") }
        let local = address.utf8[..<at], domain = address.utf8[address.utf8.index(after: at)...]
        let atomCharacters = Set("!#$%&'*+/=?^_`{|}~-".utf8)
        func isAtoms(_ part: Substring.UTF8View, _ allowed: (UInt8) -> Bool) -> Bool {
            let atoms = part.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
            return atoms.allSatisfy { !$0.isEmpty && $0.allSatisfy(allowed) }
        }
        guard !local.isEmpty, local.count <= 64 else { throw refuse("the part before @ must be 1 to 64 bytes") }
        guard isAtoms(Substring(local).utf8, { isAlphanumeric($0) || atomCharacters.contains($0) }) else {
            throw refuse("the part before @ may hold letters, digits and !#$%&'*+/=?^_`{|}~- between single dots")
        }
        guard !domain.isEmpty, domain.count <= 255 else { throw refuse("the domain must be 1 to 255 bytes") }
        if domain.first == UInt8(ascii: "["), domain.last == UInt8(ascii: "]") {
            guard let why = addressLiteralProblem(String(decoding: domain.dropFirst().dropLast(), as: UTF8.self)) else { return change }
            throw refuse(why)
        }
        let labels = Substring(domain).utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard labels.allSatisfy({ label in
            !label.isEmpty && label.count <= 63 && label.first != UInt8(ascii: "-") && label.last != UInt8(ascii: "-")
                && label.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") }
        }) else {
            throw refuse("the domain must be dot-separated labels of letters, digits and inner hyphens")
        }
        return change
    }

    /// An ASCII letter or digit.
    private static func isAlphanumeric(_ b: UInt8) -> Bool { (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) }

    /// Why the inside of `[…]` is no RFC 5321 address literal (nil when it is one): a dotted IPv4
    /// address (4 numbers 0–255, no leading zeros), `IPv6:` and an IPv6 address, or a general
    /// literal — a tag of letters, digits and inner hyphens (not `IPv6`), a colon, and 1 or more
    /// printable ASCII characters but `[`, `\`, `]`.
    static func addressLiteralProblem(_ literal: String) -> String? {
        var ipv4 = in_addr(), ipv6 = in6_addr()
        if literal.utf8.allSatisfy({ (0x30...0x39).contains($0) || $0 == UInt8(ascii: ".") }) {
            return inet_pton(AF_INET, literal, &ipv4) == 1 ? nil : "an address literal of digits and dots must be an IPv4 address like 192.0.2.1"
        }
        guard let colon = literal.firstIndex(of: ":") else { return "an address literal must be an IPv4 address, IPv6:address or tag:content" }
        let tag = literal[..<colon], content = literal[literal.index(after: colon)...]
        if tag.lowercased() == "ipv6" {
            return inet_pton(AF_INET6, String(content), &ipv6) == 1 ? nil : "\"\(content)\" after IPv6: is not an IPv6 address"
        }
        guard let first = tag.utf8.first, let last = tag.utf8.last, isAlphanumeric(first), isAlphanumeric(last),
              tag.utf8.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "-") })
        else { return "an address literal's tag (before the colon) must be letters, digits and inner hyphens" }
        guard !content.isEmpty, content.utf8.allSatisfy({ (33...126).contains($0) && $0 != UInt8(ascii: "[") && $0 != UInt8(ascii: "\\") && $0 != UInt8(ascii: "]") }) else {
            return "an address literal's content (after the tag's colon) must be printable ASCII but [, \\ and ]"
        }
        return nil
    }

    /// getCustomer `{customerId}`.
    public static func customerID(_ object: JSONObject) throws(RPCFailure) -> String {
        var p = Params(object)
        let id = try p.requiredID("customerId")
        try p.finish()
        return id
    }

    /// listCustomers `{after?, limit?}`: `after` is the `next` cursor of the previous page.
    public static func listParams(_ object: JSONObject) throws(RPCFailure) -> (after: String?, limit: Int) {
        var p = Params(object)
        let after = try p.optionalID("after")
        let limit = try p.optionalInt("limit", in: 1...listLimitMax) ?? listLimitDefault
        try p.finish()
        return (after, limit)
    }

    /// The seed "Stigg Customer" shape: `id, name?, email?, createdAt, updatedAt, subscriptions[]`,
    /// plus `metadata`.
    public static func json(_ c: Customer, subscriptions: [JSONValue] = []) -> JSONValue {
        var o = JSONObject()
        o["id"] = .string(c.id)
        if let name = c.name { o["name"] = .string(name) }
        if let email = c.email { o["email"] = .string(email) }
        o["metadata"] = stringMap(c.metadata)
        o["createdAt"] = .string(c.createdAt.rfc3339)
        o["updatedAt"] = .string(c.updatedAt.rfc3339)
        o["subscriptions"] = .array(subscriptions)
        return .object(o)
    }

    public static func listJSON(_ customers: [JSONValue], lastID: String?, limit: Int) -> JSONValue {
        let next: JSONValue = customers.count == limit ? lastID.map { .string($0) } ?? .null : .null
        return .object(JSONObject([("customers", .array(customers)), ("next", next)]))
    }

    static func stringMap(_ pairs: [(String, String)]) -> JSONValue {
        .object(JSONObject(pairs.map { ($0.0, JSONValue.string($0.1)) }))
    }
}

/// The `data` of events in readLedger: the payload as JSON, field names as in the params.
public enum EventJSON {
    public static func data(_ payload: EventPayload) -> JSONValue {
        var o = JSONObject()
        switch payload {
        case .customerProvisioned(let e):
            o["customerId"] = .string(e.customerId)
            if let name = e.name { o["name"] = .string(name) }
            if let email = e.email { o["email"] = .string(email) }
            if !e.metadata.isEmpty { o["metadata"] = CustomerMethods.stringMap(e.metadata) }
            if let key = e.idempotencyKey { o["idempotencyKey"] = .string(key) }
        case .customerUpdated(let e):
            o["customerId"] = .string(e.customerId)
            if let name = change(e.name) { o["name"] = name }
            if let email = change(e.email) { o["email"] = email }
            if let metadata = e.metadata { o["metadata"] = CustomerMethods.stringMap(metadata) }
            if let key = e.idempotencyKey { o["idempotencyKey"] = .string(key) }
        case .currencyDefined(let e): return UsageMethods.json(e.currency)
        case .featureDefined(let e): return UsageMethods.json(e.feature)
        case .planDefined(let e): return UsageMethods.json(e.plan)
        case .subscriptionProvisioned(let e): return UsageMethods.json(e.subscription, planName: nil)
        case .subscriptionCanceled(let e):
            o["subscriptionId"] = .string(e.subscriptionId)
            o["customerId"] = .string(e.customerId)
        case .usageReported(let e):
            o["customerId"] = .string(e.customerId)
            o["featureId"] = .string(e.featureId)
            if let resource = e.resourceId { o["resourceId"] = .string(resource) }
            o["updateBehavior"] = .string(e.updateBehavior.rawValue)
            o["value"] = .string(e.value.description)
            o["delta"] = .string(e.delta.description)
            o["timestamp"] = .string(e.timestamp.rfc3339)
            if !e.dimensions.isEmpty { o["dimensions"] = UsageMethods.stringMap(e.dimensions.pairs) }
            if let key = e.idempotencyKey { o["idempotencyKey"] = .string(key) }
        case .eventReceived(let e):
            o["customerId"] = .string(e.customerId)
            o["eventName"] = .string(e.eventName)
            o["idempotencyKey"] = .string(e.idempotencyKey)
            if let resource = e.resourceId { o["resourceId"] = .string(resource) }
            o["timestamp"] = .string(e.timestamp.rfc3339)
            if !e.dimensions.isEmpty { o["dimensions"] = UsageMethods.stringMap(e.dimensions.pairs) }
        case .usageReset(let e):
            o["customerId"] = .string(e.customerId)
            o["featureId"] = .string(e.featureId)
            if let resource = e.resourceId { o["resourceId"] = .string(resource) }
            o["timestamp"] = .string(e.timestamp.rfc3339)
        case .promotionalEntitlementGranted(let e): return UsageMethods.json(e.entitlement)
        case .promotionalEntitlementRevoked(let e):
            o["customerId"] = .string(e.customerId)
            o["featureId"] = .string(e.featureId)
        case .creditsGranted(let e):
            // As granted: consumed 0, remaining net of any overdraft repaid.
            guard case .object(var g) = CreditMethods.json(e.grant, now: e.grant.createdAt) else { return .null }
            g["status"] = nil
            if let key = e.idempotencyKey { g["idempotencyKey"] = .string(key) }
            return .object(g)
        case .creditsConsumed(let e):
            o["customerId"] = .string(e.customerId)
            o["currencyId"] = .string(e.currencyId)
            if let resource = e.resourceId { o["resourceId"] = .string(resource) }
            o["featureId"] = .string(e.featureId)
            o["amount"] = .string(e.amount.description)
            o["breakdown"] = .array(e.breakdown.map { .object(["creditGrantId": .string($0.0), "amount": .string($0.1.description)]) })
            if e.uncovered.isPositive { o["uncovered"] = .string(e.uncovered.description) }
            if e.overdraftRepaid.isPositive { o["overdraftRepaid"] = .string(e.overdraftRepaid.description) }
            o["timestamp"] = .string(e.timestamp.rfc3339)
            if !e.dimensions.isEmpty { o["dimensions"] = UsageMethods.stringMap(e.dimensions.pairs) }
            if let key = e.idempotencyKey { o["idempotencyKey"] = .string(key) }
        case .creditsExpired(let e):
            removal(e.removal, into: &o)
        case .creditsVoided(let e):
            removal(e.removal, into: &o)
        case .creditsActivated(let e):
            o["creditGrantId"] = .string(e.grantId)
            o["customerId"] = .string(e.customerId)
            o["currencyId"] = .string(e.currencyId)
            if let resource = e.resourceId { o["resourceId"] = .string(resource) }
            o["overdraftRepaid"] = .string(e.overdraftRepaid.description)
        case .autoRechargeConfigured(let e):
            return CreditMethods.json(e.config)
        }
        return .object(o)
    }

    private static func removal(_ r: CreditsRemoved, into o: inout JSONObject) {
        o["creditGrantId"] = .string(r.grantId)
        o["customerId"] = .string(r.customerId)
        o["currencyId"] = .string(r.currencyId)
        if let resource = r.resourceId { o["resourceId"] = .string(resource) }
        o["amount"] = .string(r.amount.description)
        if let key = r.idempotencyKey { o["idempotencyKey"] = .string(key) }
    }

    private static func change(_ c: FieldChange<String>) -> JSONValue? {
        switch c {
        case .unchanged: nil
        case .set(let s): .string(s)
        case .cleared: .null
        }
    }
}
