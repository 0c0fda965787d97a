import TallyCore

/// The credits contract of PROTOCOL.md ("Credits" and the `strict` paragraph of "Usage") as a
/// small in-memory model, written from the contract's text and not from the engine: it shares
/// only value types with it (Amount and its exact arithmetic, Timestamp, GrantType, GrantStatus,
/// CreditEntryType, Rejection.Code).
///
/// One customer, one currency; pools are the global pool (`nil`) and resources (`"r1"`).
/// Grants are named by their creation index (0, 1, …); the test maps them to the engine's ids.
///
/// "Any uncovered cost becomes a negative balance (overdraft) that the next grant repays first": a
/// grant effective when granted repays at once; one scheduled for later repays when it becomes
/// effective (at its effectiveAt), in the order grants become effective.
struct CreditsReferenceModel {
    struct Grant {
        let index: Int
        let pool: String?
        let type: GrantType
        let priority: Int
        let effectiveAt: Timestamp
        let expireAt: Timestamp?
        let amount: Amount
        /// Drawn by deductions (for their cost, or for an overdraft they repaid first).
        var consumed: Amount = .zero
        /// Taken to repay the pool's overdraft.
        var repaid: Amount = .zero
        /// What left the balance when it was voided / expired (CREDITS_VOIDED / CREDITS_EXPIRED).
        var voided: Amount?
        var expired: Amount?
        /// Whether it has had its turn at repaying the overdraft.
        var repaymentSettled: Bool

        var remaining: Amount { amount - consumed - repaid - (voided ?? .zero) - (expired ?? .zero) }

        /// SCHEDULED until effectiveAt, ACTIVE until expireAt (a read at T never counts expireAt ≤ T),
        /// VOIDED once voided.
        func status(at t: Timestamp) -> GrantStatus {
            if voided != nil { return .voided }
            if expired != nil { return .expired }
            if let expireAt, !(t < expireAt) { return .expired }
            if t < effectiveAt { return .scheduled }
            return .active
        }
    }

    struct Draw: Equatable, CustomStringConvertible {
        var grant: Int
        var amount: Amount
        var description: String { "#\(grant):\(amount)" }
    }

    /// One entry of getCreditLedger: the signed effect and the running balance of the pool.
    struct Entry: Equatable, CustomStringConvertible {
        var type: CreditEntryType
        var pool: String?
        var amount: Amount
        var balanceAfter: Amount
        var grant: Int?
        var breakdown: [Draw]
        var description: String {
            "\(type.rawValue)[\(pool ?? "global")] \(amount) → \(balanceAfter)\(grant.map { " #\($0)" } ?? "")\(breakdown.isEmpty ? "" : " \(breakdown)")"
        }
    }

    struct Pool {
        var overdraft: Amount = .zero
        var ledgerBalance: Amount = .zero
    }

    enum UsageOutcome: Equatable {
        case rejected(Rejection.Code)
        case applied(consumed: Amount, balance: Amount, breakdown: [Draw])
    }

    enum VoidOutcome: Equatable {
        case rejected(Rejection.Code)
        case voided(Int)
    }

    private(set) var now: Timestamp
    private(set) var grants: [Grant] = []
    private(set) var pools: [String?: Pool] = [:]
    private(set) var entries: [Entry] = []

    init(now: Timestamp) {
        self.now = now
    }

    // MARK: Reads

    /// getCreditBalance's balance: the ACTIVE grants' remaining amounts less the overdraft.
    func balance(_ pool: String?) -> Amount { grantsRemaining(pool) - overdraft(pool) }

    func grantsRemaining(_ pool: String?) -> Amount {
        grants.filter { $0.pool == pool && $0.status(at: now) == .active }.reduce(Amount.zero) { $0 + $1.remaining }
    }

    func overdraft(_ pool: String?) -> Amount { pools[pool]?.overdraft ?? .zero }

    /// Σ granted − Σ consumed − Σ expired − Σ voided: the running sum of the pool's ledger entries.
    func ledgerBalance(_ pool: String?) -> Amount { pools[pool]?.ledgerBalance ?? .zero }

    /// The consumption order: lowest priority; earliest expireAt (none last); PROMOTIONAL before
    /// PAID; earliest effectiveAt; the earlier grant.
    static func drawnEarlier(_ a: Grant, _ b: Grant) -> Bool {
        func key(_ g: Grant) -> (Int, Int64, Int, Int64, Int) {
            (g.priority, g.expireAt?.microsecondsSinceEpoch ?? .max, g.type == .promotional ? 0 : 1, g.effectiveAt.microsecondsSinceEpoch, g.index)
        }
        return key(a) < key(b)
    }

    // MARK: Commands

    /// grantCredits: a new grant; one effective at once repays the pool's overdraft first.
    mutating func grant(pool: String?, type: GrantType, priority: Int, effectiveAt: Timestamp?, expireAt: Timestamp?, amount: Amount) -> Int {
        let effective = effectiveAt ?? now
        var grant = Grant(
            index: grants.count, pool: pool, type: type, priority: priority, effectiveAt: effective, expireAt: expireAt, amount: amount,
            repaymentSettled: false
        )
        if !(now < effective) { repay(with: &grant) }
        grants.append(grant)
        pools[pool, default: Pool()].ledgerBalance = ledgerBalance(pool) + amount
        record(.granted, pool, amount, grant: grant.index)
        return grant.index
    }

    /// reportUsage of a credit-backed feature costing `cost`. Strict fails when the cost exceeds
    /// the balance; otherwise the grants are drawn in the consumption order for the cost, and what
    /// they do not cover becomes overdraft. (Grants repay an overdraft when they become effective,
    /// so one never meets a drawable grant here: what the pool owes is the overdraft plus the cost.)
    mutating func reportUsage(pool: String?, cost: Amount, strict: Bool) -> UsageOutcome {
        if strict, balance(pool) < cost { return .rejected(.insufficientCredits) }
        var owed = overdraft(pool) + cost
        var breakdown: [Draw] = []
        let order = grants.indices.filter { grants[$0].pool == pool && grants[$0].status(at: now) == .active && grants[$0].remaining.isPositive }
            .sorted { Self.drawnEarlier(grants[$0], grants[$1]) }
        for i in order where owed.isPositive {
            let draw = Amount.min(owed, grants[i].remaining)
            grants[i].consumed = grants[i].consumed + draw
            breakdown.append(Draw(grant: i, amount: draw))
            owed = owed - draw
        }
        pools[pool, default: Pool()].overdraft = owed
        pools[pool, default: Pool()].ledgerBalance = ledgerBalance(pool) - cost
        record(.consumed, pool, -cost, breakdown: breakdown)
        return .applied(consumed: cost, balance: balance(pool), breakdown: breakdown)
    }

    /// voidCreditGrant: the remaining amount leaves the balance; an expired or voided grant is not active.
    mutating func void(_ index: Int?) -> VoidOutcome {
        guard let index, grants.indices.contains(index) else { return .rejected(.grantNotFound) }
        switch grants[index].status(at: now) {
        case .expired, .voided: return .rejected(.grantNotActive)
        case .active, .scheduled: break
        }
        let removed = grants[index].remaining
        grants[index].voided = removed
        grants[index].repaymentSettled = true
        let pool = grants[index].pool
        pools[pool, default: Pool()].ledgerBalance = ledgerBalance(pool) - removed
        record(.voided, pool, -removed, grant: index)
        return .voided(index)
    }

    /// The clock moves to `t`: grants whose effectiveAt passes take their turn at the overdraft,
    /// in the order they become effective.
    mutating func advance(to t: Timestamp) {
        precondition(!(t < now))
        now = t
        let due = grants.indices.filter { !grants[$0].repaymentSettled && !(t < grants[$0].effectiveAt) }
            .sorted { (grants[$0].effectiveAt, $0) < (grants[$1].effectiveAt, $1) }
        for i in due {
            // Never effective (expireAt ≤ effectiveAt): nothing to repay with.
            if let expireAt = grants[i].expireAt, !(grants[i].effectiveAt < expireAt) {
                grants[i].repaymentSettled = true
                continue
            }
            var grant = grants[i]
            repay(with: &grant)
            grants[i] = grant
        }
    }

    /// CREDITS_EXPIRED for every grant whose expireAt has passed and that still had something
    /// left, in time order (ties in any order). Returns (grant, amount) in expireAt order.
    mutating func expireDue() -> [Draw] {
        let due = grants.indices.filter {
            grants[$0].voided == nil && grants[$0].expired == nil && grants[$0].remaining.isPositive
                && grants[$0].expireAt.map { !(now < $0) } == true
        }.sorted { (grants[$0].expireAt!, $0) < (grants[$1].expireAt!, $1) }
        var expired: [Draw] = []
        for i in due {
            let removed = grants[i].remaining
            grants[i].expired = removed
            grants[i].repaymentSettled = true
            let pool = grants[i].pool
            pools[pool, default: Pool()].ledgerBalance = ledgerBalance(pool) - removed
            record(.expired, pool, -removed, grant: i)
            expired.append(Draw(grant: i, amount: removed))
        }
        return expired
    }

    // MARK: Helpers

    private mutating func repay(with grant: inout Grant) {
        grant.repaymentSettled = true
        let owed = overdraft(grant.pool)
        guard owed.isPositive else { return }
        let paid = Amount.min(owed, grant.remaining)
        grant.repaid = grant.repaid + paid
        pools[grant.pool, default: Pool()].overdraft = owed - paid
    }

    private mutating func record(_ type: CreditEntryType, _ pool: String?, _ amount: Amount, grant: Int? = nil, breakdown: [Draw] = []) {
        entries.append(Entry(type: type, pool: pool, amount: amount, balanceAfter: ledgerBalance(pool), grant: grant, breakdown: breakdown))
    }
}
