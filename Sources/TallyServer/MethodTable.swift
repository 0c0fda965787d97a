import Foundation
import TallyCore
import TallyEngine
import TallyProtocol
import TallyStorage

/// Every method the daemon serves. rpc.discover's document (TallyProtocol/openrpc.json) must
/// list exactly these; a test checks it.
enum MethodTable {
    /// Each domain contributes its methods; a name may appear in only one group.
    static let methods: [String: Dispatcher.Method] = [coreMethods, operationsMethods, usageMethods, creditMethods].reduce(into: [:]) { all, group in
        all.merge(group) { _, _ in preconditionFailure("a method is registered twice") }
    }

    static let coreMethods: [String: Dispatcher.Method] = [
        "provisionCustomer": .command { params throws(RPCFailure) in
            let command = try CustomerMethods.provision(params)
            return (.provisionCustomer(command), command.idempotencyKey)
        },
        // A customer's reply lists every subscription it ever had: past a few dozen it is read
        // off the loops, and the connection's later lines wait for the client to read it, as
        // for any long read (a client pipelining it and not reading made the daemon build
        // every reply: gigabytes, found in review).
        "getCustomer": .queryPlaced({ dispatcher, params in
            guard let id = try? CustomerMethods.customerID(params) else { return .inline }  // refused inline
            return hasManySubscriptions(id, in: dispatcher.ledger.store) ? .offLoop : .inline
        }) { dispatcher, params in
            let id = try CustomerMethods.customerID(params)
            guard let customer = try dispatcher.ledger.customer(id) else {
                throw RPCFailure.rejected(Rejection(.customerNotFound, "customer \"\(id)\" does not exist"))
            }
            return try customerJSON(customer, store: dispatcher.ledger.store)
        },
        "listCustomers": .slowQuery { dispatcher, params in
            let (after, limit) = try CustomerMethods.listParams(params)
            let customers = try dispatcher.ledger.customers(after: after, limit: limit)
            return CustomerMethods.listJSON(try customers.map { try customerJSON($0, store: dispatcher.ledger.store) }, lastID: customers.last?.id, limit: limit)
        },
        "readLedger": .slowQuery { dispatcher, params in
            let (after, limit) = try LedgerMethods.readParams(params)
            let records = try dispatcher.ledger.events(after: after, limit: limit)
            return LedgerMethods.json(records, limit: limit)
        },
        "verifyLedger": .heavyQuery { dispatcher, params in
            try LedgerMethods.noParams(params)
            return LedgerMethods.json(try dispatcher.ledger.verify())
        },
        "getStatus": .query { dispatcher, params in
            try LedgerMethods.noParams(params)
            return dispatcher.status()
        },
        "rpc.discover": .slowQuery { _, params in
            try LedgerMethods.noParams(params)
            return OpenRPC.document
        },
    ]

    /// Whether the customer has more than `inlineSubscriptionsMax` subscriptions (one small read:
    /// nothing listed on the loop to decide).
    static func hasManySubscriptions(_ customerId: String, in store: LedgerStore) -> Bool {
        ((try? Projections.subscriptionCount(customerId: customerId, in: store)) ?? 0) > inlineSubscriptionsMax
    }

    static let inlineSubscriptionsMax: UInt64 = 64

    /// The seed Customer shape with the customer's subscriptions (and their plans' names).
    static func customerJSON(_ customer: Customer, store: LedgerStore) throws(StorageError) -> JSONValue {
        let subscriptions = try Projections.subscriptions(customerId: customer.id, in: store).map { s throws(StorageError) in
            CustomerSubscription(subscription: s, planName: try Projections.plan(s.planId, in: store)?.displayName)
        }
        return customerJSON(customer, subscriptions: subscriptions)
    }

    static func customerJSON(_ customer: Customer, subscriptions: [CustomerSubscription]) -> JSONValue {
        CustomerMethods.json(customer, subscriptions: subscriptions.map { UsageMethods.json($0.subscription, planName: $0.planName) })
    }

    /// A command's reply as a JSON-RPC result or error.
    static func render(_ reply: CommandReply, store: LedgerStore) -> Result<JSONValue, RPCFailure> {
        switch reply {
        case .applied(let result): json(result, duplicate: false, store: store)
        case .duplicate(let result): json(result, duplicate: true, store: store)
        case .rejected(let rejection): .failure(.rejected(rejection))
        case .unavailable(let message): .failure(.storageUnavailable(message))
        case .overloaded: .failure(.overloaded("the writer queue is full; retry later"))
        }
    }

    static func json(_ result: CommandResult, duplicate: Bool, store: LedgerStore) -> Result<JSONValue, RPCFailure> {
        var value: JSONValue
        switch result {
        case .customer(let customer, let subscriptions?):
            value = customerJSON(customer, subscriptions: subscriptions)
        case .customer(let customer, nil):
            // A result stored before subscriptions were kept with it: the current ones.
            do {
                value = try customerJSON(customer, store: store)
            } catch {
                return .failure(.storageUnavailable("the customer was saved, but could not be read back: \(error)"))
            }
        case .currency(let c): value = UsageMethods.json(c)
        case .feature(let f): value = UsageMethods.json(f)
        case .plan(let p): value = UsageMethods.json(p)
        case .subscription(let s): value = UsageMethods.json(s, planName: nil)
        case .usage(let u): value = UsageMethods.json(u)
        case .events(let e): value = UsageMethods.json(e)
        case .promotional(let p): value = UsageMethods.json(p)
        case .revoked(let customerId, let featureId):
            value = .object(["customerId": .string(customerId), "featureId": .string(featureId), "revoked": true])
        case .grant(let g): value = CreditMethods.json(g, now: g.voidedAt ?? g.createdAt)
        case .autoRecharge(let a): value = CreditMethods.json(a)
        case .expired(let count): value = .object(["expired": .integer(count)])
        }
        if duplicate, case .object(var object) = value {
            object["duplicate"] = true
            value = .object(object)
        }
        return .success(value)
    }
}

extension Dispatcher {
    func status() -> JSONValue {
        let head = ledger.visibleHead
        var o = JSONObject()
        o["version"] = .string(TallyVersion.current)
        o["lastSequence"] = .integer(head.sequence)
        o["headHash"] = .string(head.hash.hexString)
        o["dataDir"] = .string(info.dataDirectory)
        o["socketPath"] = .string(info.socketPath)
        o["pid"] = .integer(info.pid)
        o["startedAt"] = .string(info.startedAt.rfc3339)
        o["uptimeSeconds"] = .integer((ContinuousClock.now - info.started).components.seconds)
        o["connections"] = .integer(connections.count)
        return .object(o)
    }
}

/// readLedger and verifyLedger params and results.
enum LedgerMethods {
    static let readLimitDefault = 100
    static let readLimitMax = 1000

    static func noParams(_ object: JSONObject) throws(RPCFailure) {
        try Params(object).finish()
    }

    static func readParams(_ object: JSONObject) throws(RPCFailure) -> (after: UInt64, limit: Int) {
        var p = Params(object)
        let after = try p.optionalUInt64("after") ?? 0
        let limit = try p.optionalInt("limit", in: 1...readLimitMax) ?? readLimitDefault
        try p.finish()
        return (after, limit)
    }

    static func json(_ records: [EventRecord], limit: Int) -> JSONValue {
        let events: [JSONValue] = records.map { record in
            .object(JSONObject([
                ("sequence", .integer(record.event.sequence)),
                ("type", .string(record.event.payload.type)),
                ("schemaVersion", .integer(record.event.payload.schemaVersion)),
                ("recordedAt", .string(record.event.recordedAt.rfc3339)),
                ("prevHash", .string(record.prevHash.hexString)),
                ("hash", .string(record.hash.hexString)),
                ("data", EventJSON.data(record.event.payload)),
            ]))
        }
        let next: JSONValue = records.count == limit ? .integer(records[records.count - 1].event.sequence) : .null
        return .object(JSONObject([("events", .array(events)), ("next", next)]))
    }

    static func json(_ report: VerificationReport) -> JSONValue {
        var o = JSONObject()
        o["events"] = .integer(report.eventsRead)
        o["lastSequence"] = .integer(report.lastSequence)
        o["headHash"] = .string(report.headHash.hexString)
        o["hashChainValid"] = .bool(report.hashChainValid)
        if let problem = report.chainProblem { o["chainProblem"] = .string(problem) }
        o["projectionsMatch"] = .bool(report.projectionsMatch)
        o["mismatches"] = .array(report.mismatches.map { m in
            .object(JSONObject([
                ("projection", .string(m.projection)), ("key", .string(m.key)),
                ("expected", .string(m.expected)), ("stored", .string(m.stored)),
            ]))
        })
        o["projections"] = .object(JSONObject(report.projectionCounts.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.integer($0.value)) }))
        o["idempotencyRecords"] = .integer(report.idempotencyRecords)
        return .object(o)
    }
}
