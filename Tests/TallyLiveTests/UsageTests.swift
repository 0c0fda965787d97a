import Foundation
import RocksDB
import TallyClient
import TallyEngine
import TallyProtocol
import TallyStorage
import Testing

/// Catalog, usage and entitlements through the real daemon (PROTOCOL.md "Catalog and customers",
/// "Usage", "Entitlements"). Every test uses its own customer, feature, plan and event names.
///
/// Serialized: tests compare `lastSequence` before and after a rejected command.
@Suite("usage through the real daemon", .serialized, .sharedDaemon)
struct UsageTests {
    let daemon: LiveDaemon

    init() throws { daemon = try SharedDaemon.get() }

    @Test("getCustomer of a customer with hundreds of subscriptions (read off the loops, later lines held until the client reads): 200 pipelined reads, read only after all were sent, are each answered in order with every subscription")
    func customerWithManySubscriptionsPipelined() throws {
        let feature = uniqueID("subsf"), plan = uniqueID("subsp"), customer = uniqueID("subsc")
        _ = try daemon.call("defineFeature", ["featureId": .string(feature), "type": "BOOLEAN"])
        _ = try daemon.call("definePlan", ["planId": .string(plan), "displayName": "P", "entitlements": [["featureId": .string(feature)]]])
        _ = try daemon.call("provisionCustomer", ["customerId": .string(customer)])
        let connection = try daemon.connect()
        defer { connection.close() }
        let subscriptions: [JSONValue] = (0..<300).map { i in
            .object(["jsonrpc": "2.0", "id": .integer(i), "method": "provisionSubscription",
                     "params": ["customerId": .string(customer), "planId": .string(plan), "subscriptionId": .string("\(customer)-s\(i)"), "status": "CANCELED"]])
        }
        try connection.sendLine(JSONValue.array(subscriptions).serialized())
        let provisioned = try connection.readReply().arrayValue ?? []
        #expect(provisioned.count == 300 && provisioned.allSatisfy { $0["result"] != nil }, "the 300 subscriptions")
        // ~60 KB a reply: far more than the daemon holds for a client that does not read
        // (pendingReplyBytesMax), so most of these lines wait, unread, until the replies are read.
        for i in 0..<200 {
            try connection.sendLine(JSONValue.object(["jsonrpc": "2.0", "id": .integer(i), "method": "getCustomer", "params": ["customerId": .string(customer)]]).serialized())
        }
        for i in 0..<200 {
            let reply = try connection.readReply()
            #expect(reply["id"] == .integer(i) && reply.field("result.subscriptions")?.arrayValue?.count == 300, "reply \(i): \(String(reply.jsonText.prefix(200)))")
        }
    }

    // MARK: - Catalog

    @Test("defineCurrency/defineFeature/definePlan: version 1 then 2, two *_DEFINED events, never edited in place")
    func catalogVersions() throws {
        let currency = uniqueID("cur"), feature = uniqueID("feat"), plan = uniqueID("plan")
        let before = try daemon.lastSequence()

        let c1 = try daemon.call("defineCurrency", ["currencyId": .string(currency), "displayName": "Tokens"])
        let c2 = try daemon.call("defineCurrency", ["currencyId": .string(currency), "displayName": "Tokens v2", "symbol": "T"])
        #expect(c1["version"] == 1 && c2["version"] == 2, "\(c1.jsonText) / \(c2.jsonText)")
        #expect(c2["displayName"] == "Tokens v2" && c2["symbol"] == "T")

        let f1 = try daemon.call("defineFeature", ["featureId": .string(feature), "type": "METERED", "unit": "call"])
        let f2 = try daemon.call("defineFeature", ["featureId": .string(feature), "type": "METERED", "unit": "request",
                                                   "creditCost": ["currencyId": .string(currency), "amountPerUnit": "0.5"]])
        #expect(f1["version"] == 1 && f2["version"] == 2, "\(f1.jsonText) / \(f2.jsonText)")
        #expect(f2.field("creditCost.amountPerUnit") == "0.5")

        let entitlement: JSONValue = ["featureId": .string(feature), "usageLimit": 10, "resetPeriod": "MONTH"]
        let p1 = try daemon.call("definePlan", ["planId": .string(plan), "displayName": "Basic", "entitlements": [entitlement]])
        let p2 = try daemon.call("definePlan", ["planId": .string(plan), "displayName": "Basic+", "entitlements": [["featureId": .string(feature), "usageLimit": "20"]]])
        #expect(p1["version"] == 1 && p2["version"] == 2, "\(p1.jsonText) / \(p2.jsonText)")
        #expect(p2["entitlements"]?.arrayValue?.first?["usageLimit"] == "20")

        // Six events, each definition kept: the first versions are still in the log as they were.
        let events = try daemon.events(after: before)
        #expect(events.map { $0["type"]?.stringValue ?? "" } == [
            "CURRENCY_DEFINED", "CURRENCY_DEFINED", "FEATURE_DEFINED", "FEATURE_DEFINED", "PLAN_DEFINED", "PLAN_DEFINED",
        ], "\(events.map { $0["type"]?.jsonText ?? "?" })")
        #expect(events.map { $0.field("data.version") } == [1, 2, 1, 2, 1, 2])
        if events.count == 6 {
            #expect(events[0].field("data.displayName") == "Tokens" && events[1].field("data.displayName") == "Tokens v2")
            #expect(events[2].field("data.unit") == "call" && events[3].field("data.unit") == "request")
            #expect(events[4].field("data.displayName") == "Basic" && events[5].field("data.displayName") == "Basic+")
        }
    }

    @Test("entitlements combine the plans of ACTIVE and TRIAL subscriptions and an active promotion (unlimited wins, then the highest limit); PAUSED and CANCELED ones grant nothing")
    func combinedPlans() throws {
        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature()
        func limit(_ value: Int) -> JSONValue { ["featureId": .string(feature), "usageLimit": .integer(value), "resetPeriod": "MONTH"] }
        let unlimited: JSONValue = ["featureId": .string(feature), "hasUnlimitedUsage": true]
        #expect(try daemon.entitlement(customer, feature)["accessDeniedReason"] == "NO_FEATURE_ENTITLEMENT")
        // Without an entitlement there is no reset period: currentUsage is all the usage, as reportUsage answers.
        _ = try daemon.call("reportUsage", ["customerId": .string(customer), "featureId": .string(feature), "value": 4, "timestamp": "2020-01-01T00:00:00Z"])
        let none = try daemon.entitlement(customer, feature)
        #expect(none["accessDeniedReason"] == "NO_FEATURE_ENTITLEMENT" && none["currentUsage"] == "4", "\(none.jsonText)")
        try daemon.subscribe(customer, entitlements: [limit(10)])
        let (trialPlan, _) = try daemon.subscribe(customer, entitlements: [limit(25)], status: "TRIAL")
        try daemon.subscribe(customer, entitlements: [unlimited], status: "PAUSED")
        try daemon.subscribe(customer, entitlements: [unlimited], status: "CANCELED")
        let combined = try daemon.entitlement(customer, feature, requested: 25)
        #expect(combined["hasAccess"] == true && combined["isUnlimited"] == false && combined["usageLimit"] == "25", "\(combined.jsonText)")
        #expect(try daemon.entitlement(customer, feature, requested: 26)["accessDeniedReason"] == "USAGE_LIMIT_EXCEEDED")
        let statuses = try daemon.call("getCustomer", ["customerId": .string(customer)])["subscriptions"]?.arrayValue?.compactMap { $0["status"]?.stringValue }
        #expect(statuses?.sorted() == ["ACTIVE", "CANCELED", "PAUSED", "TRIAL"], "\(statuses ?? [])")
        let subscriptions = try daemon.call("getCustomer", ["customerId": .string(customer)])["subscriptions"]?.arrayValue ?? []
        for subscription in subscriptions {
            // Provisioned as CANCELED: canceled then, so it says when.
            #expect((subscription["canceledAt"] != nil) == (subscription["status"] == "CANCELED"), "\(subscription.jsonText)")
        }

        let (_, active) = try daemon.subscribe(customer, entitlements: [unlimited])
        #expect(try daemon.entitlement(customer, feature, requested: 1_000_000)["isUnlimited"] == true)
        _ = try daemon.call("cancelSubscription", ["subscriptionId": .string(active)])
        #expect(try daemon.entitlement(customer, feature)["usageLimit"] == "25", "back to the highest limit once the unlimited plan is canceled")

        // A promotion competes with the plans like one more plan: the more generous wins.
        func promote(_ params: JSONObject) throws {
            var p: JSONObject = ["customerId": .string(customer), "featureId": .string(feature)]
            for (k, v) in params { p[k] = v }
            _ = try daemon.call("grantPromotionalEntitlement", p)
        }
        try promote(["usageLimit": 5])
        var e = try daemon.entitlement(customer, feature, requested: 25)
        #expect(e["hasAccess"] == true && e["usageLimit"] == "25" && e["resetPeriod"] == "MONTH" && e["source"] == .string("PLAN:\(trialPlan)"),
                "a less generous promotion does not lower the plan's limit: \(e.jsonText)")
        try promote(["usageLimit": 40, "resetPeriod": "DAY"])
        e = try daemon.entitlement(customer, feature, requested: 40)
        #expect(e["hasAccess"] == true && e["usageLimit"] == "40" && e["resetPeriod"] == "DAY" && e["source"] == "PROMOTIONAL",
                "a more generous promotion wins, with its reset period: \(e.jsonText)")
        try promote(["usageLimit": 30])
        e = try daemon.entitlement(customer, feature)
        #expect(e["usageLimit"] == "30" && e["resetPeriod"] == nil && e["source"] == "PROMOTIONAL", "a newer promotion replaces the older: \(e.jsonText)")
        // A promotion that has already ended is refused, and the current one stands (ending one
        // in time: `promotionEndDate`).
        try daemon.expectCreditRefusal(code: -32602, field: "endDate") {
            try promote(["hasUnlimitedUsage": true, "endDate": "2026-01-01T00:00:00Z"])
        }
        e = try daemon.entitlement(customer, feature)
        #expect(e["usageLimit"] == "30" && e["source"] == "PROMOTIONAL", "a refused promotion replaces nothing: \(e.jsonText)")
        _ = try daemon.call("revokePromotionalEntitlement", ["customerId": .string(customer), "featureId": .string(feature)])
        e = try daemon.entitlement(customer, feature)
        #expect(e["usageLimit"] == "25" && e["source"] == .string("PLAN:\(trialPlan)"), "a revoked promotion grants nothing: \(e.jsonText)")
        try promote(["hasUnlimitedUsage": true])
        e = try daemon.entitlement(customer, feature, requested: 1_000_000)
        #expect(e["isUnlimited"] == true && e["hasAccess"] == true && e["source"] == "PROMOTIONAL", "\(e.jsonText)")
        _ = try daemon.call("revokePromotionalEntitlement", ["customerId": .string(customer), "featureId": .string(feature)])
        #expect(try daemon.entitlement(customer, feature)["usageLimit"] == "25")
    }

    @Test("entitlements follow every change of a subscription (cancel, pause, reactivate, a move to another plan) through the per-customer index of entitling plans; equal limits answer from the lowest plan id, whatever the order of provisioning; a rebuild gives the same index")
    func entitlingIndexFollowsChanges() throws {
        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature()
        let base = uniqueID("ent"), low = "\(base)-a", high = "\(base)-b", tie = "\(base)-c"
        for (plan, limit) in [(low, 10), (high, 20), (tie, 10)] {
            _ = try daemon.call("definePlan", ["planId": .string(plan), "displayName": "P", "entitlements": [["featureId": .string(feature), "usageLimit": .integer(limit)]]])
        }
        func provision(_ sub: String, _ plan: String, _ status: String = "ACTIVE") throws {
            _ = try daemon.call("provisionSubscription", ["customerId": .string(customer), "planId": .string(plan), "subscriptionId": .string("\(base)-\(sub)"), "status": .string(status)])
        }
        func cancel(_ sub: String) throws { _ = try daemon.call("cancelSubscription", ["subscriptionId": .string("\(base)-\(sub)")]) }
        func expect(_ limit: String?, _ source: String?, _ why: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let e = try daemon.entitlement(customer, feature)
            if let limit {
                #expect(e["usageLimit"] == .string(limit) && e["source"] == source.map { .string("PLAN:\($0)") }, "\(why): \(e.jsonText)", sourceLocation: sourceLocation)
            } else {
                #expect(e["accessDeniedReason"] == "NO_FEATURE_ENTITLEMENT", "\(why): \(e.jsonText)", sourceLocation: sourceLocation)
            }
            let listed = try daemon.call("getEntitlements", ["customerId": .string(customer)])["entitlements"]?.arrayValue?.compactMap { $0["featureId"]?.stringValue }
            #expect(listed == (limit == nil ? [] : [feature]), "\(why): getEntitlements lists \(listed ?? [])", sourceLocation: sourceLocation)
        }
        for sub in ["s1", "s2", "s3"] { try provision(sub, high) }
        try provision("s4", tie)
        try provision("s5", low)
        try expect("20", high, "three subscriptions to the highest plan")
        try cancel("s1")
        try provision("s3", high, "PAUSED")
        try expect("20", high, "one of the three still grants")
        try provision("s2", tie)
        try expect("10", low, "the last one moved to another plan: of two equal limits, the lower plan id answers (it was provisioned later)")
        try provision("s3", high)
        try expect("20", high, "a paused subscription reactivated grants again")
        _ = try daemon.call("reportUsage", ["customerId": .string(customer), "featureId": .string(feature), "value": 20])
        #expect(try daemon.entitlement(customer, feature, requested: 1)["accessDeniedReason"] == "USAGE_LIMIT_EXCEEDED")
        var verified = try daemon.call("verifyLedger")
        #expect(verified["projectionsMatch"] == true, "\(verified.jsonText.prefix(600))")
        for sub in ["s2", "s3", "s4", "s5"] { try cancel(sub) }
        try expect(nil, nil, "every subscription canceled")
        try provision("s6", low, "TRIAL")
        try expect("10", low, "a trial grants")
        verified = try daemon.call("verifyLedger")
        #expect(verified["projectionsMatch"] == true, "\(verified.jsonText.prefix(600))")
    }

    @Test("a BOOLEAN feature's entitlement is access or none: a usage limit, unlimited usage or a reset period for it is -32602 naming the field, in plans and promotions")
    func booleanEntitlementsTakeNoLimits() throws {
        let customer = try daemon.newCustomer(), flag = uniqueID("sso")
        _ = try daemon.call("defineFeature", ["featureId": .string(flag), "type": "BOOLEAN"])
        let entitlements: [(JSONObject, String)] = [(["usageLimit": "3"], "usageLimit"), (["hasUnlimitedUsage": true], "hasUnlimitedUsage"), (["resetPeriod": "MONTH"], "resetPeriod")]
        for (extra, field) in entitlements {
            var entitlement: JSONObject = ["featureId": .string(flag)]
            var promotion: JSONObject = ["customerId": .string(customer), "featureId": .string(flag)]
            for (key, value) in extra {
                entitlement[key] = value
                promotion[key] = value
            }
            try daemon.expectInvalidParams("definePlan", ["planId": .string(uniqueID("plan")), "displayName": "P", "entitlements": [.object(entitlement)]], field: "entitlements[0].\(field)")
            try daemon.expectInvalidParams("grantPromotionalEntitlement", promotion, field: field)
        }
        // Access alone is fine, and so is an explicit no-limit false.
        _ = try daemon.call("definePlan", ["planId": .string(uniqueID("plan")), "displayName": "P", "entitlements": [["featureId": .string(flag), "hasAccess": true, "hasUnlimitedUsage": false]]])
        let granted = try daemon.call("grantPromotionalEntitlement", ["customerId": .string(customer), "featureId": .string(flag)])
        #expect(granted["featureId"] == .string(flag), "\(granted.jsonText)")
    }

    @Test("catalog and entitlement bad input: -32602 naming the field, nothing appended")
    func catalogBadInput() throws {
        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature()
        let plan = uniqueID("plan")
        _ = try daemon.call("definePlan", ["planId": .string(plan), "displayName": "P", "entitlements": [["featureId": .string(feature)]]])
        func meter(_ m: JSONObject) -> JSONObject { ["featureId": .string(uniqueID("bad")), "type": "METERED", "meter": .object(m)] }
        let cases: [(method: String, params: JSONObject, field: String)] = [
            ("defineFeature", ["featureId": .string(uniqueID("bad")), "type": "METRED"], "type"),
            ("defineFeature", ["featureId": "", "type": "METERED"], "featureId"),
            ("defineFeature", ["featureId": .string(uniqueID("bad")), "type": "BOOLEAN", "meter": ["eventName": "e", "aggregation": "COUNT"]], "meter"),
            ("defineFeature", meter(["eventName": "e", "aggregation": "AVERAGE"]), "meter.aggregation"),
            ("defineFeature", meter(["eventName": "e", "aggregation": "SUM"]), "meter.field"),
            ("defineFeature", meter(["eventName": "e", "aggregation": "COUNT", "field": "tokens"]), "meter.field"),
            ("defineFeature", meter(["eventName": "e", "aggregation": "SUM", "field": "bad key!"]), "meter.field"),
            ("defineFeature", meter(["eventName": "e", "aggregation": "COUNT", "filters": [["key": "region", "op": "LIKE", "values": ["us"]]]]), "meter.filters[0].op"),
            ("defineFeature", meter(["eventName": "e", "aggregation": "COUNT", "filters": [["key": "region", "op": "EQUALS", "values": ["us", "eu"]]]]), "meter.filters[0].values"),
            ("defineFeature", meter(["eventName": "e", "aggregation": "COUNT", "filters": [["key": "region", "op": "IN"]]]), "meter.filters[0].values"),
            ("defineFeature", meter(["eventName": "e", "aggregation": "COUNT", "filters": [["key": "region", "op": "EXISTS", "values": ["x"]]]]), "meter.filters[0].values"),
            ("defineFeature", meter(["eventName": "e", "aggregation": "COUNT", "filters": [["key": "region", "op": "EQUALS", "values": [""]]]]), "meter.filters[0].values[0]"),
            ("defineFeature", meter(["eventName": "e", "aggregation": "COUNT", "filters": [["key": "region", "op": "IN", "values": ["us", "a\u{0}b"]]]]), "meter.filters[0].values[1]"),
            ("defineFeature", meter(["eventName": "e", "aggregation": "COUNT", "filters": [["key": "region", "op": "IN", "values": .array((0...256).map { .string("v\($0)") })]]]), "meter.filters[0].values"),
            ("defineFeature", meter(["eventName": "e", "aggregation": "COUNT", "filters": .array((0...32).map { _ in ["key": "region", "op": "EXISTS"] })]), "meter.filters"),
            ("defineFeature", ["featureId": .string(uniqueID("bad")), "type": "METERED", "creditCost": ["currencyId": "c", "amountPerUnit": "0"]], "creditCost.amountPerUnit"),
            ("defineFeature", ["featureId": .string(uniqueID("bad")), "type": "METERED", "creditCost": ["currencyId": "c", "amountPerUnit": "0.0000000000001"]], "creditCost.amountPerUnit"),
            ("defineCurrency", ["currencyId": .string(uniqueID("cur"))], "displayName"),
            ("definePlan", ["planId": .string(uniqueID("plan")), "displayName": "P"], "entitlements"),
            ("definePlan", ["planId": .string(uniqueID("plan")), "displayName": "P", "entitlements": [["featureId": .string(feature), "usageLimit": -1]]], "entitlements[0].usageLimit"),
            ("definePlan", ["planId": .string(uniqueID("plan")), "displayName": "P", "entitlements": [["featureId": .string(feature), "usageLimit": 5, "hasUnlimitedUsage": true]]], "entitlements[0].usageLimit"),
            ("definePlan", ["planId": .string(uniqueID("plan")), "displayName": "P", "entitlements": [["featureId": .string(feature), "resetPeriod": "HOUR"]]], "entitlements[0].resetPeriod"),
            ("definePlan", ["planId": .string(uniqueID("plan")), "displayName": "P", "entitlements": [["featureId": .string(feature)], ["featureId": .string(feature)]]], "entitlements[1].featureId"),
            ("provisionSubscription", ["customerId": .string(customer), "planId": .string(plan), "status": "EXPIRED"], "status"),
            ("provisionSubscription", ["customerId": .string(customer), "planId": .string(plan), "startDate": "2026-11-01"], "startDate"),
            ("grantPromotionalEntitlement", ["customerId": .string(customer), "featureId": .string(feature), "usageLimit": "-5"], "usageLimit"),
            ("grantPromotionalEntitlement", ["customerId": .string(customer), "featureId": .string(feature), "resetPeriod": "FORTNIGHT"], "resetPeriod"),
            ("grantPromotionalEntitlement", ["customerId": .string(customer), "featureId": .string(feature), "endDate": "tomorrow"], "endDate"),
            ("getEntitlement", ["customerId": .string(customer), "featureId": .string(feature), "requestedUsage": "lots"], "requestedUsage"),
            ("getUsageHistory", ["customerId": .string(customer), "featureId": .string(feature), "startDate": "2026-11-01T00:00:00Z", "groupBy": ["region", "bad key"]], "groupBy[1]"),
            ("getUsageHistory", ["customerId": .string(customer), "featureId": .string(feature), "startDate": "2026-11-01T00:00:00Z", "granularity": "WEEK"], "granularity"),
            ("getUsageHistory", ["customerId": .string(customer), "featureId": .string(feature), "startDate": "2026-11-02T00:00:00Z", "endDate": "2026-11-01T00:00:00Z"], "endDate"),
        ]
        for (method, params, field) in cases {
            try daemon.expectInvalidParams(method, params, field: field)
        }
        // At the limits: 32 filters, 256 values in one IN.
        let widest = try daemon.call("defineFeature", meter(["eventName": "e", "aggregation": "COUNT", "filters": .array(
            [["key": "region", "op": "IN", "values": .array((0..<256).map { .string("v\($0)") })]] + (1..<32).map { _ in ["key": "region", "op": "EXISTS"] }
        )]))
        #expect(widest.field("meter.filters")?.arrayValue?.count == 32, "\(widest.jsonText)")
        // A bad reset period, whether no calendar period at all or one of history only, is answered
        // with the four accepted ones.
        for period: JSONValue in ["QUARTER", "HOUR", "MINUTE", "day"] {
            let bad: [(method: String, params: JSONObject, field: String)] = [
                ("definePlan", ["planId": .string(uniqueID("plan")), "displayName": "P", "entitlements": [["featureId": .string(feature), "resetPeriod": period]]], "entitlements[0].resetPeriod"),
                ("grantPromotionalEntitlement", ["customerId": .string(customer), "featureId": .string(feature), "resetPeriod": period], "resetPeriod"),
            ]
            for (method, params, field) in bad {
                let before = try daemon.lastSequence()
                let error = expectRPCError(code: -32602) { _ = try daemon.call(method, params) }
                #expect(error?.field == field, "\(method) \(period.jsonText): \(error.map { "\($0)" } ?? "")")
                #expect(error?.message.contains("must be DAY, WEEK, MONTH or YEAR") == true && error?.message.contains("HOUR") == false,
                        "\(method) \(period.jsonText): only the accepted periods are listed: \(error.map { "\($0)" } ?? "")")
                #expect(try daemon.lastSequence() == before)
            }
        }
        // reportEvent items that break the rules are rejected on their own, naming the field,
        // and only the good one is appended.
        let before = try daemon.lastSequence()
        let mixed = try daemon.call("reportEvent", ["events": [
            usageEvent(customer, "e", key: uniqueID("ok")),
            ["customerId": .string(customer), "eventName": "e", "idempotencyKey": .string(uniqueID("k")), "timestamp": "2026-11-01T00:00:00"],
            ["customerId": .string(customer), "eventName": "e", "idempotencyKey": .string(uniqueID("k")), "dimensions": ["bad key": "x"]],
            ["customerId": .string(customer), "eventName": "e", "idempotencyKey": .string(uniqueID("k")), "dimensions": ["n": "1.0000000000001"], "resourceId": ""],
        ]])
        #expect(mixed["accepted"] == 1, "\(mixed.jsonText)")
        let rejected = mixed["rejected"]?.arrayValue ?? []
        #expect(rejected.map { $0["index"]?.intValue } == [1, 2, 3] && rejected.allSatisfy { $0["code"] == -32602 }, "\(mixed.jsonText)")
        for (item, field) in zip(rejected, ["timestamp", "dimensions", "resourceId"]) {
            #expect(item["message"]?.stringValue?.contains(field) == true, "names \(field): \(item.jsonText)")
        }
        #expect(try daemon.lastSequence() == before + 1)
    }

    @Test("catalog refusals: 1002 unknown feature in a plan, 1003 unknown currency, 1001/1005 subscription, 1013 second cancel")
    func catalogRefusals() throws {
        let feature = try daemon.newMeteredFeature()
        try daemon.expectRejected("definePlan", [
            "planId": .string(uniqueID("plan")), "displayName": "P",
            "entitlements": [["featureId": .string(feature)], ["featureId": .string(uniqueID("nofeat"))]],
        ], code: 1002, reason: "FEATURE_NOT_FOUND")
        try daemon.expectRejected("defineFeature", [
            "featureId": .string(uniqueID("feat")), "type": "METERED",
            "creditCost": ["currencyId": .string(uniqueID("nocur")), "amountPerUnit": 1],
        ], code: 1003, reason: "CURRENCY_NOT_FOUND")

        let customer = try daemon.newCustomer()
        let plan = uniqueID("plan")
        _ = try daemon.call("definePlan", ["planId": .string(plan), "displayName": "P", "entitlements": [["featureId": .string(feature), "hasUnlimitedUsage": true]]])
        try daemon.expectRejected("provisionSubscription", ["customerId": .string(uniqueID("nocust")), "planId": .string(plan)], code: 1001, reason: "CUSTOMER_NOT_FOUND")
        try daemon.expectRejected("provisionSubscription", ["customerId": .string(customer), "planId": .string(uniqueID("noplan"))], code: 1005, reason: "PLAN_NOT_FOUND")

        let subscriptionId = uniqueID("sub")
        let subscription = try daemon.call("provisionSubscription", ["customerId": .string(customer), "planId": .string(plan), "subscriptionId": .string(subscriptionId)])
        #expect(subscription["id"] == .string(subscriptionId) && subscription["status"] == "ACTIVE", "\(subscription.jsonText)")
        let shown = try daemon.call("getCustomer", ["customerId": .string(customer)])["subscriptions"]?.arrayValue ?? []
        #expect(shown.map { $0["id"] } == [.string(subscriptionId)] && shown.first?.field("plan.id") == .string(plan), "\(shown)")

        let canceled = try daemon.call("cancelSubscription", ["subscriptionId": .string(subscriptionId)])
        #expect(canceled["status"] == "CANCELED" && canceled["canceledAt"]?.stringValue != nil, "\(canceled.jsonText)")
        try daemon.expectRejected("cancelSubscription", ["subscriptionId": .string(subscriptionId)], code: 1013, reason: "INVALID_STATE")
        let after = try daemon.call("getCustomer", ["customerId": .string(customer)])["subscriptions"]?.arrayValue ?? []
        #expect(after.first?["status"] == "CANCELED", "\(after)")
    }

    @Test("a subscription provisioned without an id never takes one a client gave (sub_<sequence> of this very event): it gets sub_<sequence>.2, and the client's stays as it was")
    func madeUpSubscriptionIdsAvoidGivenOnes() throws {
        // A daemon of its own: the next sequence is known.
        let daemon = try LiveDaemon().start()
        _ = try daemon.call("definePlan", ["planId": "basic", "displayName": "Basic", "entitlements": []])  // 1
        _ = try daemon.call("definePlan", ["planId": "pro", "displayName": "Pro", "entitlements": []])  // 2
        for customer in ["acme", "beta"] { _ = try daemon.call("provisionCustomer", ["customerId": .string(customer)]) }  // 3, 4
        _ = try daemon.call("provisionSubscription", ["customerId": "acme", "planId": "pro", "subscriptionId": "sub_6", "status": "TRIAL"])  // 5
        let mine = try daemon.call("provisionSubscription", ["customerId": "acme", "planId": "basic"])  // 6
        #expect(mine["id"] == "sub_6.2" && mine["status"] == "ACTIVE", "\(mine.jsonText)")
        _ = try daemon.call("provisionSubscription", ["customerId": "beta", "planId": "pro", "subscriptionId": "sub_8"])  // 7
        let other = try daemon.call("provisionSubscription", ["customerId": "acme", "planId": "basic"])  // 8
        #expect(other["id"] == "sub_8.2", "\(other.jsonText)")
        let shown = try daemon.call("getCustomer", ["customerId": "acme"])["subscriptions"]?.arrayValue ?? []
        #expect(shown.map { $0["id"] } == ["sub_6", "sub_6.2", "sub_8.2"] && shown.first?["status"] == "TRIAL" && shown.first?.field("plan.id") == "pro",
                "\(shown.map(\.jsonText))")
        #expect(try daemon.terminate() == 0)
    }

    @Test("a customer's subscriptions are listed in the order first provisioned; provisioning a known id again replaces it in its place, adding none; another customer's id is refused")
    func subscriptionListOrder() throws {
        let feature = uniqueID("ordf"), plan = uniqueID("ordp"), plan2 = uniqueID("ordp2"), customer = uniqueID("ordc"), other = uniqueID("ordo")
        _ = try daemon.call("defineFeature", ["featureId": .string(feature), "type": "BOOLEAN"])
        for p in [plan, plan2] {
            _ = try daemon.call("definePlan", ["planId": .string(p), "displayName": "P", "entitlements": [["featureId": .string(feature)]]])
        }
        for c in [customer, other] { _ = try daemon.call("provisionCustomer", ["customerId": .string(c)]) }
        let ids = ["z", "a", "m", "b"].map { "\(customer)-\($0)" }
        for id in ids {
            _ = try daemon.call("provisionSubscription", ["customerId": .string(customer), "planId": .string(plan), "subscriptionId": .string(id)])
        }
        let again = try daemon.call("provisionSubscription", ["customerId": .string(customer), "planId": .string(plan2), "subscriptionId": .string(ids[1]), "status": "PAUSED"])
        #expect(again["status"] == "PAUSED", "\(again.jsonText)")
        try daemon.expectRejected("provisionSubscription", ["customerId": .string(other), "planId": .string(plan), "subscriptionId": .string(ids[2])], code: 1013, reason: "INVALID_STATE")
        let shown = try daemon.call("getCustomer", ["customerId": .string(customer)])["subscriptions"]?.arrayValue ?? []
        #expect(shown.map { $0["id"]?.stringValue ?? "?" } == ids, "\(shown.map(\.jsonText))")
        #expect(shown.map { $0["status"]?.stringValue ?? "?" } == ["ACTIVE", "PAUSED", "ACTIVE", "ACTIVE"])
        #expect(shown.map { $0.field("plan.id")?.stringValue ?? "?" } == [plan, plan2, plan, plan])
        let others = try daemon.call("getCustomer", ["customerId": .string(other)])["subscriptions"]?.arrayValue
        #expect(others == [], "\(others.map { "\($0)" } ?? "nil")")
        let verified = try daemon.call("verifyLedger")
        #expect(verified["projectionsMatch"] == true, "\(verified.jsonText.prefix(600))")
    }

    @Test("defineFeature refuses (1013) a redefinition that changes how usage combines; COUNT and SUM, filters and event name may change, and history then agrees with currentUsage")
    func redefinitionKeepsCombination() throws {
        func meter(_ aggregation: String, _ eventName: String, field: String? = "n") -> JSONValue {
            var o: JSONObject = ["eventName": .string(eventName), "aggregation": .string(aggregation)]
            if aggregation != "COUNT", let field { o["field"] = .string(field) }
            return .object(o)
        }
        let eventName = uniqueID("redef.event")
        let maxFeature = try daemon.newMeteredFeature("redef-max", meter: meter("MAX", eventName))
        for (aggregation, field) in [("SUM", "n"), ("COUNT", "n"), ("MIN", "n"), ("LATEST", "n"), ("UNIQUE_COUNT", "n")] {
            try daemon.expectRejected("defineFeature", ["featureId": .string(maxFeature), "type": "METERED", "meter": meter(aggregation, eventName, field: field)],
                                      code: 1013, reason: "INVALID_STATE")
        }
        try daemon.expectRejected("defineFeature", ["featureId": .string(maxFeature), "type": "METERED"], code: 1013, reason: "INVALID_STATE")
        try daemon.expectRejected("defineFeature", ["featureId": .string(maxFeature), "type": "BOOLEAN"], code: 1013, reason: "INVALID_STATE")
        // MAX of another field, event name and filters: the same rule, so it is a new version.
        let kept = try daemon.call("defineFeature", [
            "featureId": .string(maxFeature), "type": "METERED",
            "meter": ["eventName": .string(eventName + ".v2"), "aggregation": "MAX", "field": "m", "filters": [["key": "region", "op": "EXISTS"]]],
        ])
        #expect(kept["version"] == 2, "\(kept.jsonText)")

        let unique = try daemon.newMeteredFeature("redef-unique", meter: meter("UNIQUE_COUNT", eventName, field: "user"))
        try daemon.expectRejected("defineFeature", ["featureId": .string(unique), "type": "METERED", "meter": meter("UNIQUE_COUNT", eventName, field: "account")],
                                  code: 1013, reason: "INVALID_STATE")

        // BOOLEAN (no usage yet) may become METERED; COUNT may become SUM and no meter (all sums).
        let countEvent = uniqueID("redef.count")
        let additive = uniqueID("redef-additive")
        _ = try daemon.call("defineFeature", ["featureId": .string(additive), "type": "BOOLEAN"])
        _ = try daemon.call("defineFeature", ["featureId": .string(additive), "type": "METERED", "meter": meter("COUNT", countEvent)])
        let customer = try daemon.newCustomer()
        let at = "2026-11-10T10:00:00Z"
        func send(_ n: String) throws {
            let reply = try daemon.call("reportEvent", ["events": [usageEvent(customer, countEvent, key: uniqueID("ev"), dimensions: ["n": n], timestamp: at)]])
            #expect(reply["accepted"] == 1, "\(reply.jsonText)")
        }
        try send("5"); try send("3")
        let summed = try daemon.call("defineFeature", ["featureId": .string(additive), "type": "METERED", "meter": meter("SUM", countEvent)])
        #expect(summed["version"] == 3, "\(summed.jsonText)")
        try send("5"); try send("4")
        _ = try daemon.call("defineFeature", ["featureId": .string(additive), "type": "METERED"])
        _ = try daemon.call("reportUsage", ["customerId": .string(customer), "featureId": .string(additive), "value": "10", "timestamp": .string(at)])
        // 2 counted + 5 + 4 summed + 10 reported, at every granularity and in the period total.
        for granularity in ["MINUTE", "HOUR", "DAY", "MONTH"] {
            let series = try daemon.history(customer, additive, start: "2026-11-01T00:00:00Z", ["endDate": "2026-12-01T00:00:00Z", "granularity": .string(granularity)])
            #expect(series["series"]?.arrayValue?.first?["total"] == "21", "\(granularity): \(series.jsonText)")
        }
        // Without an entitlement there is no reset period: currentUsage is all the usage.
        let entitlement = try daemon.entitlement(customer, additive)
        #expect(entitlement["currentUsage"] == "21", "\(entitlement.jsonText)")
    }

    // MARK: - reportUsage

    @Test("reportUsage DELTA adds, SET records the difference as measurement.delta and makes currentUsage the value")
    func deltaAndSet() throws {
        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature()
        func report(_ value: JSONValue, _ behavior: String? = nil) throws -> JSONValue {
            var params: JSONObject = ["customerId": .string(customer), "featureId": .string(feature), "value": value]
            if let behavior { params["updateBehavior"] = .string(behavior) }
            return try daemon.call("reportUsage", params)
        }
        let first = try report(5)
        #expect(first["currentUsage"] == "5" && first.field("measurement.delta") == "5", "\(first.jsonText)")
        #expect(first.field("measurement.updateBehavior") == "DELTA" && first.field("measurement.value") == .number("5"))
        #expect(first.field("measurement.customerId") == .string(customer) && first.field("measurement.featureId") == .string(feature))
        #expect(first.field("measurement.idempotencyKey") == .null, "no key: null, as the seed schema allows")

        let second = try report("2.5", "DELTA")
        #expect(second["currentUsage"] == "7.5" && second.field("measurement.delta") == "2.5", "\(second.jsonText)")

        let set = try report(20, "SET")
        #expect(set["currentUsage"] == "20", "\(set.jsonText)")
        #expect(set.field("measurement.delta") == "12.5" && set.field("measurement.value") == .number("20") && set.field("measurement.updateBehavior") == "SET")

        let down = try report("3", "SET")
        #expect(down["currentUsage"] == "3" && down.field("measurement.delta") == "-17", "\(down.jsonText)")

        let same = try report(3, "SET")
        #expect(same["currentUsage"] == "3" && same.field("measurement.delta") == "0", "\(same.jsonText)")

        // The log holds the deltas; the history sums them.
        let history = try daemon.history(customer, feature, start: "2020-01-01T00:00:00Z", ["granularity": "MONTH"])
        #expect(history["series"]?.arrayValue?.first?["total"] == "3", "\(history.jsonText)")
        #expect(history["series"]?.arrayValue?.first?["eventCount"] == 5)
    }

    @Test("reportUsage idempotency: a retry returns the same result with duplicate: true; another payload is 1011")
    func usageIdempotency() throws {
        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature()
        let key = uniqueID("key")
        let params: JSONObject = ["customerId": .string(customer), "featureId": .string(feature), "value": 4, "idempotencyKey": .string(key),
                                  "dimensions": ["region": "us"]]
        let first = try daemon.call("reportUsage", params)
        #expect(first["duplicate"] == nil && first.field("measurement.idempotencyKey") == .string(key))
        let sequence = try daemon.lastSequence()

        let retry = try daemon.call("reportUsage", params)
        #expect(retry["duplicate"] == true, "\(retry.jsonText)")
        var withoutFlag = retry.objectValue ?? [:]
        withoutFlag["duplicate"] = nil
        #expect(JSONValue.object(withoutFlag) == first, "the original result: \(retry.jsonText) vs \(first.jsonText)")
        #expect(try daemon.lastSequence() == sequence)

        var other = params
        other["value"] = 5
        try daemon.expectRejected("reportUsage", other, code: 1011, reason: "IDEMPOTENCY_CONFLICT")
        #expect(try daemon.entitlement(customer, feature)["currentUsage"] != nil)
        let total = try daemon.history(customer, feature, start: "2020-01-01T00:00:00Z", ["granularity": "MONTH"])
        #expect(total["series"]?.arrayValue?.first?["total"] == "4", "counted once: \(total.jsonText)")
    }

    @Test("reportUsage refusals: 1001 unknown customer, 1002 unknown feature, 1013 BOOLEAN feature")
    func usageRefusals() throws {
        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature()
        let boolean = uniqueID("flag")
        _ = try daemon.call("defineFeature", ["featureId": .string(boolean), "type": "BOOLEAN"])
        try daemon.expectRejected("reportUsage", ["customerId": .string(uniqueID("nocust")), "featureId": .string(feature), "value": 1], code: 1001, reason: "CUSTOMER_NOT_FOUND")
        try daemon.expectRejected("reportUsage", ["customerId": .string(customer), "featureId": .string(uniqueID("nofeat")), "value": 1], code: 1002, reason: "FEATURE_NOT_FOUND")
        try daemon.expectRejected("reportUsage", ["customerId": .string(customer), "featureId": .string(boolean), "value": 1], code: 1013, reason: "INVALID_STATE")
    }

    @Test("reportUsage, reportUsageBulk and importRecords refuse (1013) a feature metered with MAX, MIN, LATEST or UNIQUE_COUNT; COUNT, SUM and unmetered features take usage")
    func usageOfNonAdditiveMeter() throws {
        let customer = try daemon.newCustomer(), name = uniqueID("ev")
        func meter(_ aggregation: String, field: String?) -> JSONValue {
            var o: JSONObject = ["eventName": .string(name), "aggregation": .string(aggregation)]
            if let field { o["field"] = .string(field) }
            return .object(o)
        }
        let refused: [(aggregation: String, id: String)] = try [
            ("MAX", daemon.newMeteredFeature("max", meter: meter("MAX", field: "tokens"))),
            ("MIN", daemon.newMeteredFeature("min", meter: meter("MIN", field: "tokens"))),
            ("LATEST", daemon.newMeteredFeature("latest", meter: meter("LATEST", field: "tokens"))),
            ("UNIQUE_COUNT", daemon.newMeteredFeature("uniq", meter: meter("UNIQUE_COUNT", field: "user"))),
        ]
        let taken: [String] = try [
            daemon.newMeteredFeature("count", meter: meter("COUNT", field: nil)),
            daemon.newMeteredFeature("sum", meter: meter("SUM", field: "tokens")),
            daemon.newMeteredFeature("plain"),
        ]
        try daemon.subscribe(customer, entitlements: (refused.map(\.id) + taken).map { ["featureId": .string($0), "hasUnlimitedUsage": true] })
        let sent = try daemon.call("reportEvent", ["events": [usageEvent(customer, name, key: uniqueID("e"), dimensions: ["tokens": "9", "user": "u1"])]])
        #expect(sent["accepted"] == 1, "\(sent.jsonText)")
        let maxId = refused[0].id
        #expect(try daemon.entitlement(customer, maxId)["currentUsage"] == "9")

        for (aggregation, id) in refused {
            for behavior in ["DELTA", "SET"] {
                let before = try daemon.lastSequence()
                let error = expectRPCError(code: 1013, reason: "INVALID_STATE") {
                    _ = try daemon.call("reportUsage", ["customerId": .string(customer), "featureId": .string(id), "value": 2, "updateBehavior": .string(behavior)])
                }
                #expect(error?.message.contains(aggregation) == true && error?.message.contains("reportEvent") == true, "\(aggregation): \(error.map { "\($0)" } ?? "")")
                #expect(try daemon.lastSequence() == before, "\(aggregation) \(behavior): nothing appended")
            }
        }
        // The totals and the history still agree: 9, not 11.
        #expect(try daemon.entitlement(customer, maxId)["currentUsage"] == "9")
        #expect(try daemon.history(customer, maxId, start: "2020-01-01T00:00:00Z", ["granularity": "MONTH"])["series"]?.arrayValue?.first?["total"] == "9")
        for id in taken {
            let reply = try daemon.call("reportUsage", ["customerId": .string(customer), "featureId": .string(id), "value": 2])
            #expect(reply.field("measurement.delta") == "2", "\(id): \(reply.jsonText)")
        }

        // Each bulk item and each imported record is refused on its own.
        let bulk = try daemon.call("reportUsageBulk", ["usages": [
            ["customerId": .string(customer), "featureId": .string(maxId), "value": 1],
            ["customerId": .string(customer), "featureId": .string(taken[1]), "value": 1],
        ]])
        let items = bulk["results"]?.arrayValue ?? []
        #expect(items.first?.field("error.code") == 1013 && items.first?["index"] == 0, "\(bulk.jsonText)")
        #expect(items.last?.field("measurement.delta") == "1", "\(bulk.jsonText)")
        let records: [(format: String, refused: JSONValue, taken: JSONValue)] = [
            ("STIGG",
             ["id": .string(uniqueID("s")), "customerId": .string(customer), "featureId": .string(maxId), "value": 1, "timestamp": "2026-10-10T00:00:00Z"],
             ["id": .string(uniqueID("s")), "customerId": .string(customer), "featureId": .string(taken[0]), "value": 1, "timestamp": "2026-10-10T00:00:00Z"]),
            ("OCTANE",
             ["id": .string(uniqueID("o")), "meter_name": .string(refused[3].id), "customer_name": .string(customer), "value": 1, "reset_total": true],
             ["id": .string(uniqueID("o")), "meter_name": .string(taken[1]), "customer_name": .string(customer), "value": 1]),
            ("PAIGO",
             ["timestamp": "2026-10-10T00:00:00Z", "customerId": .string(customer), "dimensionId": .string(refused[2].id), "recordValue": "1"],
             ["timestamp": "2026-10-10T00:00:00Z", "customerId": .string(customer), "dimensionId": .string(taken[2]), "recordValue": "1"]),
        ]
        for (format, bad, good) in records {
            let before = try daemon.lastSequence()
            let result = try daemon.call("importRecords", ["format": .string(format), "records": [bad, good]])
            let rejected = result["rejected"]?.arrayValue ?? []
            #expect(result["accepted"] == 1 && rejected.map { $0["index"]?.intValue } == [0] && rejected.first?["code"] == 1013, "\(format): \(result.jsonText)")
            #expect(rejected.first?["message"]?.stringValue?.contains("reportEvent") == true, "\(format): \(result.jsonText)")
            #expect(try daemon.lastSequence() == before + 1, "\(format): only the good record is appended")
        }
        #expect(try daemon.entitlement(customer, maxId)["currentUsage"] == "9")
    }

    @Test("bad input is -32602 naming the field, and appends nothing")
    func badInput() throws {
        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature()
        let base: JSONObject = ["customerId": .string(customer), "featureId": .string(feature), "value": 1]
        func with(_ key: String, _ value: JSONValue) -> JSONObject {
            var p = base
            p[key] = value
            return p
        }
        try daemon.expectInvalidParams("reportUsage", with("value", "abc"), field: "value")
        try daemon.expectInvalidParams("reportUsage", with("value", "1.1234567890123"), field: "value")
        try daemon.expectInvalidParams("reportUsage", with("value", .number("1.1234567890123")), field: "value")
        try daemon.expectInvalidParams("reportUsage", with("value", .number("1e-13")), field: "value")
        try daemon.expectInvalidParams("reportUsage", with("timestamp", "26-11-20T00:00:00Z"), field: "timestamp")
        try daemon.expectInvalidParams("reportUsage", with("timestamp", "2026-11-20T00:00:00"), field: "timestamp")
        try daemon.expectInvalidParams("reportUsage", with("dimensions", ["bad key!": "x"]), field: "dimensions.bad key!")
        var negativeSet = with("value", -1)
        negativeSet["updateBehavior"] = "SET"
        try daemon.expectInvalidParams("reportUsage", negativeSet, field: "value")
        try daemon.expectInvalidParams("reportUsage", with("updateBehavior", "ADD"), field: "updateBehavior")
        try daemon.expectInvalidParams("reportUsage", with("custmerId", "x"), field: "custmerId")
        // 12 fractional digits are exact.
        let exact = try daemon.call("reportUsage", with("value", "0.000000000001"))
        #expect(exact["currentUsage"] == "0.000000000001", "\(exact.jsonText)")

        try daemon.expectInvalidParams("getUsageHistory", [
            "customerId": .string(customer), "featureId": .string(feature), "startDate": "2026-10-01T00:00:00Z", "groupBy": ["a", "b", "c", "d"],
        ], field: "groupBy")
        try daemon.expectInvalidParams("getUsageHistory", [
            "customerId": .string(customer), "featureId": .string(feature), "startDate": "2026-10-01T00:00:00Z", "groupBy": ["model", "region", "model"],
        ], field: "groupBy[2]")
        try daemon.expectInvalidParams("getUsageHistory", [
            "customerId": .string(customer), "featureId": .string(feature), "startDate": "2026-10-01T00:00:00Z", "granularity": "WEEK",
        ], field: "granularity")
        // The message names only what getUsageHistory takes, also for a spelling no period has.
        let lowercase = expectRPCError(code: -32602) {
            _ = try daemon.call("getUsageHistory", ["customerId": .string(customer), "featureId": .string(feature), "startDate": "2026-10-01T00:00:00Z", "granularity": "minute"])
        }
        #expect(lowercase?.message.hasSuffix("must be MINUTE, HOUR, DAY or MONTH") == true, "\(lowercase.map { "\($0)" } ?? "no error")")

        try daemon.expectInvalidParams("reportEvent", ["events": []], field: "events")
        // 100,000 events, each `{}` so the line stays under the 1 MiB frame limit: the count is refused first.
        var line = #"{"jsonrpc":"2.0","id":7,"method":"reportEvent","params":{"events":["#
        line += Array(repeating: "{}", count: 100_000).joined(separator: ",")
        line += "]}}"
        let before = try daemon.lastSequence()
        expectError(try daemon.exchange(line), code: -32602, id: 7, field: "events")
        #expect(try daemon.lastSequence() == before)
        // The same with real events (2 MiB): over the frame limit, or refused on `events`; never applied.
        let event = usageEvent(customer, uniqueID("evt"), key: "k")
        let big: JSONValue = ["jsonrpc": "2.0", "id": 8, "method": "reportEvent", "params": ["events": .array(Array(repeating: event, count: 100_000))]]
        let reply = try daemon.exchange(big.serialized())
        #expect(reply["error"] != nil && reply["result"] == nil, "\(reply.jsonText.prefix(500))")
        #expect(try daemon.lastSequence() == before)
    }

    // MARK: - The seed schema

    @Test("result.measurement validates against the seed UsageMeasurement JSON Schema (Python jsonschema)")
    func measurementMatchesSeedSchema() throws {
        let seed = SchemaValidator.seedsDirectory + "/000_9f99bf2e1c0d5f11.txt"
        let schema = try SchemaValidator.schema(fromSeed: seed)
        let parsed = try parseJSON(schema)
        #expect(parsed["title"] == "UsageMeasurement", "extracted the wrong schema: \(schema.prefix(200))")

        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature()
        let directory = TemporaryDirectory("schema")
        let reports: [JSONObject] = [
            ["customerId": .string(customer), "featureId": .string(feature), "value": 3],
            ["customerId": .string(customer), "featureId": .string(feature), "value": "0.25", "idempotencyKey": .string(uniqueID("k")),
             "timestamp": "2026-10-01T10:00:00+02:00", "dimensions": ["region": "eu"], "resourceId": "r1"],
            ["customerId": .string(customer), "featureId": .string(feature), "value": 10, "updateBehavior": "SET"],
        ]
        let measurements = try reports.map { try daemon.call("reportUsage", $0)["measurement"] ?? .null }
        #expect(measurements.last?.field("timestamp")?.stringValue?.hasSuffix("Z") == true)
        #expect(measurements[1].field("timestamp") == "2026-10-01T08:00:00.000Z", "UTC, milliseconds: \(measurements[1].jsonText)")

        // The check can fail: broken copies of a valid measurement are refused.
        guard case .object(let valid) = measurements.last ?? .null else { Issue.record("no measurement"); return }
        var stringValue = valid
        stringValue["value"] = "10"
        var badTime = valid
        badTime["timestamp"] = "26-11-20T00:00:00Z"
        var noId = valid
        noId["id"] = nil
        var badBehavior = valid
        badBehavior["updateBehavior"] = "ADD"
        let broken: [JSONValue] = [.object(stringValue), .object(badTime), .object(noId), .object(badBehavior)]

        let verdicts = try SchemaValidator.validate(schema: schema, instances: measurements + broken, in: directory)
        for (measurement, verdict) in zip(measurements, verdicts) {
            #expect(verdict == nil, "measurement \(measurement.jsonText) fails the seed schema: \(verdict ?? "")")
        }
        for (instance, verdict) in zip(broken, verdicts.dropFirst(measurements.count)) {
            #expect(verdict != nil, "a broken measurement passed the schema: \(instance.jsonText)")
        }
    }

    // MARK: - reportEvent and meters

    @Test("LATEST: of readings with the same timestamp the one recorded last wins, in the entitlement's total and in the history alike")
    func latestTies() throws {
        let customer = try daemon.newCustomer()
        let name = uniqueID("gauge")
        let feature = try daemon.newMeteredFeature("latest", meter: ["eventName": .string(name), "aggregation": "LATEST", "field": "v"])
        try daemon.subscribe(customer, entitlements: [["featureId": .string(feature), "usageLimit": 100, "resetPeriod": "DAY"]])
        // Now (to the second), so that the readings fall in the entitlement's current DAY.
        let at = ISO8601DateFormatter().string(from: Date())
        func readings() throws -> (total: String?, history: [String?]) {
            let total = try daemon.entitlement(customer, feature)["currentUsage"]?.stringValue
            let history = try daemon.history(customer, feature, start: String(at.prefix(10)) + "T00:00:00Z", ["granularity": "DAY"])
            let points = history["series"]?.arrayValue?.flatMap { $0["points"]?.arrayValue ?? [] } ?? []
            return (total, points.map { $0["value"]?.stringValue })
        }
        // host "b" sorts after host "a": the dimension sets' order must not decide which is latest.
        _ = try daemon.call("reportEvent", ["events": [
            usageEvent(customer, name, key: "k1", dimensions: ["v": "7", "host": "b"], timestamp: at),
            usageEvent(customer, name, key: "k2", dimensions: ["v": "2", "host": "a"], timestamp: at),
        ]])
        var seen = try readings()
        #expect(seen.total == "2" && seen.history == ["2"], "\(seen)")
        for (key, value) in [("k3", "9"), ("k4", "4")] {
            _ = try daemon.call("reportEvent", ["events": [usageEvent(customer, name, key: key, dimensions: ["v": .init(value), "host": "a"], timestamp: at)]])
        }
        seen = try readings()
        #expect(seen.total == "4" && seen.history == ["4"], "\(seen)")
        #expect(try daemon.call("verifyLedger")["projectionsMatch"] == true)
    }

    @Test("reportEvent: COUNT with filters, SUM, MAX, MIN, LATEST, UNIQUE_COUNT; per-event rejections; duplicates")
    func meters() throws {
        let customer = try daemon.newCustomer()
        let name = uniqueID("evt")
        func meter(_ aggregation: String, field: String? = nil, filters: [JSONValue] = []) -> JSONValue {
            var o: JSONObject = ["eventName": .string(name), "aggregation": .string(aggregation)]
            if let field { o["field"] = .string(field) }
            if !filters.isEmpty { o["filters"] = .array(filters) }
            return .object(o)
        }
        let features: [(label: String, id: String)] = try [
            ("count", daemon.newMeteredFeature("count", meter: meter("COUNT"))),
            ("notEU", daemon.newMeteredFeature("noteu", meter: meter("COUNT", filters: [["key": "region", "op": "NOT_EQUALS", "values": ["eu"]]]))),
            ("goldSilver", daemon.newMeteredFeature("in", meter: meter("COUNT", filters: [["key": "tier", "op": "IN", "values": ["gold", "silver"]]]))),
            ("us", daemon.newMeteredFeature("eq", meter: meter("COUNT", filters: [["key": "region", "op": "EQUALS", "values": ["us"]]]))),
            ("hasModel", daemon.newMeteredFeature("exists", meter: meter("COUNT", filters: [["key": "model", "op": "EXISTS"]]))),
            ("usGold", daemon.newMeteredFeature("and", meter: meter("COUNT", filters: [["key": "region", "op": "EQUALS", "values": ["us"]], ["key": "tier", "op": "IN", "values": ["gold"]]]))),
            ("sum", daemon.newMeteredFeature("sum", meter: meter("SUM", field: "tokens"))),
            ("max", daemon.newMeteredFeature("max", meter: meter("MAX", field: "tokens"))),
            ("min", daemon.newMeteredFeature("min", meter: meter("MIN", field: "tokens"))),
            ("latest", daemon.newMeteredFeature("latest", meter: meter("LATEST", field: "tokens"))),
            ("users", daemon.newMeteredFeature("uniq", meter: meter("UNIQUE_COUNT", field: "user"))),
        ]
        try daemon.subscribe(customer, entitlements: features.map { ["featureId": .string($0.id), "hasUnlimitedUsage": true] })
        func usage() throws -> [String: String] {
            var result: [String: String] = [:]
            for (label, id) in features {
                let e = try daemon.entitlement(customer, id)
                #expect(e["hasAccess"] == true && e["isUnlimited"] == true, "\(e.jsonText)")
                result[label] = e["currentUsage"]?.stringValue ?? "?"
            }
            return result
        }

        // Timestamps out of arrival order: LATEST takes the latest by event time (e3), not the last sent.
        let events: [JSONValue] = [
            usageEvent(customer, name, key: "e0", dimensions: ["region": "us", "tier": "gold", "model": "m1", "tokens": "10", "user": "u1"], timestamp: "2026-10-05T10:00:00Z"),
            usageEvent(customer, name, key: "e1", dimensions: ["region": "eu", "tier": "silver", "tokens": "5", "user": "u2"], timestamp: "2026-10-05T10:00:01Z"),
            usageEvent(customer, name, key: "e2", dimensions: ["region": "us", "tier": "bronze", "model": "m2", "tokens": "7.5", "user": "u1"], timestamp: "2026-10-05T10:00:02Z"),
            usageEvent(customer, name, key: "e3", dimensions: ["region": "ap", "tier": "gold", "tokens": "3", "user": "u3"], timestamp: "2026-10-05T10:00:09Z"),
            usageEvent(customer, name, key: "e4", dimensions: ["region": "eu", "tier": "silver", "model": "m1", "tokens": "20", "user": "u2"], timestamp: "2026-10-05T10:00:04Z"),
        ]
        let first = try daemon.call("reportEvent", ["events": .array(events)])
        #expect(first["accepted"] == 5 && first["duplicates"] == 0 && first["rejected"] == [], "\(first.jsonText)")
        #expect(try usage() == [
            "count": "5", "notEU": "3", "goldSilver": "4", "us": "2", "hasModel": "3", "usGold": "1",
            "sum": "45.5", "max": "20", "min": "3", "latest": "3", "users": "3",
        ])

        // The same call again: all duplicates, nothing appended, nothing counted twice.
        let sequence = try daemon.lastSequence()
        let again = try daemon.call("reportEvent", ["events": .array(events.reversed())])
        #expect(again["accepted"] == 0 && again["duplicates"] == 5 && again["rejected"] == [], "\(again.jsonText)")
        #expect(try daemon.lastSequence() == sequence)

        // Mixed: good events are accepted while bad ones are rejected by index.
        let mixed: [JSONValue] = [
            usageEvent(customer, name, key: "g0", dimensions: ["region": "us", "tier": "gold", "tokens": "1", "user": "u4"], timestamp: "2026-10-05T10:00:05Z"),
            usageEvent(uniqueID("nocust"), name, key: "x1", dimensions: ["tokens": "1"]),
            usageEvent(customer, name, key: "x2", dimensions: ["region": "us", "tokens": "lots", "user": "u9"]),
            usageEvent(customer, name, key: "e0", dimensions: ["region": "us", "tokens": "99"]),
            events[1],
            usageEvent(customer, name, key: "g5", dimensions: ["region": "eu", "tier": "copper", "tokens": "2", "user": "u1"], timestamp: "2026-10-05T10:00:06Z"),
            ["customerId": .string(customer), "eventName": .string(name)],
            usageEvent(customer, name, key: "x7", dimensions: ["region": "us"], timestamp: "2026-13-01T00:00:00Z"),
            usageEvent(customer, name, key: "x8", dimensions: ["region": "us", "tokens": "1e400", "user": "u9"]),
        ]
        let result = try daemon.call("reportEvent", ["events": .array(mixed)])
        #expect(result["accepted"] == 2 && result["duplicates"] == 1, "\(result.jsonText)")
        let rejected = result["rejected"]?.arrayValue ?? []
        #expect(rejected.map { $0["index"]?.intValue ?? -1 } == [1, 2, 3, 6, 7, 8], "\(result.jsonText)")
        #expect(rejected.map { $0["code"]?.intValue ?? 0 } == [1001, -32602, 1011, -32602, -32602, -32602], "\(result.jsonText)")
        #expect(rejected.allSatisfy { !($0["message"]?.stringValue ?? "").isEmpty })
        if rejected.count == 6 {
            // A meter's rule names the event's field as the shape checks do: events[i].dimensions.<key>.
            #expect(rejected[1]["message"]?.stringValue?.hasPrefix("Invalid params: events[2].dimensions.tokens must be a decimal number") == true, "names the field: \(rejected[1].jsonText)")
            #expect(rejected[3]["message"]?.stringValue?.contains("idempotencyKey") == true, "names the field: \(rejected[3].jsonText)")
            // A number a meter cannot hold is named as out of range, not as no number.
            let range = rejected[5]["message"]?.stringValue ?? ""
            #expect(range.hasPrefix("Invalid params: events[8].dimensions.tokens ") && range.contains("out of range"), "\(rejected[5].jsonText)")
        }
        #expect(try usage() == [
            "count": "7", "notEU": "4", "goldSilver": "5", "us": "3", "hasModel": "3", "usGold": "2",
            "sum": "48.5", "max": "20", "min": "1", "latest": "3", "users": "4",
        ])

        // History: SUM per day, the eventCount of the events that fed it.
        let history = try daemon.history(customer, features[6].id, start: "2026-10-05T00:00:00Z", ["endDate": "2026-10-06T00:00:00Z"])
        let points = history["series"]?.arrayValue?.first?["points"]?.arrayValue ?? []
        #expect(points.map { $0["timestamp"] } == ["2026-10-05T00:00:00.000Z"], "\(history.jsonText)")
        #expect(points.first?["value"] == "48.5" && points.first?["eventCount"] == 7, "\(history.jsonText)")
        let maxHistory = try daemon.history(customer, features[7].id, start: "2026-10-05T00:00:00Z", ["granularity": "HOUR"])
        #expect(maxHistory["series"]?.arrayValue?.first?["points"]?.arrayValue?.first?["value"] == "20", "\(maxHistory.jsonText)")
        try daemon.expectLedgerConsistent()
    }

    @Test("UNIQUE_COUNT: the same user twice counts once, also across calls and days")
    func uniqueCount() throws {
        let customer = try daemon.newCustomer()
        let name = uniqueID("login")
        let feature = try daemon.newMeteredFeature("mau", meter: ["eventName": .string(name), "aggregation": "UNIQUE_COUNT", "field": "user"])
        try daemon.subscribe(customer, entitlements: [["featureId": .string(feature), "usageLimit": 3]])
        var batch: [JSONValue] = []
        for i in 0..<20 { batch.append(usageEvent(customer, name, key: "a\(i)", dimensions: ["user": "user-\(i % 2)", "device": "d\(i % 3)"])) }
        #expect(try daemon.call("reportEvent", ["events": .array(batch)])["accepted"] == 20)
        var e = try daemon.entitlement(customer, feature)
        #expect(e["currentUsage"] == "2" && e["hasAccess"] == true, "\(e.jsonText)")
        _ = try daemon.call("reportEvent", ["events": [usageEvent(customer, name, key: "b0", dimensions: ["user": "user-1"]), usageEvent(customer, name, key: "b1", dimensions: ["user": "user-2"])]])
        e = try daemon.entitlement(customer, feature)
        #expect(e["currentUsage"] == "3" && e["hasAccess"] == false && e["accessDeniedReason"] == "USAGE_LIMIT_EXCEEDED", "\(e.jsonText)")
        // An event without the field counts nothing.
        _ = try daemon.call("reportEvent", ["events": [usageEvent(customer, name, key: "c0", dimensions: ["device": "d1"])]])
        #expect(try daemon.entitlement(customer, feature)["currentUsage"] == "3")
    }

    @Test("idempotency keys: the same key twice in one reportEvent call; keys are scoped per customer and method family")
    func keyScopes() throws {
        let a = try daemon.newCustomer(), b = try daemon.newCustomer()
        let name = uniqueID("scope")
        let feature = try daemon.newMeteredFeature("scope", meter: ["eventName": .string(name), "aggregation": "COUNT"])
        let event = usageEvent(a, name, key: "k", dimensions: ["x": "1"])
        let result = try daemon.call("reportEvent", ["events": [event, event, usageEvent(a, name, key: "k", dimensions: ["x": "2"]), usageEvent(b, name, key: "k", dimensions: ["x": "1"])]])
        #expect(result["accepted"] == 2 && result["duplicates"] == 1, "\(result.jsonText)")
        #expect(result["rejected"]?.arrayValue?.map { "\($0["index"]?.intValue ?? -1):\($0["code"]?.intValue ?? 0)" } == ["2:1011"], "\(result.jsonText)")
        #expect(try daemon.history(a, feature, start: "2020-01-01T00:00:00Z", ["granularity": "MONTH"])["series"]?.arrayValue?.first?["total"] == "1")
        #expect(try daemon.history(b, feature, start: "2020-01-01T00:00:00Z", ["granularity": "MONTH"])["series"]?.arrayValue?.first?["total"] == "1")

        // The same reportUsage key for another customer is another command.
        let plain = try daemon.newMeteredFeature()
        let first = try daemon.call("reportUsage", ["customerId": .string(a), "featureId": .string(plain), "value": 1, "idempotencyKey": "k"])
        let second = try daemon.call("reportUsage", ["customerId": .string(b), "featureId": .string(plain), "value": 2, "idempotencyKey": "k"])
        #expect(first["duplicate"] == nil && second["duplicate"] == nil && second["currentUsage"] == "2", "\(second.jsonText)")
    }

    @Test("getUsageHistory of a UNIQUE_COUNT feature counts distinct values per point, whatever the other dimensions")
    func uniqueCountHistory() throws {
        let customer = try daemon.newCustomer()
        let name = uniqueID("visit")
        let feature = try daemon.newMeteredFeature("visitors", meter: ["eventName": .string(name), "aggregation": "UNIQUE_COUNT", "field": "user"])
        try daemon.subscribe(customer, entitlements: [["featureId": .string(feature), "hasUnlimitedUsage": true]])
        _ = try daemon.call("reportEvent", ["events": [
            usageEvent(customer, name, key: "1", dimensions: ["user": "u1", "device": "phone"], timestamp: "2026-10-01T10:00:00Z"),
            usageEvent(customer, name, key: "2", dimensions: ["user": "u1", "device": "laptop"], timestamp: "2026-10-01T10:05:00Z"),
            usageEvent(customer, name, key: "3", dimensions: ["user": "u2", "device": "phone"], timestamp: "2026-10-01T10:10:00Z"),
            usageEvent(customer, name, key: "4", dimensions: ["user": "u1", "device": "phone"], timestamp: "2026-10-02T10:00:00Z"),
        ]])
        #expect(try daemon.entitlement(customer, feature)["currentUsage"] == "2", "u1 and u2")
        let day = try daemon.history(customer, feature, start: "2026-10-01T00:00:00Z", ["endDate": "2026-10-03T00:00:00Z"])
        let points = day["series"]?.arrayValue?.first?["points"]?.arrayValue ?? []
        #expect(points.map { $0["value"] } == ["2", "1"], "Oct 1: u1, u2; Oct 2: u1 — \(day.jsonText)")
        let month = try daemon.history(customer, feature, start: "2026-10-01T00:00:00Z", ["granularity": "MONTH"])
        #expect(month["series"]?.arrayValue?.first?["points"]?.arrayValue?.first?["value"] == "2", "October: u1, u2 — \(month.jsonText)")
        let byDevice = try daemon.history(customer, feature, start: "2026-10-01T00:00:00Z", ["endDate": "2026-10-02T00:00:00Z", "groupBy": ["device"]])
        #expect(byDevice["series"]?.arrayValue?.map { $0["total"] } == ["1", "2"], "laptop: u1; phone: u1, u2 — \(byDevice.jsonText)")
    }

    @Test("UNIQUE_COUNT history is exact when a point merges cells: groupBy fewer dimensions, a month of days, several resources, the series total")
    func uniqueCountMergedCells() throws {
        let customer = try daemon.newCustomer()
        let name = uniqueID("active")
        let feature = try daemon.newMeteredFeature("actives", meter: ["eventName": .string(name), "aggregation": "UNIQUE_COUNT", "field": "user"])
        try daemon.subscribe(customer, entitlements: [["featureId": .string(feature), "hasUnlimitedUsage": true]])
        _ = try daemon.call("reportEvent", ["events": [
            // eu: u1 on two devices and two days, u2 once; us: u1 and u3.
            usageEvent(customer, name, key: "1", dimensions: ["user": "u1", "device": "phone", "region": "eu"], timestamp: "2026-10-01T10:00:00Z"),
            usageEvent(customer, name, key: "2", dimensions: ["user": "u1", "device": "laptop", "region": "eu"], timestamp: "2026-10-01T11:00:00Z"),
            usageEvent(customer, name, key: "3", dimensions: ["user": "u2", "device": "phone", "region": "eu"], timestamp: "2026-10-01T12:00:00Z"),
            usageEvent(customer, name, key: "4", dimensions: ["user": "u1", "device": "tablet", "region": "eu"], timestamp: "2026-10-02T10:00:00Z"),
            usageEvent(customer, name, key: "5", dimensions: ["user": "u1", "device": "phone", "region": "us"], timestamp: "2026-10-02T11:00:00Z"),
            usageEvent(customer, name, key: "6", dimensions: ["user": "u3", "device": "phone", "region": "us"], timestamp: "2026-10-02T12:00:00Z"),
        ]])
        let range: JSONObject = ["endDate": "2026-10-03T00:00:00Z"]
        func series(_ extra: JSONObject) throws -> [JSONValue] {
            var params = range
            for (key, value) in extra { params[key] = value }
            return try daemon.history(customer, feature, start: "2026-10-01T00:00:00Z", params)["series"]?.arrayValue ?? []
        }
        let byRegion = try series(["groupBy": ["region"]])
        #expect(byRegion.map { $0["total"] } == ["2", "2"], "eu: u1, u2; us: u1, u3 — \(byRegion)")
        #expect(byRegion.first?["points"]?.arrayValue?.map { $0["value"] } == ["2", "1"], "eu Oct 1: u1 (two devices), u2; Oct 2: u1 — \(byRegion)")
        #expect(byRegion.first?["eventCount"] == 4, "events still add up: \(byRegion)")
        let monthByRegion = try series(["groupBy": ["region"], "granularity": "MONTH"])
        #expect(monthByRegion.map { $0["points"]?.arrayValue?.first?["value"] } == ["2", "2"], "a month of day cells merged: \(monthByRegion)")
        let ungrouped = try series([:])
        #expect(ungrouped.first?["points"]?.arrayValue?.map { $0["value"] } == ["2", "2"], "Oct 1: u1, u2; Oct 2: u1, u3 — \(ungrouped)")
        #expect(ungrouped.first?["total"] == "3", "the total counts u1, u2, u3 once each over the range: \(ungrouped)")

        // MONTH over part of a month, ungrouped: counted from startDate's day up to endDate, as
        // grouped (and as every other aggregation); a whole month reads the month's cells.
        let partMonth = try daemon.history(customer, feature, start: "2026-10-02T00:00:00Z", ["endDate": "2026-10-03T00:00:00Z", "granularity": "MONTH"])
        #expect(partMonth["series"]?.arrayValue?.first?["points"]?.arrayValue?.map { $0["value"] } == ["2"], "Oct 2: u1, u3 — \(partMonth.jsonText)")
        let partByRegion = try daemon.history(customer, feature, start: "2026-10-02T00:00:00Z", ["endDate": "2026-10-03T00:00:00Z", "granularity": "MONTH", "groupBy": ["region"]])
        #expect(partByRegion["series"]?.arrayValue?.map { $0["total"] } == ["1", "2"], "eu: u1; us: u1, u3 — \(partByRegion.jsonText)")
        let untilOct2 = try daemon.history(customer, feature, start: "2026-10-01T00:00:00Z", ["endDate": "2026-10-02T00:00:00Z", "granularity": "MONTH"])
        #expect(untilOct2["series"]?.arrayValue?.first?["total"] == "2", "Oct 1 only: u1, u2 — \(untilOct2.jsonText)")
        let october = try daemon.history(customer, feature, start: "2026-10-01T00:00:00Z", ["endDate": "2026-11-01T00:00:00Z", "granularity": "MONTH"])
        #expect(october["series"]?.arrayValue?.first?["total"] == "3", "\(october.jsonText)")

        // Several resources: one user on two resources is one user when no resource is asked for.
        _ = try daemon.call("reportEvent", ["events": [
            usageEvent(customer, name, key: "7", dimensions: ["user": "u9"], timestamp: "2026-10-05T10:00:00Z", resourceId: "r1"),
            usageEvent(customer, name, key: "8", dimensions: ["user": "u9"], timestamp: "2026-10-05T11:00:00Z", resourceId: "r2"),
        ]])
        let day5 = try daemon.history(customer, feature, start: "2026-10-05T00:00:00Z", ["endDate": "2026-10-06T00:00:00Z"])
        #expect(day5["series"]?.arrayValue?.first?["total"] == "1", "\(day5.jsonText)")
        let r1 = try daemon.history(customer, feature, start: "2026-10-05T00:00:00Z", ["endDate": "2026-10-06T00:00:00Z", "resourceId": "r1"])
        #expect(r1["series"]?.arrayValue?.first?["total"] == "1", "\(r1.jsonText)")

        // Time travel answers through a replay in memory: the same numbers.
        let sequence = try daemon.lastSequence()
        let replayed = try daemon.history(customer, feature, start: "2026-10-01T00:00:00Z", ["endDate": "2026-10-03T00:00:00Z", "groupBy": ["region"], "asOf": ["sequence": .integer(Int64(sequence))]])
        #expect(replayed["series"]?.arrayValue == byRegion, "\(replayed.jsonText)")
    }

    // MARK: - reportUsageBulk and importRecords

    @Test("reportUsageBulk: each item succeeds or fails on its own; a retry answers duplicates")
    func bulk() throws {
        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature()
        let key = uniqueID("bulk")
        let usages: [JSONValue] = [
            ["customerId": .string(customer), "featureId": .string(feature), "value": 2, "idempotencyKey": .string(key + "-0")],
            ["customerId": .string(uniqueID("nocust")), "featureId": .string(feature), "value": 1],
            ["customerId": .string(customer), "featureId": .string(feature), "value": "abc"],
            ["customerId": .string(customer), "featureId": .string(feature), "value": 3, "idempotencyKey": .string(key + "-3")],
        ]
        let result = try daemon.call("reportUsageBulk", ["usages": .array(usages)])
        let items = result["results"]?.arrayValue ?? []
        #expect(items.count == 4, "\(result.jsonText)")
        guard items.count == 4 else { return }
        #expect(items[0]["currentUsage"] == "2" && items[3]["currentUsage"] == "5", "\(result.jsonText)")
        #expect(items[1].field("error.code") == 1001 && items[1]["index"] == 1)
        #expect(items[2].field("error.code") == -32602 && items[2].field("error.data.field") == "usages[2].value", "\(items[2].jsonText)")
        let sequence = try daemon.lastSequence()
        let retry = try daemon.call("reportUsageBulk", ["usages": [usages[0], usages[3]]])
        let retried = retry["results"]?.arrayValue ?? []
        #expect(retried.map { $0["duplicate"] } == [true, true], "\(retry.jsonText)")
        #expect(try daemon.lastSequence() == sequence)
        try daemon.expectInvalidParams("reportUsageBulk", ["usages": []], field: "usages")

        // A refusal by the ledger's rules (a negative DELTA on a credit-backed feature) names the
        // item's field the same way, in field and message.
        let currency = uniqueID("bulkcur"), credited = uniqueID("bulkcredit")
        _ = try daemon.call("defineCurrency", ["currencyId": .string(currency), "displayName": "Credits"])
        _ = try daemon.call("defineFeature", ["featureId": .string(credited), "type": "METERED", "creditCost": ["currencyId": .string(currency), "amountPerUnit": "1"]])
        let refused = try daemon.call("reportUsageBulk", ["usages": [
            ["customerId": .string(customer), "featureId": .string(credited), "value": "0.0000000000001"],
            ["customerId": .string(customer), "featureId": .string(credited), "value": -1],
        ]])
        let refusals = refused["results"]?.arrayValue ?? []
        #expect(refusals.map { $0.field("error.data.field") } == ["usages[0].value", "usages[1].value"], "\(refused.jsonText)")
        #expect(refusals.last?.field("error.message")?.stringValue?.hasPrefix("Invalid params: usages[1].value must not be negative") == true, "\(refused.jsonText)")
    }

    @Test("importRecords: STIGG, OCTANE, PAIGO and CLOUDEVENTS records; rejections by index; re-import is all duplicates")
    func importRecords() throws {
        let customer = try daemon.newCustomer()
        let feature = try daemon.newMeteredFeature()
        let name = uniqueID("ce")
        let counted = try daemon.newMeteredFeature("cecount", meter: ["eventName": .string(name), "aggregation": "COUNT"])
        let id = uniqueID("rec")
        let formats: [(format: String, records: [JSONValue], rejectedIndex: Int, field: String)] = [
            ("STIGG", [
                ["id": .string(id + "-s1"), "customerId": .string(customer), "featureId": .string(feature), "value": .number("1.5"),
                 "updateBehavior": "DELTA", "idempotencyKey": nil, "timestamp": "2026-10-10T00:00:00Z", "createdAt": "2026-10-10T00:00:01Z"],
                ["id": .string(id + "-s2"), "customerId": .string(customer), "featureId": .string(feature), "value": "2", "timestamp": "2026-10-10T00:00:00Z"],
            ], 1, "value"),
            ("OCTANE", [
                ["id": .string(id + "-o1"), "meter_name": .string(feature), "customer_name": .string(customer), "value": 2, "time": "2026-10-10T01:00:00Z", "labels": ["region": "us"]],
                ["meter_name": .string(feature), "customer_name": .string(customer), "value": 1, "colour": "red"],
            ], 1, "colour"),
            ("PAIGO", [
                ["timestamp": "2026-10-10T02:00:00Z", "customerId": .string(customer), "dimensionId": .string(feature), "recordValue": "0.5", "idempotencyKey": .string(id + "-p1"), "metadata": ["region": "eu"]],
                ["timestamp": "2026-10-10T02:00:00Z", "customerId": .string(customer), "dimensionId": .string(feature), "recordValue": .number("0.5")],
            ], 1, "recordValue"),
            ("CLOUDEVENTS", [
                ["specversion": "1.0", "id": .string(id + "-c1"), "source": "/tests", "type": .string(name), "subject": .string(customer), "time": "2026-10-10T03:00:00Z", "data": ["region": "eu"]],
                ["specversion": "0.3", "id": .string(id + "-c2"), "source": "/tests", "type": .string(name), "subject": .string(customer)],
            ], 1, "specversion"),
        ]
        for (format, records, rejectedIndex, field) in formats {
            let result = try daemon.call("importRecords", ["format": .string(format), "records": .array(records)])
            #expect(result["accepted"] == 1 && result["duplicates"] == 0, "\(format): \(result.jsonText)")
            let rejected = result["rejected"]?.arrayValue ?? []
            #expect(rejected.map { $0["index"]?.intValue } == [rejectedIndex] && rejected.first?["code"] == -32602, "\(format): \(result.jsonText)")
            #expect(rejected.first?["message"]?.stringValue?.contains(field) == true, "\(format): the message names \(field): \(result.jsonText)")
            let sequence = try daemon.lastSequence()
            let again = try daemon.call("importRecords", ["format": .string(format), "records": [records[0]]])
            #expect(again["accepted"] == 0 && again["duplicates"] == 1, "\(format) re-import: \(again.jsonText)")
            #expect(try daemon.lastSequence() == sequence)
        }
        let history = try daemon.history(customer, feature, start: "2026-10-10T00:00:00Z", ["endDate": "2026-10-11T00:00:00Z"])
        #expect(history["series"]?.arrayValue?.first?["total"] == "4", "1.5 + 2 + 0.5: \(history.jsonText)")
        let events = try daemon.history(customer, counted, start: "2026-10-10T00:00:00Z", ["endDate": "2026-10-11T00:00:00Z"])
        #expect(events["series"]?.arrayValue?.first?["total"] == "1", "\(events.jsonText)")
        try daemon.expectInvalidParams("importRecords", ["format": "CSV", "records": [["a": 1]]], field: "format")
    }

    @Test("importRecords: each usage record's measurement validates against the seed UsageMeasurement schema; the Octane records against the seed Measurement schema")
    func importedMeasurementsMatchSeedSchemas() throws {
        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature()
        let id = uniqueID("imp")
        let octane: [JSONValue] = [
            ["id": .string(id + "-o1"), "meter_name": .string(feature), "customer_name": .string(customer), "event_name": "batch",
             "value": 2, "time": "2026-10-12T01:00:00Z", "labels": ["region": "us"]],
            ["id": .string(id + "-o2"), "meter_name": .string(feature), "customer_name": .string(customer), "value": .number("0.125")],
        ]
        let imports: [(format: String, records: [JSONValue])] = [
            ("STIGG", [["id": .string(id + "-s1"), "customerId": .string(customer), "featureId": .string(feature), "value": 3,
                        "updateBehavior": "SET", "timestamp": "2026-10-12T00:00:00+02:00"]]),
            ("OCTANE", octane),
            ("PAIGO", [["timestamp": "2026-10-12T02:00:00Z", "customerId": .string(customer), "dimensionId": .string(feature),
                        "recordValue": "4.5", "idempotencyKey": .string(id + "-p1"), "metadata": ["region": "eu"]]]),
        ]
        var measurements: [JSONValue] = []
        for (format, records) in imports {
            let result = try daemon.call("importRecords", ["format": .string(format), "records": .array(records)])
            let items = result["measurements"]?.arrayValue ?? []
            #expect(items.map { $0["index"]?.intValue } == Array(0..<records.count), "\(format): one measurement per record: \(result.jsonText)")
            measurements += items.compactMap { $0["measurement"] }
            // A re-import answers the original measurements.
            let again = try daemon.call("importRecords", ["format": .string(format), "records": .array(records)])
            #expect(again["duplicates"]?.intValue == records.count, "\(format): \(again.jsonText)")
            #expect(again["measurements"] == result["measurements"], "\(format) re-import: \(again.jsonText)")
        }
        #expect(measurements.count == 4)
        #expect(measurements.map { $0["featureId"]?.stringValue } == Array(repeating: feature, count: 4))
        #expect(measurements.first?["updateBehavior"] == "SET" && measurements.first?["timestamp"] == "2026-10-11T22:00:00.000Z",
                "\(measurements.first?.jsonText ?? "")")

        let directory = TemporaryDirectory("import-schema")
        let stigg = try SchemaValidator.schema(fromSeed: SchemaValidator.seedsDirectory + "/000_9f99bf2e1c0d5f11.txt")
        for (measurement, verdict) in zip(measurements, try SchemaValidator.validate(schema: stigg, instances: measurements, in: directory)) {
            #expect(verdict == nil, "imported measurement \(measurement.jsonText) fails the seed UsageMeasurement schema: \(verdict ?? "")")
        }
        // The Octane records sent are real Octane Measurements, and a field outside that schema is
        // refused by both the schema and the daemon.
        let octaneSchema = try SchemaValidator.schema(fromSeed: SchemaValidator.seedsDirectory + "/001_f2ba1017b88290a6.txt")
        #expect(try parseJSON(octaneSchema)["title"] == "Measurement")
        let foreign: JSONValue = ["meter_name": .string(feature), "customer_name": .string(customer), "value": 1, "unit": "call"]
        let verdicts = try SchemaValidator.validate(schema: octaneSchema, instances: octane + [foreign], in: directory)
        #expect(verdicts.prefix(2).allSatisfy { $0 == nil }, "\(verdicts)")
        #expect(verdicts.last! != nil, "the schema check can fail")
        let refused = try daemon.call("importRecords", ["format": "OCTANE", "records": [foreign]])
        #expect(refused["rejected"]?.arrayValue?.first?["message"]?.stringValue?.contains("unit") == true, "\(refused.jsonText)")
    }

    @Test("importRecords: CloudEvents keys are unambiguous (source a/b id c is not source a id b/c); rejections name the record and the vendor's field")
    func importKeysAndFieldNames() throws {
        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature()
        let currency = uniqueID("imp-cur")
        _ = try daemon.call("defineCurrency", ["currencyId": .string(currency), "displayName": "C"])
        _ = try daemon.call("defineFeature", ["featureId": .string(feature + "-credit"), "type": "METERED", "creditCost": ["currencyId": .string(currency), "amountPerUnit": "1"]])
        let name = uniqueID("ce")
        _ = try daemon.call("defineFeature", ["featureId": .string(uniqueID("ce-count")), "type": "METERED", "meter": ["eventName": .string(name), "aggregation": "COUNT"]])
        _ = try daemon.call("defineFeature", ["featureId": .string(uniqueID("ce-sum")), "type": "METERED", "meter": ["eventName": .string(name), "aggregation": "SUM", "field": "tokens"]])
        func cloudEvent(source: String, id: String, data: JSONObject = ["status": "200"]) -> JSONValue {
            ["specversion": "1.0", "source": .string(source), "id": .string(id), "type": .string(name), "subject": .string(customer),
             "time": "2026-11-01T00:00:00Z", "data": .object(data)]
        }
        let first = try daemon.call("importRecords", ["format": "CLOUDEVENTS", "records": [cloudEvent(source: "/gw", id: "a/b")]])
        #expect(first["accepted"] == 1, "\(first.jsonText)")
        let second = try daemon.call("importRecords", ["format": "CLOUDEVENTS", "records": [cloudEvent(source: "/gw/a", id: "b"), cloudEvent(source: "/gw", id: "a%2Fb")]])
        #expect(second["accepted"] == 2 && second["duplicates"] == 0, "three events, not one: \(second.jsonText)")
        let again = try daemon.call("importRecords", ["format": "CLOUDEVENTS", "records": [cloudEvent(source: "/gw", id: "a/b")]])
        #expect(again["duplicates"] == 1, "\(again.jsonText)")
        // A "/" followed by a combining mark is one Character but still a "/" to escape: source
        // "/gw" id "b/\u{301}c" and source "/gw/b" id "\u{301}c" are two events.
        let marked = try daemon.call("importRecords", ["format": "CLOUDEVENTS", "records": [
            cloudEvent(source: "/gw", id: "b/\u{301}c"), cloudEvent(source: "/gw/b", id: "\u{301}c"),
        ]])
        #expect(marked["accepted"] == 2 && marked["duplicates"] == 0, "two events, not one: \(marked.jsonText)")

        // Too many keys are named by the vendor's field, not by the dimensions they become.
        let many = JSONObject((0..<33).map { ("k\($0)", JSONValue.string("v")) })
        let paigo: JSONValue = ["timestamp": "2026-11-30T00:00:00Z", "customerId": .string(customer), "dimensionId": .string(feature),
                                "recordValue": "1", "idempotencyKey": .string(uniqueID("p")), "metadata": .object(many)]
        let octane: JSONValue = ["id": .string(uniqueID("o")), "meter_name": .string(feature), "customer_name": .string(customer), "value": 1, "labels": .object(many)]
        let before = try daemon.lastSequence()
        for (format, record, field) in [("PAIGO", paigo, "records[0].metadata"), ("OCTANE", octane, "records[0].labels"),
                                        ("CLOUDEVENTS", cloudEvent(source: "/gw", id: uniqueID("x"), data: JSONObject((0..<35).map { ("k\($0)", JSONValue.string("v")) })), "records[0].data")] {
            let result = try daemon.call("importRecords", ["format": .string(format), "records": [record]])
            let message = result["rejected"]?.arrayValue?.first?["message"]?.stringValue ?? ""
            #expect(message.contains(field) && message.contains("at most 32"), "\(format): \(result.jsonText)")
        }
        // 32 labels and event_name are 33 dimensions; 32 data members and nulls are 32.
        let labels32 = JSONObject((0..<32).map { ("k\($0)", JSONValue.string("v")) })
        let withName: JSONValue = ["id": .string(uniqueID("o")), "meter_name": .string(feature), "customer_name": .string(customer), "value": 1,
                                   "event_name": "e", "labels": .object(labels32)]
        let named = try daemon.call("importRecords", ["format": "OCTANE", "records": [withName]])
        #expect(named["rejected"]?.arrayValue?.first?["message"]?.stringValue?.contains("records[0].labels") == true, "\(named.jsonText)")
        var withNulls = labels32
        for key in ["n1", "n2", "n3"] { withNulls[key] = .null }
        let nulls = try daemon.call("importRecords", ["format": "CLOUDEVENTS", "records": [cloudEvent(source: "/gw", id: uniqueID("n"), data: withNulls)]])
        #expect(nulls["accepted"] == 1, "\(nulls.jsonText)")
        let afterNulls = try daemon.lastSequence()
        // A rule of the ledger (a negative value on a credit-backed feature) names the record too.
        let credit = feature + "-credit"
        let negative: [(String, JSONValue, String)] = [
            ("STIGG", ["id": .string(uniqueID("s")), "customerId": .string(customer), "featureId": .string(credit), "value": -5, "timestamp": "2026-11-30T00:00:00Z"], "records[0].value "),
            ("PAIGO", ["timestamp": "2026-11-30T00:00:00Z", "customerId": .string(customer), "dimensionId": .string(credit), "recordValue": "-5", "idempotencyKey": .string(uniqueID("p"))], "records[0].recordValue "),
        ]
        for (format, record, named) in negative {
            let refused = try daemon.call("importRecords", ["format": .string(format), "records": [record]])
            #expect(refused["rejected"]?.arrayValue?.first?["message"]?.stringValue?.contains(named) == true, "\(format): \(refused.jsonText)")
        }
        // A meter's rule names the vendor's field too (CloudEvents data becomes the dimensions).
        let unsummable = try daemon.call("importRecords", ["format": "CLOUDEVENTS", "records": [cloudEvent(source: "/gw", id: uniqueID("t"), data: ["tokens": "lots"])]])
        let why = unsummable["rejected"]?.arrayValue?.first?["message"]?.stringValue ?? ""
        #expect(why.hasPrefix("Invalid params: records[0].data.tokens must be a decimal number"), "\(unsummable.jsonText)")
        #expect(try daemon.lastSequence() == afterNulls && afterNulls == before + 1)
    }

    @Test("importRecords: Octane reset_total restarts the running total once (not again on re-import); Paigo recordValue keeps every digit")
    func octaneResetAndPaigoPrecision() throws {
        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature()
        let id = uniqueID("oct")
        func octane(_ suffix: String, _ value: JSONValue, reset: Bool = false) -> JSONValue {
            var record: JSONObject = ["id": .string(id + suffix), "meter_name": .string(feature), "customer_name": .string(customer), "value": value]
            if reset { record["reset_total"] = true }
            return .object(record)
        }
        func currentUsage() throws -> JSONValue? {
            try daemon.call("reportUsage", ["customerId": .string(customer), "featureId": .string(feature), "value": 0])["currentUsage"]
        }
        _ = try daemon.call("importRecords", ["format": "OCTANE", "records": [octane("-1", 5), octane("-2", 7)]])
        #expect(try currentUsage() == "12")
        let reset = try daemon.call("importRecords", ["format": "OCTANE", "records": [octane("-3", 2, reset: true)]])
        #expect(reset["accepted"] == 1 && reset["measurements"]?.arrayValue?.first?.field("measurement.value") == 2, "\(reset.jsonText)")
        let sequence = try daemon.lastSequence()
        let events = try daemon.events(after: sequence - 2).map { $0["type"]?.stringValue ?? "" }
        #expect(events == ["USAGE_RESET", "USAGE_REPORTED"], "the reset is an event of its own: \(events)")
        #expect(try currentUsage() == "2", "reset_total restarts the total from zero, then adds the record's value")
        // Re-importing the reset record is a duplicate: no second reset.
        _ = try daemon.call("importRecords", ["format": "OCTANE", "records": [octane("-4", 1)]])
        let again = try daemon.call("importRecords", ["format": "OCTANE", "records": [octane("-3", 2, reset: true)]])
        #expect(again["duplicates"] == 1, "\(again.jsonText)")
        #expect(try currentUsage() == "3")
        // The reset is part of the record's payload: the same id with or without it conflicts.
        let before = try daemon.lastSequence()
        for record in [octane("-3", 2), octane("-4", 1, reset: true)] {
            let changed = try daemon.call("importRecords", ["format": "OCTANE", "records": [record]])
            #expect(changed["accepted"] == 0 && changed["duplicates"] == 0 && changed["rejected"]?.arrayValue?.first?["code"] == 1011, "\(changed.jsonText)")
        }
        #expect(try daemon.lastSequence() == before)
        #expect(try currentUsage() == "3")

        // Paigo sends values as strings: 20 integer and 12 fractional digits arrive exactly.
        let exact = "12345678901234567890.123456789012"
        let paigo: JSONValue = ["timestamp": "2026-11-30T23:59:59.999999Z", "customerId": .string(customer), "dimensionId": .string(feature),
                                "recordValue": .string(exact), "idempotencyKey": .string(id + "-p")]
        let imported = try daemon.call("importRecords", ["format": "PAIGO", "records": [paigo]])
        #expect(imported["accepted"] == 1, "\(imported.jsonText)")
        let total = try daemon.history(customer, feature, start: "2026-11-30T00:00:00Z", ["endDate": "2026-12-01T00:00:00Z"])
        #expect(total["series"]?.arrayValue?.first?["total"]?.stringValue == exact, "\(total.jsonText)")
        // Paigo's timestamp needs a 4-digit year and a zone.
        for bad in ["26-11-30T00:00:00Z", "2026-11-30T00:00:00"] {
            var record = paigo.objectValue ?? [:]
            record["timestamp"] = .string(bad)
            record["idempotencyKey"] = .string(uniqueID("p"))
            let result = try daemon.call("importRecords", ["format": "PAIGO", "records": [.object(record)]])
            #expect(result["accepted"] == 0 && result["rejected"]?.arrayValue?.first?["message"]?.stringValue?.contains("timestamp") == true, "\(bad): \(result.jsonText)")
        }
        _ = try daemon.expectLedgerConsistent()
    }

    // MARK: - getUsageHistory

    @Test("getUsageHistory: MINUTE/HOUR/DAY/MONTH, start/end bounds, groupBy 1 and 2 keys, resourceId, eventCount; listDimensionKeys")
    func history() throws {
        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature()
        func report(_ value: Int, _ timestamp: String, _ dimensions: JSONValue, resource: String? = nil) throws {
            var params: JSONObject = ["customerId": .string(customer), "featureId": .string(feature), "value": .integer(value), "timestamp": .string(timestamp), "dimensions": dimensions]
            if let resource { params["resourceId"] = .string(resource) }
            _ = try daemon.call("reportUsage", params)
        }
        try report(5, "2026-10-01T10:15:30Z", ["region": "us", "model": "a"])
        try report(3, "2026-10-01T10:45:00Z", ["region": "eu", "model": "a"])
        try report(2, "2026-10-01T11:05:00Z", ["region": "us", "model": "b"], resource: "r1")
        try report(7, "2026-10-02T09:00:00.5Z", ["region": "us", "model": "a"])
        try report(1, "2026-10-04T01:59:59.999+02:00", ["region": "eu", "model": "b"])  // 2026-10-03T23:59:59.999Z
        try report(100, "2026-09-30T23:00:00Z", ["region": "us"])
        try report(0, "2026-08-15T00:00:00Z", ["ModelVersion": "v2"])

        func points(_ series: JSONValue?) -> [String] {
            (series?["points"]?.arrayValue ?? []).map { "\($0["timestamp"]?.stringValue ?? "?")=\($0["value"]?.stringValue ?? "?")/\($0["eventCount"]?.intValue ?? -1)" }
        }
        func single(_ q: JSONValue) -> JSONValue? {
            let series = q["series"]?.arrayValue ?? []
            #expect(series.count == 1, "one series without groupBy: \(q.jsonText)")
            #expect(series.first?["tags"] == [], "\(q.jsonText)")
            return series.first
        }

        let day = try daemon.history(customer, feature, start: "2026-10-01T00:00:00Z", ["endDate": "2026-10-04T00:00:00Z", "granularity": "DAY"])
        #expect(points(single(day)) == ["2026-10-01T00:00:00.000Z=10/3", "2026-10-02T00:00:00.000Z=7/1", "2026-10-03T00:00:00.000Z=1/1"], "\(day.jsonText)")
        #expect(day["series"]?.arrayValue?.first?["total"] == "18" && day["series"]?.arrayValue?.first?["eventCount"] == 5, "\(day.jsonText)")

        // Default granularity is DAY; no endDate = up to now.
        let open = try daemon.history(customer, feature, start: "2026-09-30T12:00:00Z")
        #expect(points(single(open)) == ["2026-09-30T00:00:00.000Z=100/1", "2026-10-01T00:00:00.000Z=10/3", "2026-10-02T00:00:00.000Z=7/1", "2026-10-03T00:00:00.000Z=1/1"], "\(open.jsonText)")

        // [startDate, endDate): the day of endDate is not in.
        let bounded = try daemon.history(customer, feature, start: "2026-10-02T00:00:00Z", ["endDate": "2026-10-03T00:00:00Z"])
        #expect(points(single(bounded)) == ["2026-10-02T00:00:00.000Z=7/1"], "\(bounded.jsonText)")

        let hour = try daemon.history(customer, feature, start: "2026-10-01T00:00:00Z", ["endDate": "2026-10-02T00:00:00Z", "granularity": "HOUR"])
        #expect(points(single(hour)) == ["2026-10-01T10:00:00.000Z=8/2", "2026-10-01T11:00:00.000Z=2/1"], "\(hour.jsonText)")

        let minute = try daemon.history(customer, feature, start: "2026-10-01T10:00:00Z", ["endDate": "2026-10-01T11:00:00Z", "granularity": "MINUTE"])
        #expect(points(single(minute)) == ["2026-10-01T10:15:00.000Z=5/1", "2026-10-01T10:45:00.000Z=3/1"], "\(minute.jsonText)")

        let month = try daemon.history(customer, feature, start: "2026-09-01T00:00:00Z", ["granularity": "MONTH"])
        #expect(points(single(month)) == ["2026-09-01T00:00:00.000Z=100/1", "2026-10-01T00:00:00.000Z=18/5"], "\(month.jsonText)")

        let empty = try daemon.history(customer, feature, start: "2025-01-01T00:00:00Z", ["endDate": "2025-02-01T00:00:00Z"])
        #expect(points(single(empty)) == [], "\(empty.jsonText)")

        func grouped(_ q: JSONValue) -> [String: [String]] {
            var result: [String: [String]] = [:]
            for series in q["series"]?.arrayValue ?? [] {
                let tags = (series["tags"]?.arrayValue ?? []).map { "\($0["key"]?.stringValue ?? "?")=\($0["value"]?.stringValue ?? "?")" }.joined(separator: ",")
                result[tags] = points(series)
            }
            return result
        }
        let byRegion = try daemon.history(customer, feature, start: "2026-10-01T00:00:00Z", ["endDate": "2026-10-04T00:00:00Z", "groupBy": ["region"]])
        #expect(grouped(byRegion) == [
            "region=eu": ["2026-10-01T00:00:00.000Z=3/1", "2026-10-03T00:00:00.000Z=1/1"],
            "region=us": ["2026-10-01T00:00:00.000Z=7/2", "2026-10-02T00:00:00.000Z=7/1"],
        ], "\(byRegion.jsonText)")

        let byTwo = try daemon.history(customer, feature, start: "2026-10-01T00:00:00Z", ["endDate": "2026-10-04T00:00:00Z", "groupBy": ["region", "model"]])
        #expect(grouped(byTwo) == [
            "region=eu,model=a": ["2026-10-01T00:00:00.000Z=3/1"],
            "region=eu,model=b": ["2026-10-03T00:00:00.000Z=1/1"],
            "region=us,model=a": ["2026-10-01T00:00:00.000Z=5/1", "2026-10-02T00:00:00.000Z=7/1"],
            "region=us,model=b": ["2026-10-01T00:00:00.000Z=2/1"],
        ], "\(byTwo.jsonText)")
        let totals = (byTwo["series"]?.arrayValue ?? []).map { $0["total"]?.stringValue ?? "?" }
        #expect(totals == ["3", "1", "12", "2"], "series sorted by tags, each with its total: \(byTwo.jsonText)")

        let resource = try daemon.history(customer, feature, start: "2026-10-01T00:00:00Z", ["resourceId": "r1"])
        #expect(points(single(resource)) == ["2026-10-01T00:00:00.000Z=2/1"], "\(resource.jsonText)")

        // Errors are errors here (unlike getEntitlement).
        expectRPCError(code: 1001) { _ = try daemon.history(uniqueID("nocust"), feature, start: "2026-10-01T00:00:00Z") }
        expectRPCError(code: 1002) { _ = try daemon.history(customer, uniqueID("nofeat"), start: "2026-10-01T00:00:00Z") }
        try daemon.expectInvalidParams("getUsageHistory", ["customerId": .string(customer), "featureId": .string(feature), "startDate": "2026-10-02T00:00:00Z", "endDate": "2026-10-01T00:00:00Z"], field: "endDate")

        func keys(_ search: String?) throws -> Set<String> {
            var params: JSONObject = ["customerId": .string(customer)]
            if let search { params["search"] = .string(search) }
            return Set(try daemon.call("listDimensionKeys", params)["keys"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        }
        #expect(try keys(nil) == ["region", "model", "ModelVersion"])
        #expect(try keys("MODEL") == ["model", "ModelVersion"])
        #expect(try keys("gIo") == ["region"])
        #expect(try keys("version") == ["ModelVersion"])
        #expect(try keys("zzz") == [])
        try daemon.expectRejected("listDimensionKeys", ["customerId": .string(uniqueID("nocust"))], code: 1001, reason: "CUSTOMER_NOT_FOUND")
        let fresh = try daemon.newCustomer()
        #expect(try daemon.call("listDimensionKeys", ["customerId": .string(fresh)])["keys"] == [], "a customer without usage has no keys")
    }

    // MARK: - Entitlements

    @Test("plan limit with MONTH reset: access until usage + requestedUsage exceeds the limit; the period is the UTC calendar month")
    func monthlyLimit() throws {
        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature()
        try daemon.subscribe(customer, entitlements: [["featureId": .string(feature), "usageLimit": 10, "resetPeriod": "MONTH"]])
        let month = utcMonthBounds()
        var e = try daemon.entitlement(customer, feature)
        #expect(e["hasAccess"] == true && e["accessDeniedReason"] == nil && e["isUnlimited"] == false, "\(e.jsonText)")
        #expect(e["usageLimit"] == "10" && e["currentUsage"] == "0" && e["requestedUsage"] == "1" && e["resetPeriod"] == "MONTH", "\(e.jsonText)")
        #expect(e["usagePeriodStart"] == .string(month.start) && e["usagePeriodEnd"] == .string(month.end), "\(e.jsonText)")

        let reported = try daemon.call("reportUsage", ["customerId": .string(customer), "featureId": .string(feature), "value": 8])
        #expect(reported["currentUsage"] == "8" && reported["usageLimit"] == "10" && reported["usagePeriodEnd"] == .string(month.end), "\(reported.jsonText)")
        // Usage recorded in an earlier month does not count in this one.
        _ = try daemon.call("reportUsage", ["customerId": .string(customer), "featureId": .string(feature), "value": 50, "timestamp": "2026-01-15T00:00:00Z"])

        e = try daemon.entitlement(customer, feature, requested: 2)
        #expect(e["hasAccess"] == true && e["currentUsage"] == "8" && e["requestedUsage"] == "2", "8 + 2 = 10 is within the limit: \(e.jsonText)")
        e = try daemon.entitlement(customer, feature, requested: "2.000000000001")
        #expect(e["hasAccess"] == false && e["accessDeniedReason"] == "USAGE_LIMIT_EXCEEDED", "\(e.jsonText)")
        e = try daemon.entitlement(customer, feature, requested: 3)
        #expect(e["hasAccess"] == false && e["accessDeniedReason"] == "USAGE_LIMIT_EXCEEDED" && e["currentUsage"] == "8", "\(e.jsonText)")

        _ = try daemon.call("reportUsage", ["customerId": .string(customer), "featureId": .string(feature), "value": 2])
        e = try daemon.entitlement(customer, feature)
        #expect(e["hasAccess"] == false && e["accessDeniedReason"] == "USAGE_LIMIT_EXCEEDED" && e["currentUsage"] == "10", "\(e.jsonText)")
        e = try daemon.entitlement(customer, feature, requested: 0)
        #expect(e["hasAccess"] == true, "10 + 0 ≤ 10: \(e.jsonText)")
        try daemon.expectInvalidParams("getEntitlement", ["customerId": .string(customer), "featureId": .string(feature), "requestedUsage": -1], field: "requestedUsage")
    }

    @Test("unlimited, no subscription, canceled subscription, unknown customer or feature: reasons, not errors")
    func accessReasons() throws {
        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature()
        var e = try daemon.entitlement(customer, feature)
        #expect(e["hasAccess"] == false && e["accessDeniedReason"] == "NO_FEATURE_ENTITLEMENT", "\(e.jsonText)")

        let (_, subscription) = try daemon.subscribe(customer, entitlements: [["featureId": .string(feature), "hasUnlimitedUsage": true]])
        _ = try daemon.call("reportUsage", ["customerId": .string(customer), "featureId": .string(feature), "value": "1000000"])
        e = try daemon.entitlement(customer, feature, requested: "99999999999999999999")
        #expect(e["hasAccess"] == true && e["isUnlimited"] == true && e["usageLimit"] == nil && e["currentUsage"] == "1000000", "\(e.jsonText)")

        _ = try daemon.call("cancelSubscription", ["subscriptionId": .string(subscription)])
        e = try daemon.entitlement(customer, feature)
        #expect(e["hasAccess"] == false && e["accessDeniedReason"] == "NO_FEATURE_ENTITLEMENT", "after cancel: \(e.jsonText)")

        e = try daemon.entitlement(uniqueID("nocust"), feature)
        #expect(e["hasAccess"] == false && e["accessDeniedReason"] == "CUSTOMER_NOT_FOUND", "\(e.jsonText)")
        e = try daemon.entitlement(customer, uniqueID("nofeat"))
        #expect(e["hasAccess"] == false && e["accessDeniedReason"] == "FEATURE_NOT_FOUND", "\(e.jsonText)")

        // BOOLEAN: access without usage.
        let flag = uniqueID("flag")
        _ = try daemon.call("defineFeature", ["featureId": .string(flag), "type": "BOOLEAN"])
        let other = try daemon.newCustomer()
        try daemon.subscribe(other, entitlements: [["featureId": .string(flag)], ["featureId": .string(feature), "hasAccess": false]])
        e = try daemon.entitlement(other, flag)
        #expect(e["hasAccess"] == true, "\(e.jsonText)")
        e = try daemon.entitlement(other, feature)
        #expect(e["hasAccess"] == false && e["accessDeniedReason"] == "NO_FEATURE_ENTITLEMENT", "hasAccess false in the plan: \(e.jsonText)")
    }

    @Test("promotional entitlements: the more generous of promotion and plan wins; a new grant replaces the old; one that has already ended is refused; revoke restores the plan")
    func promotional() throws {
        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature(), extra = try daemon.newMeteredFeature()
        try daemon.subscribe(customer, entitlements: [["featureId": .string(feature), "usageLimit": 10, "resetPeriod": "MONTH"]])
        _ = try daemon.call("reportUsage", ["customerId": .string(customer), "featureId": .string(feature), "value": 10])
        var e = try daemon.entitlement(customer, feature)
        #expect(e["hasAccess"] == false && e["usageLimit"] == "10", "\(e.jsonText)")

        func grant(_ params: JSONObject, feature id: String) throws -> JSONValue {
            var p: JSONObject = ["customerId": .string(customer), "featureId": .string(id)]
            for (k, v) in params { p[k] = v }
            return try daemon.call("grantPromotionalEntitlement", p)
        }
        let granted = try grant(["usageLimit": 100, "resetPeriod": "MONTH"], feature: feature)
        #expect(granted["usageLimit"] == "100", "\(granted.jsonText)")
        e = try daemon.entitlement(customer, feature)
        #expect(e["hasAccess"] == true && e["usageLimit"] == "100" && e["currentUsage"] == "10", "\(e.jsonText)")

        _ = try grant(["usageLimit": 50, "endDate": "2099-01-01T00:00:00Z"], feature: feature)
        e = try daemon.entitlement(customer, feature)
        #expect(e["usageLimit"] == "50" && e["hasAccess"] == true, "the second grant replaces the first: \(e.jsonText)")

        _ = try grant(["hasUnlimitedUsage": true], feature: feature)
        e = try daemon.entitlement(customer, feature, requested: 1_000_000)
        #expect(e["isUnlimited"] == true && e["hasAccess"] == true, "\(e.jsonText)")

        try daemon.expectCreditRefusal(code: -32602, field: "endDate") {
            _ = try grant(["usageLimit": 1000, "endDate": "2026-01-01T00:00:00Z"], feature: feature)
        }
        e = try daemon.entitlement(customer, feature, requested: 1_000_000)
        #expect(e["isUnlimited"] == true, "a grant that has already ended is refused and replaces nothing: \(e.jsonText)")

        _ = try grant(["usageLimit": 5], feature: feature)
        e = try daemon.entitlement(customer, feature)
        #expect(e["usageLimit"] == "10" && e["hasAccess"] == false && e["source"]?.stringValue?.hasPrefix("PLAN:") == true,
                "a promotion less generous than the plan: the plan wins: \(e.jsonText)")

        _ = try grant(["usageLimit": 30], feature: feature)
        _ = try grant(["usageLimit": 5], feature: extra)
        let listed = try daemon.call("getEntitlements", ["customerId": .string(customer)])["entitlements"]?.arrayValue ?? []
        let byFeature = Dictionary(listed.compactMap { item in item["featureId"]?.stringValue.map { ($0, item) } }, uniquingKeysWith: { a, _ in a })
        #expect(Set(byFeature.keys) == [feature, extra], "\(listed)")
        #expect(byFeature[feature]?["usageLimit"] == "30" && byFeature[feature]?["currentUsage"] == "10", "\(listed)")
        #expect(byFeature[extra]?["usageLimit"] == "5" && byFeature[extra]?["hasAccess"] == true, "a grant without a plan gives access: \(listed)")

        _ = try daemon.call("revokePromotionalEntitlement", ["customerId": .string(customer), "featureId": .string(feature)])
        e = try daemon.entitlement(customer, feature)
        #expect(e["usageLimit"] == "10" && e["hasAccess"] == false, "back to the plan: \(e.jsonText)")
        _ = try daemon.call("revokePromotionalEntitlement", ["customerId": .string(customer), "featureId": .string(extra)])
        e = try daemon.entitlement(customer, extra)
        #expect(e["accessDeniedReason"] == "NO_FEATURE_ENTITLEMENT", "\(e.jsonText)")
        try daemon.expectRejected("revokePromotionalEntitlement", ["customerId": .string(customer), "featureId": .string(extra)], code: 1013, reason: "INVALID_STATE")
        try daemon.expectRejected("revokePromotionalEntitlement", ["customerId": .string(uniqueID("nocust")), "featureId": .string(feature)], code: 1001, reason: "CUSTOMER_NOT_FOUND")
        try daemon.expectRejected("revokePromotionalEntitlement", ["customerId": .string(customer), "featureId": .string(uniqueID("nofeat"))], code: 1002, reason: "FEATURE_NOT_FOUND")
        try daemon.expectRejected("revokePromotionalEntitlement", ["customerId": .string(uniqueID("nocust")), "featureId": .string(uniqueID("nofeat"))], code: 1001, reason: "CUSTOMER_NOT_FOUND")
        try daemon.expectRejected("grantPromotionalEntitlement", ["customerId": .string(uniqueID("nocust")), "featureId": .string(feature), "usageLimit": 1], code: 1001, reason: "CUSTOMER_NOT_FOUND")
        try daemon.expectRejected("grantPromotionalEntitlement", ["customerId": .string(customer), "featureId": .string(uniqueID("nofeat")), "usageLimit": 1], code: 1002, reason: "FEATURE_NOT_FOUND")
        try daemon.expectLedgerConsistent()
    }

    @Test("a promotion's endDate ends it in time: granted until then, the plans' entitlement after; an endDate at or before now is refused")
    func promotionEndDate() throws {
        // Its own daemon: the test clock moves forward for this test alone.
        let t0 = "2031-04-10T12:00:00.000Z"
        let daemon = try LiveDaemon(extraArguments: ["--test-clock", "--test-clock-start", t0]).start()
        let clock = CreditClock(daemon, start: t0)
        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature()
        try daemon.subscribe(customer, entitlements: [["featureId": .string(feature), "usageLimit": 10]])
        let ends = clock.at(3600)
        let granted = try daemon.call("grantPromotionalEntitlement", [
            "customerId": .string(customer), "featureId": .string(feature), "hasUnlimitedUsage": true, "endDate": .string(ends),
        ])
        #expect(granted["endDate"] == .string(ends), "\(granted.jsonText)")
        #expect(try daemon.entitlement(customer, feature, requested: 1_000)["isUnlimited"] == true)
        try clock.advance(3599)
        #expect(try daemon.entitlement(customer, feature, requested: 1_000)["isUnlimited"] == true, "still on a second before its end")
        try clock.advance(1)
        let after = try daemon.entitlement(customer, feature, requested: 1_000)
        #expect(after["isUnlimited"] == false && after["usageLimit"] == "10" && after["accessDeniedReason"] == "USAGE_LIMIT_EXCEEDED", "\(after.jsonText)")
        for endDate in [clock.nowText, clock.at(-1)] {
            try daemon.expectCreditRefusal(code: -32602, field: "endDate") {
                _ = try daemon.call("grantPromotionalEntitlement", [
                    "customerId": .string(customer), "featureId": .string(feature), "hasUnlimitedUsage": true, "endDate": .string(endDate),
                ])
            }
        }
        try daemon.expectLedgerConsistent()
    }

    @Test("a subscription grants its plan only from its startDate, and a TRIAL of a plan with trialDays only until startDate + trialDays days")
    func subscriptionDates() throws {
        // Its own daemon: the test clock moves forward for this test alone.
        let t0 = "2031-03-10T12:00:00.000Z"
        let daemon = try LiveDaemon(extraArguments: ["--test-clock", "--test-clock-start", t0]).start()
        let clock = CreditClock(daemon, start: t0)
        let day = 86_400.0
        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature()
        func provision(_ customerId: String, trialDays: Int?, status: String, startDate: String) throws -> String {
            let plan = uniqueID("plan")
            var params: JSONObject = ["planId": .string(plan), "displayName": "P", "entitlements": [["featureId": .string(feature), "usageLimit": 10, "resetPeriod": "MONTH"]]]
            if let trialDays { params["trialDays"] = .integer(trialDays) }
            _ = try daemon.call("definePlan", params)
            let subscription = try daemon.call("provisionSubscription", [
                "customerId": .string(customerId), "planId": .string(plan), "status": .string(status), "startDate": .string(startDate),
            ])
            #expect(subscription["startDate"] == .string(startDate), "\(subscription.jsonText)")
            return plan
        }
        func listed(_ customerId: String) throws -> [String] {
            try daemon.call("getEntitlements", ["customerId": .string(customerId)])["entitlements"]?.arrayValue?.compactMap { $0["featureId"]?.stringValue } ?? []
        }

        // A future startDate: nothing until the clock reaches it.
        let future = try provision(customer, trialDays: nil, status: "ACTIVE", startDate: clock.at(2 * day))
        var e = try daemon.entitlement(customer, feature)
        #expect(e["hasAccess"] == false && e["accessDeniedReason"] == "NO_FEATURE_ENTITLEMENT", "not started yet: \(e.jsonText)")
        #expect(try listed(customer).isEmpty)
        let usage = try daemon.call("reportUsage", ["customerId": .string(customer), "featureId": .string(feature), "value": 1])
        #expect(usage["usageLimit"] == nil, "no limit before the start: \(usage.jsonText)")
        try clock.advance(2 * day - 1)
        #expect(try daemon.entitlement(customer, feature)["accessDeniedReason"] == "NO_FEATURE_ENTITLEMENT", "a second before the start")
        try clock.advance(1)
        e = try daemon.entitlement(customer, feature)
        #expect(e["hasAccess"] == true && e["usageLimit"] == "10" && e["source"] == .string("PLAN:\(future)"), "from startDate on: \(e.jsonText)")
        #expect(try listed(customer) == [feature])

        // A TRIAL of a plan with trialDays 1: access on day 0, none from day 1. An ACTIVE
        // subscription to a plan with trialDays is not limited by them.
        let trialCustomer = try daemon.newCustomer(), activeCustomer = try daemon.newCustomer()
        let trial = try provision(trialCustomer, trialDays: 1, status: "TRIAL", startDate: clock.nowText)
        let active = try provision(activeCustomer, trialDays: 1, status: "ACTIVE", startDate: clock.nowText)
        e = try daemon.entitlement(trialCustomer, feature)
        #expect(e["hasAccess"] == true && e["source"] == .string("PLAN:\(trial)"), "day 0 of the trial: \(e.jsonText)")
        try clock.advance(day - 1)
        #expect(try daemon.entitlement(trialCustomer, feature)["hasAccess"] == true, "the trial's last second")
        try clock.advance(1)
        e = try daemon.entitlement(trialCustomer, feature)
        #expect(e["hasAccess"] == false && e["accessDeniedReason"] == "NO_FEATURE_ENTITLEMENT", "the trial ended: \(e.jsonText)")
        #expect(try listed(trialCustomer).isEmpty)
        try clock.advance(30 * day)
        e = try daemon.entitlement(activeCustomer, feature)
        #expect(e["hasAccess"] == true && e["source"] == .string("PLAN:\(active)"), "ACTIVE ignores trialDays: \(e.jsonText)")
        try daemon.expectLedgerConsistent()
        #expect(try daemon.terminate() == 0)
    }

    @Test("the last periods of 9999 end at 10000-01-01, which no 4-digit year names: results leave usagePeriodEnd out; a limited entitlement without a limit shows usageLimit 0")
    func periodsAtTheEndOfTime() throws {
        let daemon = try LiveDaemon(extraArguments: ["--test-clock", "--test-clock-start", "9999-12-31T12:00:00Z"]).start()
        let customer = try daemon.newCustomer(), feature = try daemon.newMeteredFeature(), open = try daemon.newMeteredFeature()
        let plan = uniqueID("plan")
        _ = try daemon.call("definePlan", ["planId": .string(plan), "displayName": "P", "entitlements": [
            ["featureId": .string(feature), "usageLimit": 10, "resetPeriod": "YEAR"], ["featureId": .string(open)],
        ]])
        _ = try daemon.call("provisionSubscription", ["customerId": .string(customer), "planId": .string(plan)])
        let usage = try daemon.call("reportUsage", ["customerId": .string(customer), "featureId": .string(feature), "value": 1])
        #expect(usage["usageLimit"] == "10" && usage["usagePeriodEnd"] == nil, "\(usage.jsonText)")
        let e = try daemon.entitlement(customer, feature)
        #expect(e["usagePeriodStart"] == "9999-01-01T00:00:00.000Z" && e["usagePeriodEnd"] == nil && e["currentUsage"] == "1", "\(e.jsonText)")
        let zero = try daemon.entitlement(customer, open)
        #expect(zero["hasAccess"] == false && zero["accessDeniedReason"] == "USAGE_LIMIT_EXCEEDED" && zero["usageLimit"] == "0", "\(zero.jsonText)")
        let reported = try daemon.call("reportUsage", ["customerId": .string(customer), "featureId": .string(open), "value": 1])
        #expect(reported["usageLimit"] == "0", "reportUsage shows the limit as getEntitlement does: \(reported.jsonText)")
        // An auto-recharge top-up whose expiry period would end in year 10000 expires at the last
        // instant a timestamp names.
        let f = try CreditFixture(daemon)
        try f.grant("20")
        _ = try daemon.call("setAutoRecharge", [
            "customerId": .string(f.customer), "currencyId": .string(f.currency), "isEnabled": true,
            "thresholdValue": "10", "targetBalance": "100", "grantExpirationPeriod": "MONTH",
        ])
        _ = try daemon.call("reportUsage", ["customerId": .string(f.customer), "featureId": .string(f.feature), "value": 15])
        let grants = try daemon.call("getCreditGrants", ["customerId": .string(f.customer)])["grants"]?.arrayValue ?? []
        let topUp = grants.first { $0["sourceType"] == "AUTO_RECHARGE" }
        #expect(topUp?["expireAt"] == "9999-12-31T23:59:59.999999Z", "\(grants)")
        // At the very last instant a top-up cannot expire later than it is made: it has no expiry,
        // and the balance in the reply is the balance a read at that instant finds.
        _ = try daemon.call("debug.setClock", ["now": "9999-12-31T23:59:59.999999Z"])
        let last = try daemon.call("reportUsage", ["customerId": .string(f.customer), "featureId": .string(f.feature), "value": 95])
        let read = try daemon.call("getCreditBalance", ["customerId": .string(f.customer), "currencyId": .string(f.currency)])
        #expect(last.field("credit.autoRecharged") != nil && last.field("credit.balance") == read["balances"]?.arrayValue?.first?["balance"], "\(last.jsonText) / \(read.jsonText)")
        let topUps = try daemon.call("getCreditGrants", ["customerId": .string(f.customer)])["grants"]?.arrayValue?.filter { $0["sourceType"] == "AUTO_RECHARGE" } ?? []
        #expect(topUps.count == 2 && topUps.last?["expireAt"] == nil && topUps.last?["status"] == "ACTIVE", "\(topUps.map(\.jsonText))")
        // getCreditUsage through now (the last hour of 9999): its end, 10000-01-01, is left out.
        let creditUsage = try daemon.call("getCreditUsage", ["customerId": .string(f.customer)])
        #expect(creditUsage["endDate"] == nil && creditUsage["startDate"]?.stringValue?.hasPrefix("9999-") == true, "\(creditUsage.jsonText.prefix(300))")
        #expect(try daemon.terminate() == 0)
    }

    @Test("a raw event whose SUM would pass the largest amount in any cell is refused (1013, on its own), so every granularity and the totals count the same events")
    func sumBeyondRange() throws {
        // The largest value taken; 170,141 of them fit an amount (~1.7 × 10^26), one more does not.
        let big = "999999999999999999999.999999999999", fitting = 170_141
        let customer = try daemon.newCustomer()
        let event = uniqueID("big.ev")
        let summed = try daemon.newMeteredFeature("big-sum", meter: ["eventName": .string(event), "aggregation": "SUM", "field": "n"])
        // Spread over the hours of one day: each HOUR and MINUTE cell holds a few thousand; the
        // DAY cell and the totals would pass the range with the last one.
        let connection = try daemon.connect()
        defer { connection.close() }
        var accepted = 0
        var rejected: [JSONValue] = []
        let perCall = 4000  // ~700 KB a line, under the default 1 MiB frame
        for first in stride(from: 0, through: fitting, by: perCall) {
            let call = first / perCall
            let events: [JSONValue] = (first..<min(first + perCall, fitting + 1)).map { i in
                ["customerId": .string(customer), "eventName": .string(event), "idempotencyKey": .string("big-\(i)"),
                 "timestamp": .string(String(format: "2026-11-10T%02d:%02d:00Z", i % 24, (i / 24) % 60)), "dimensions": ["n": .string(big)]]
            }
            let result = try connection.call("reportEvent", ["events": .array(events)])
            accepted += result["accepted"]?.intValue ?? 0
            rejected += (result["rejected"]?.arrayValue ?? []).map { ["call": .integer(call), "rejection": $0] }
        }
        #expect(accepted == fitting && rejected.count == 1, "\(accepted) accepted, rejected \(rejected.map(\.jsonText))")
        let refusal = rejected.first?["rejection"]
        #expect(refusal?["code"] == 1013 && refusal?["message"]?.stringValue?.contains("would exceed the representable range") == true, "\(refusal?.jsonText ?? "none")")
        var totals: Set<String> = []
        for granularity in ["HOUR", "DAY", "MONTH"] {
            let history = try daemon.history(customer, summed, start: "2026-11-01T00:00:00Z", ["granularity": .string(granularity)])
            let series = history["series"]?.arrayValue?.first
            #expect(series?["eventCount"]?.intValue == fitting, "\(granularity): \(String(history.jsonText.prefix(300)))")
            totals.insert(series?["total"]?.stringValue ?? "?")
        }
        #expect(totals.count == 1, "one total at every granularity: \(totals)")

        let verified = try daemon.call("verifyLedger")
        #expect(verified["projectionsMatch"] == true, "\(verified.jsonText.prefix(600))")
    }

    @Test("dimension values that differ only in their Unicode normalization are two values: meter filters, history groups, UNIQUE_COUNT and credit usage groups all tell them apart")
    func lookAlikeDimensionValues() throws {
        let composed = "\u{E9}", decomposed = "e\u{301}"
        let customer = try daemon.newCustomer()
        let event = uniqueID("accent.ev")
        let equals = try daemon.newMeteredFeature("acc-eq", meter: ["eventName": .string(event), "aggregation": "COUNT", "filters": [["key": "region", "op": "EQUALS", "values": [.string(composed)]]]])
        let notEquals = try daemon.newMeteredFeature("acc-ne", meter: ["eventName": .string(event), "aggregation": "COUNT", "filters": [["key": "region", "op": "NOT_EQUALS", "values": [.string(composed)]]]])
        let isIn = try daemon.newMeteredFeature("acc-in", meter: ["eventName": .string(event), "aggregation": "COUNT", "filters": [["key": "region", "op": "IN", "values": [.string(decomposed), "x"]]]])
        let unique = try daemon.newMeteredFeature("acc-uq", meter: ["eventName": .string(event), "aggregation": "UNIQUE_COUNT", "field": "region"])
        let all = try daemon.newMeteredFeature("acc-all", meter: ["eventName": .string(event), "aggregation": "COUNT"])
        let events: [JSONValue] = [composed, decomposed, decomposed].enumerated().map { i, region in
            usageEvent(customer, event, key: uniqueID("acc-\(i)"), dimensions: ["region": region])
        }
        let sent = try daemon.call("reportEvent", ["events": .array(events)])
        #expect(sent["accepted"] == 3, "\(sent.jsonText)")
        for (feature, count) in [(equals, "1"), (notEquals, "2"), (isIn, "2"), (unique, "2")] {
            #expect(try daemon.entitlement(customer, feature)["currentUsage"] == .string(count), "\(feature)")
        }
        // Grouped by region: one series per value's bytes, composed (U+00E9) after "e…" by bytes.
        let grouped = try daemon.history(customer, all, start: "2000-01-01T00:00:00Z", ["granularity": "MONTH", "groupBy": ["region"]])
        let series = grouped["series"]?.arrayValue ?? []
        #expect(series.map { $0["tags"]?.arrayValue?.first?["value"]?.stringValue.map { Array($0.utf8) } ?? [] } == [Array(decomposed.utf8), Array(composed.utf8)], "\(grouped.jsonText)")
        #expect(series.map { $0["eventCount"] } == [2, 1] && series.map { $0["total"] } == ["2", "1"], "\(grouped.jsonText)")

        // Credit usage grouped by the dimension: two groups too.
        let currency = uniqueID("acc-cur")
        _ = try daemon.call("defineCurrency", ["currencyId": .string(currency), "displayName": "Credits"])
        let costly = uniqueID("acc-cost")
        _ = try daemon.call("defineFeature", ["featureId": .string(costly), "type": "METERED", "creditCost": ["currencyId": .string(currency), "amountPerUnit": "1"]])
        _ = try daemon.call("grantCredits", ["customerId": .string(customer), "currencyId": .string(currency), "amount": "100", "grantType": "PAID"])
        for (region, value) in [(composed, "2"), (decomposed, "5")] {
            _ = try daemon.call("reportUsage", ["customerId": .string(customer), "featureId": .string(costly), "value": .string(value), "dimensions": ["region": .string(region)]])
        }
        let usage = try daemon.call("getCreditUsage", ["customerId": .string(customer), "currencyId": .string(currency), "timeRange": "LAST_DAY", "groupBy": ["region"]])
        let groups = usage["series"]?.arrayValue ?? []
        #expect(groups.map { $0["totalCredits"] } == ["5", "2"], "\(usage.jsonText)")
    }

    @Test("ids that differ only in their Unicode normalization (\"é\" and \"e\\u{301}\") are two ids: plans, entitlements, subscriptions, credit pools and their filters keep them apart")
    func lookAlikeIds() throws {
        // Swift's String == calls these two equal; their bytes (and so their keys) differ.
        let composed = "\u{E9}", decomposed = "e\u{301}"
        let stem = uniqueID("accent")
        let featureA = try daemon.newMeteredFeature("\(stem)-\(composed)"), featureB = featureA.replacing(composed, with: decomposed)
        #expect(featureA == featureB && !featureA.utf8.elementsEqual(featureB.utf8))
        _ = try daemon.call("defineFeature", ["featureId": .string(featureB), "type": "METERED"])
        // A plan may hold both (they are not "the same feature twice"); it grants each its own limit.
        let customer = try daemon.newCustomer()
        try daemon.subscribe(customer, entitlements: [
            ["featureId": .string(featureA), "usageLimit": 3, "resetPeriod": "MONTH"],
            ["featureId": .string(featureB), "usageLimit": 7, "resetPeriod": "MONTH"],
        ])
        #expect(try daemon.entitlement(customer, featureA)["usageLimit"] == "3")
        #expect(try daemon.entitlement(customer, featureB)["usageLimit"] == "7")
        let listed = try daemon.call("getEntitlements", ["customerId": .string(customer)])["entitlements"]?.arrayValue ?? []
        #expect(listed.count == 2, "\(listed.map(\.jsonText))")
        // A plan for one of them grants nothing for the other.
        let other = try daemon.newCustomer()
        try daemon.subscribe(other, entitlements: [["featureId": .string(featureA), "hasUnlimitedUsage": true]])
        #expect(try daemon.entitlement(other, featureA)["hasAccess"] == true)
        #expect(try daemon.entitlement(other, featureB)["accessDeniedReason"] == "NO_FEATURE_ENTITLEMENT")

        // A subscription of one customer cannot be provisioned again for its look-alike.
        let customerA = uniqueID("\(stem)-\(composed)"), customerB = customerA.replacing(composed, with: decomposed)
        #expect(!customerA.utf8.elementsEqual(customerB.utf8))
        for id in [customerA, customerB] { _ = try daemon.call("provisionCustomer", ["customerId": .string(id)]) }
        let (planId, subscriptionId) = try daemon.subscribe(customerA, entitlements: [["featureId": .string(featureA), "hasUnlimitedUsage": true]])
        try daemon.expectRejected("provisionSubscription", [
            "customerId": .string(customerB), "planId": .string(planId), "subscriptionId": .string(subscriptionId),
        ], code: 1013, reason: "INVALID_STATE")
        #expect(try daemon.entitlement(customerB, featureA)["hasAccess"] == false)

        // Two credit pools, one per resource id: each filter finds its own.
        let currency = uniqueID("cur")
        _ = try daemon.call("defineCurrency", ["currencyId": .string(currency), "displayName": "Credits"])
        for (resource, amount) in [(composed, "5"), (decomposed, "8")] {
            _ = try daemon.call("grantCredits", [
                "customerId": .string(customer), "currencyId": .string(currency), "amount": .string(amount), "grantType": "PAID",
                "resourceId": .string("r-\(resource)"),
            ])
        }
        for (resource, amount) in [(composed, "5"), (decomposed, "8")] {
            let filter: JSONObject = ["customerId": .string(customer), "currencyId": .string(currency), "resourceId": .string("r-\(resource)")]
            let balances = try daemon.call("getCreditBalance", filter)["balances"]?.arrayValue ?? []
            #expect(balances.count == 1 && balances.first?["balance"] == .string(amount), "\(balances.map(\.jsonText))")
            let grants = try daemon.call("getCreditGrants", filter)["grants"]?.arrayValue ?? []
            #expect(grants.count == 1 && grants.first?["amount"] == .string(amount), "\(grants.map(\.jsonText))")
            let entries = try daemon.call("getCreditLedger", filter)["entries"]?.arrayValue ?? []
            #expect(entries.count == 1 && entries.first?["amount"] == .string(amount), "\(entries.map(\.jsonText))")
        }
        try daemon.expectLedgerConsistent()
    }
}

// MARK: - Rebuild equals stored

/// The projections are a fold of the log: verifyLedger agrees, a restart answers the same, and a
/// start with every projection deleted rebuilds them to the same answers.
@Suite("usage projections rebuild from the log", .serialized)
struct UsageRebuildTests {
    @Test("verifyLedger, restart, and a full rebuild give identical usage and entitlement answers")
    func rebuildEqualsStored() throws {
        let daemon = try LiveDaemon().start()
        let customer = try daemon.newCustomer(), other = try daemon.newCustomer()
        let plain = try daemon.newMeteredFeature()
        let name = uniqueID("evt")
        let count = try daemon.newMeteredFeature("count", meter: ["eventName": .string(name), "aggregation": "COUNT", "filters": [["key": "region", "op": "IN", "values": ["us", "eu"]]]])
        let sum = try daemon.newMeteredFeature("sum", meter: ["eventName": .string(name), "aggregation": "SUM", "field": "tokens"])
        let latest = try daemon.newMeteredFeature("latest", meter: ["eventName": .string(name), "aggregation": "LATEST", "field": "tokens"])
        let users = try daemon.newMeteredFeature("users", meter: ["eventName": .string(name), "aggregation": "UNIQUE_COUNT", "field": "user"])
        let features = [plain, count, sum, latest, users]
        try daemon.subscribe(customer, entitlements: features.map { ["featureId": .string($0), "usageLimit": 1000, "resetPeriod": "MONTH"] })
        let (_, canceled) = try daemon.subscribe(other, entitlements: [["featureId": .string(plain), "hasUnlimitedUsage": true]])
        _ = try daemon.call("grantPromotionalEntitlement", ["customerId": .string(customer), "featureId": .string(sum), "hasUnlimitedUsage": true])
        _ = try daemon.call("grantPromotionalEntitlement", ["customerId": .string(other), "featureId": .string(count), "usageLimit": 7, "resetPeriod": "DAY"])
        _ = try daemon.call("cancelSubscription", ["subscriptionId": .string(canceled)])

        let now = Date()
        let formatter = ISO8601DateFormatter()
        var events: [JSONValue] = []
        for i in 0..<300 {
            let who = i % 5 == 0 ? other : customer
            let at = i % 2 == 0 ? formatter.string(from: now.addingTimeInterval(-Double(i))) : "2026-10-0\(1 + i % 9)T\(10 + i % 10):0\(i % 6):00Z"
            events.append(usageEvent(who, name, key: "e\(i)", dimensions: ["region": ["us", "eu", "ap"][i % 3], "tokens": "\(i % 17).\(i % 4)", "user": "u\(i % 23)", "model": "m\(i % 2)"],
                                     timestamp: at, resourceId: i % 7 == 0 ? "r\(i % 3)" : nil))
        }
        #expect(try daemon.call("reportEvent", ["events": .array(events)])["accepted"] == 300)
        for i in 0..<40 {
            _ = try daemon.call("reportUsage", [
                "customerId": .string(i % 4 == 0 ? other : customer), "featureId": .string(plain), "value": .string("\(i).5"),
                "updateBehavior": i % 9 == 8 ? "SET" : "DELTA", "dimensions": ["region": .string(["us", "eu"][i % 2])],
                "timestamp": i % 3 == 0 ? .string("2026-10-1\(i % 10)T08:00:00Z") : .null, "idempotencyKey": .string("u\(i)"),
            ])
        }

        func answers() throws -> [String: JSONValue] {
            var result: [String: JSONValue] = [:]
            for who in [customer, other] {
                result["customer \(who)"] = try daemon.call("getCustomer", ["customerId": .string(who)])
                result["entitlements \(who)"] = try daemon.call("getEntitlements", ["customerId": .string(who)])
                result["keys \(who)"] = try daemon.call("listDimensionKeys", ["customerId": .string(who)])
                for feature in features {
                    result["entitlement \(who) \(feature)"] = try daemon.entitlement(who, feature)
                    result["entitlement r1 \(who) \(feature)"] = try daemon.call("getEntitlement", ["customerId": .string(who), "featureId": .string(feature), "resourceId": "r1"])
                    for granularity in ["MINUTE", "HOUR", "DAY", "MONTH"] {
                        result["history \(who) \(feature) \(granularity)"] = try daemon.history(who, feature, start: "2026-09-01T00:00:00Z", ["granularity": .string(granularity)])
                    }
                    result["history by region+model \(who) \(feature)"] = try daemon.history(who, feature, start: "2026-09-01T00:00:00Z", ["groupBy": ["region", "model"]])
                    result["history r0 \(who) \(feature)"] = try daemon.history(who, feature, start: "2026-09-01T00:00:00Z", ["resourceId": "r0", "granularity": "HOUR"])
                }
            }
            return result
        }
        func compare(_ after: [String: JSONValue], _ before: [String: JSONValue], _ when: String) {
            #expect(after.count == before.count)
            for (key, value) in before where after[key] != value {
                Issue.record("\(when): \(key) differs:\n before \(value.jsonText.prefix(1500))\n after  \(after[key]?.jsonText.prefix(1500) ?? "missing")")
            }
        }

        let report = try daemon.expectLedgerConsistent()
        let lastSequence = try daemon.lastSequence()
        #expect(report["lastSequence"]?.intValue == lastSequence)
        let before = try answers()
        #expect(before["entitlement \(customer) \(users)"]?["currentUsage"] == "23", "\(before["entitlement \(customer) \(users)"]?.jsonText ?? "")")

        // A plain restart: the stored projections answer the same.
        #expect(try daemon.terminate() == 0)
        let replay = try runProgram(Binaries.tallyd, ["replay", "--verify", "--data-dir", daemon.dataDirectory])
        #expect(replay.status == 0, "tallyd replay --verify: \(replay.stdout)\(replay.stderr)")
        try daemon.start()
        compare(try answers(), before, "after a restart")

        // Every projection and the projection mark deleted: the next start rebuilds from the log.
        #expect(try daemon.terminate() == 0)
        var deleted = 0
        do {
            let database = try Database(path: Ledger.databasePath(in: daemon.dataDirectory), columnFamilies: KeyLayout.columnFamilies)
            let projections = database.columnFamily(KeyLayout.projectionsFamily)
            let batch = WriteBatch()
            let iterator = database.makeIterator(in: projections)
            iterator.seekToFirst()
            while iterator.isValid {
                batch.delete(iterator.key, in: projections)
                deleted += 1
                iterator.next()
            }
            try iterator.check()
            let meta = database.columnFamily(KeyLayout.metaFamily)
            batch.delete(KeyLayout.projectionSequenceKey, in: meta)
            batch.delete(KeyLayout.projectionVersionKey, in: meta)
            try database.write(batch, sync: true)
        }
        #expect(deleted > 100, "the usage projections were there to delete (\(deleted))")
        try daemon.start()
        #expect(daemon.log.contains("rebuilding projections"), "the start rebuilt the projections")
        compare(try answers(), before, "after a rebuild from the log")
        #expect(try daemon.lastSequence() == lastSequence)
        try daemon.expectLedgerConsistent()
        #expect(try daemon.terminate() == 0)
    }
}
