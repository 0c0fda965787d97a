/// The ledger's rules: `decide(command, state, now) -> events | rejection`. Pure: the engine
/// loads the state, passes the time, and appends what comes back.
public enum Rules {
    public static func provisionCustomer(_ c: ProvisionCustomer, existing: Customer?) -> [EventPayload] {
        guard let existing else {
            return [.customerProvisioned(CustomerProvisioned(
                customerId: c.customerId,
                name: c.name.applied(to: nil),
                email: c.email.applied(to: nil),
                metadata: c.metadata ?? [],
                idempotencyKey: c.idempotencyKey
            ))]
        }
        let name = FieldChange.from(current: existing.name, requested: c.name)
        let email = FieldChange.from(current: existing.email, requested: c.email)
        var metadata: [(String, String)]? = nil
        if let requested = c.metadata, !requested.elementsEqual(existing.metadata, by: { $0 == $1 }) {
            metadata = requested
        }
        if name.isUnchanged, email.isUnchanged, metadata == nil { return [] }
        return [.customerUpdated(CustomerUpdated(
            customerId: c.customerId, name: name, email: email, metadata: metadata, idempotencyKey: c.idempotencyKey
        ))]
    }
}

/// Projections as folds `(state, event) -> state`.
public enum CustomerProjection {
    /// The customer after `event`, given the customer before it (nil if none yet).
    /// - Throws: `DecodingError` for a log that contradicts itself (a CUSTOMER_UPDATED without a
    ///   customer, a second CUSTOMER_PROVISIONED): stored data is damage to report, never a trap.
    public static func apply(_ event: Event, to customer: Customer?) throws(DecodingError) -> Customer? {
        switch event.payload {
        case .customerProvisioned(let e):
            guard customer == nil else { throw DecodingError("event \(event.sequence): CUSTOMER_PROVISIONED for existing customer \(e.customerId)") }
            return Customer(
                id: e.customerId, name: e.name, email: e.email, metadata: e.metadata,
                createdAt: event.recordedAt, updatedAt: event.recordedAt, lastSequence: event.sequence
            )
        case .customerUpdated(let e):
            guard var c = customer else {
                throw DecodingError("event \(event.sequence): CUSTOMER_UPDATED for unknown customer \(e.customerId)")
            }
            c.name = e.name.applied(to: c.name)
            c.email = e.email.applied(to: c.email)
            if let metadata = e.metadata { c.metadata = metadata }
            c.updatedAt = event.recordedAt
            c.lastSequence = event.sequence
            return c
        default:
            return customer
        }
    }
}
