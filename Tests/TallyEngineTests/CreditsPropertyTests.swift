import Foundation
import PropertyBased
import Synchronization
import TallyCore
import TallyEngine
import TallyStorage
import Testing

/// Issue 4: random sequences of grants, usage (strict and not), voids, clock moves (with the
/// expiry the daemon appends) and restarts, run in-process against the engine on real RocksDB and
/// against `CreditsReferenceModel`; every reply, every balance, every grant and every credit
/// ledger entry is compared after every step, and the engine-side invariants are checked on their
/// own:
/// - balance = granted − consumed − expired − voided, less what is not counted at the instant
///   (scheduled grants, grants past expireAt whose CREDITS_EXPIRED is not written yet);
/// - 0 ≤ remaining ≤ amount for every grant;
/// - a deduction draws the first eligible grants in the contract's order, never a voided,
///   expired or scheduled one;
/// - at the end, `verifyLedger`: the replayed projections equal the stored ones.
@Suite("Credits: property-based invariants against a reference model")
struct CreditsPropertyTests {
    static let step = zip(
        Gen.int(in: 0...9), Gen.int(in: 0...999), Gen.int(in: 0...999), Gen.int(in: 0...999), Gen.int(in: 0...999), Gen.int(in: 0...999)
    ).map { CreditStep(kind: $0, a: $1, b: $2, c: $3, d: $4, e: $5) }

    /// amountPerUnit 1 or 0.5, and up to 40 steps.
    static let runs = zip(Gen.int(in: 0...1), step.array(of: 1...40))

    static func perUnit(_ choice: Int) -> Amount { choice == 0 ? Amount(1) : Amount(units: Amount.unitsPerOne / 2) }

    @Test("grants, strict and non-strict usage, voids, clock moves and restarts agree with the contract's model at every step")
    func matchesTheReferenceModel() async {
        CreditsRun.tally.withLock { $0 = [:] }
        await propertyCheck(count: 30, input: Self.runs) { perUnit, steps in
            await CreditsRun.check(steps: steps, perUnit: Self.perUnit(perUnit))
        }
        // The generator still reaches the interesting cases (moot once a run failed: it stops early).
        let tally = CreditsRun.tally.withLock { $0 }
        guard tally["failed", default: 0] == 0 else { return }
        for outcome in ["strict usage refused", "overdraft", "overdraft repaid by a grant", "overdraft repaid at activation", "GRANT_NOT_ACTIVE", "expired", "restart"] {
            #expect(tally[outcome, default: 0] > 0, "no \(outcome) in \(tally)")
        }
    }
}

/// One random step as raw numbers (so that the library shrinks them); `action` reads them.
struct CreditStep: Sendable, CustomStringConvertible {
    var kind: Int
    var a: Int, b: Int, c: Int, d: Int, e: Int

    enum ClockMove: Sendable, CustomStringConvertible {
        case minutes(Int64)
        /// To the next whole hour from the start (where effectiveAt and expireAt lie), plus hours.
        case toNextHour(plus: Int64)
        var description: String {
            switch self {
            case .minutes(let m): "+\(m)m"
            case .toNextHour(let h): "to next hour+\(h)h"
            }
        }
    }

    struct GrantSpec: Sendable {
        var type: GrantType
        var priority: Int
        /// Whole hours after the next whole hour; nil = now.
        var effectiveHour: Int64?
        /// Whole hours after the next whole hour; nil = never.
        var expireHour: Int64?
        var amount: Amount
        var pool: String?
    }

    enum Action: Sendable {
        case grant(GrantSpec)
        case usage(value: Amount, strict: Bool, pool: String?)
        /// The pick-th known grant (modulo their count), or an unknown id.
        case void(pick: Int?)
        case clock(ClockMove)
        case restart(downtime: ClockMove?)
    }

    var action: Action {
        switch kind {
        case 0...2:
            let amount = e % 2 == 0 ? Amount(e % 40 + 1) : Amount(units: Int128((e * 37) % 50_000 + 1) * 1_000_000_000)
            // expireAt after effectiveAt, as grantCredits' params require.
            let effectiveHour = c % 3 == 0 ? nil : Int64(c % 24)
            return .grant(GrantSpec(
                type: a % 2 == 0 ? .paid : .promotional, priority: b % 4,
                effectiveHour: effectiveHour, expireHour: d % 3 == 0 ? nil : (effectiveHour.map { $0 + 1 } ?? 0) + Int64(d % 36),
                amount: amount, pool: a % 3 == 2 ? "r1" : nil
            ))
        case 3...5:
            let tenths = d % 2 == 0 ? a % 100 + 1 : a % 500 + 1
            return .usage(value: Amount(units: Int128(tenths) * 100_000_000_000), strict: b % 2 == 1, pool: c % 3 == 2 ? "r1" : nil)
        case 6:
            return .void(pick: a % 8 == 7 ? nil : b)
        case 7, 8:
            return .clock(Self.move(a, b))
        default:
            return .restart(downtime: a % 2 == 0 ? nil : Self.move(b, c))
        }
    }

    static func move(_ x: Int, _ y: Int) -> ClockMove {
        switch x % 4 {
        case 0: .minutes(Int64(y % 180 + 1))
        case 1: .minutes(Int64(y % 48 + 1) * 60)
        case 2: .minutes(Int64(y % 3 + 1) * 1440)
        default: .toNextHour(plus: Int64(y % 3))
        }
    }

    var description: String {
        switch action {
        case .grant(let g):
            "grant(\(g.type.rawValue), p\(g.priority), eff: \(g.effectiveHour.map { "h+\($0)" } ?? "now"), exp: \(g.expireHour.map { "h+\($0)" } ?? "none"), \(g.amount), \(g.pool ?? "global"))"
        case .usage(let value, let strict, let pool):
            "usage(\(value)\(strict ? ", strict" : ""), \(pool ?? "global"))"
        case .void(let pick):
            "void(\(pick.map { "known #\($0)" } ?? "unknown"))"
        case .clock(let move):
            "clock(\(move))"
        case .restart(let downtime):
            "restart(\(downtime.map { "down \($0)" } ?? "at once"))"
        }
    }
}

/// One run: a ledger in a temporary directory, a manual clock, and the model beside them.
final class CreditsRun {
    static let customer = "c1", currency = "cr", feature = "f1"
    static let pools: [String?] = [nil, "r1"]
    static let hour: Int64 = 3_600_000_000
    /// How often each kind of outcome came up, over all runs.
    static let tally = Mutex<[String: Int]>([:])

    func count(_ outcome: String) { Self.tally.withLock { $0[outcome, default: 0] += 1 } }

    let dir = TempDir()
    let start = Timestamp(secondsSinceEpoch: 1_790_000_000)
    let clock: ManualClock
    let perUnit: Amount
    /// Nil while "stopped": the old Ledger must be released before reopening (RocksDB's LOCK).
    var ledger: Ledger!
    var model: CreditsReferenceModel
    /// Model grant index → the engine's grantId.
    var engineIds: [String] = []
    var trace: [String] = []
    var problems: [String] = []
    /// The last sequence whose events were checked.
    var seen: UInt64 = 0

    private init(perUnit: Amount) throws {
        clock = ManualClock(start)
        self.perUnit = perUnit
        ledger = try openLedger(dir, clock: clock)
        model = CreditsReferenceModel(now: start)
    }

    // The ledger closes its database before `dir` removes the directory: released with the other
    // properties, it could close after, and its last flush left a stray SST in /tmp.
    deinit { ledger = nil }

    /// Runs `steps` and records an issue (with the trace of the run) at the first disagreement.
    static func check(steps: [CreditStep], perUnit: Amount, sourceLocation: SourceLocation = #_sourceLocation) async {
        let run: CreditsRun
        do {
            run = try CreditsRun(perUnit: perUnit)
        } catch {
            Issue.record("open: \(error)", sourceLocation: sourceLocation)
            return
        }
        defer { run.ledger.shutdown() }
        await run.setUp()
        for step in steps where run.problems.isEmpty {
            await run.perform(step)
            if run.problems.isEmpty { run.checkEvents() }
            if run.problems.isEmpty { run.checkState() }
        }
        if run.problems.isEmpty {
            do {
                let report = try run.ledger.verify()
                if !report.isValid { run.problems.append("verify: chain \(report.hashChainValid) \(report.chainProblem ?? ""), mismatches \(report.mismatches)") }
            } catch {
                run.problems.append("verify: \(error)")
            }
        }
        if !run.problems.isEmpty {
            run.count("failed")
            Issue.record(
                "amountPerUnit \(perUnit); after\n  \(run.trace.joined(separator: "\n  "))\n\(run.problems.joined(separator: "\n"))",
                sourceLocation: sourceLocation
            )
        }
    }

    // MARK: Steps

    private func setUp() async {
        let replies = [
            await ledger.execute(.provisionCustomer(ProvisionCustomer(customerId: Self.customer))),
            await ledger.execute(.defineCurrency(DefineCurrency(currencyId: Self.currency, displayName: "Credits", symbol: nil))),
            await ledger.execute(.defineFeature(DefineFeature(
                featureId: Self.feature, displayName: nil, type: .metered, unit: nil, meter: nil,
                creditCost: CreditCost(currencyId: Self.currency, amountPerUnit: perUnit)
            ))),
        ]
        for reply in replies {
            guard case .applied = reply else { problems.append("setup: \(reply)"); return }
        }
        seen = ledger.head.sequence
    }

    private var minutes: String { "t+\((clock.now().microsecondsSinceEpoch - start.microsecondsSinceEpoch) / 60_000_000)m" }

    /// The start of the whole hour (counted from `start`) `plus` hours after the next one.
    private func hour(plus: Int64) -> Timestamp {
        let elapsed = clock.now().microsecondsSinceEpoch - start.microsecondsSinceEpoch
        return start.adding(microseconds: (elapsed / Self.hour + 1 + plus) * Self.hour)
    }

    private func move(_ m: CreditStep.ClockMove) {
        switch m {
        case .minutes(let n): clock.advance(seconds: n * 60)
        case .toNextHour(let plus): clock.set(hour(plus: plus))
        }
        let repaid = model.grants.reduce(Amount.zero) { $0 + $1.repaid }
        model.advance(to: clock.now())
        if model.grants.reduce(Amount.zero, { $0 + $1.repaid }) > repaid { count("overdraft repaid at activation") }
    }

    private func perform(_ step: CreditStep) async {
        switch step.action {
        case .grant(let g):
            let effectiveAt = g.effectiveHour.map { hour(plus: $0) }
            let expireAt = g.expireHour.map { hour(plus: $0) }
            let reply = await ledger.execute(.grantCredits(GrantCredits(
                customerId: Self.customer, currencyId: Self.currency, amount: g.amount, grantType: g.type, displayName: nil,
                priority: g.priority, effectiveAt: effectiveAt, expireAt: expireAt, resourceId: g.pool, cost: nil, metadata: [],
                comment: nil, idempotencyKey: nil
            )))
            let index = model.grant(pool: g.pool, type: g.type, priority: g.priority, effectiveAt: effectiveAt, expireAt: expireAt, amount: g.amount)
            trace.append("\(minutes) \(step) = #\(index) eff \(effectiveAt.map(\.description) ?? "now") exp \(expireAt.map(\.description) ?? "none") → \(brief(reply))")
            guard case .applied(.grant(let grant)) = reply else {
                problems.append("grantCredits: the engine answered \(brief(reply)); the contract applies it")
                return
            }
            engineIds.append(grant.grantId)
            compare(grant, index, "grantCredits reply")
            if model.grants[index].repaid.isPositive { count("overdraft repaid by a grant") }

        case .usage(let value, let strict, let pool):
            guard let cost = value.multipliedExactly(by: perUnit) else { preconditionFailure("inexact cost") }
            let before = model.balance(pool)
            let reply = await ledger.execute(.reportUsage(ReportUsage(
                customerId: Self.customer, featureId: Self.feature, value: value, updateBehavior: .delta, resourceId: pool,
                idempotencyKey: nil, timestamp: nil, dimensions: .none, strict: strict
            )))
            let expected = model.reportUsage(pool: pool, cost: cost, strict: strict)
            switch expected {
            case .rejected: count("strict usage refused")
            case .applied: if model.overdraft(pool).isPositive { count("overdraft") }
            }
            trace.append("\(minutes) \(step) cost \(cost), balance before \(before) → \(brief(reply))")
            switch (expected, reply) {
            case (.rejected(let code), .rejected(let rejection)):
                if rejection.code != code { problems.append("reportUsage: rejected with \(rejection.code), the model with \(code)") }
            case (.applied(let consumed, let balance, let breakdown), .applied(.usage(let outcome))):
                pendingBreakdown = breakdown
                guard let credit = outcome.credit else {
                    problems.append("reportUsage: no credit outcome in the reply")
                    return
                }
                if credit.consumed != consumed || credit.balance != balance || credit.currencyId != Self.currency {
                    problems.append("reportUsage: credit {consumed \(credit.consumed), balance \(credit.balance)}; the model: {consumed \(consumed), balance \(balance)}")
                }
            default:
                problems.append("reportUsage: the engine answered \(brief(reply)); the model \(expected)")
            }

        case .void(let pick):
            let index = pick.flatMap { engineIds.isEmpty ? nil : $0 % engineIds.count }
            let id = index.map { engineIds[$0] } ?? "grant_unknown"
            let reply = await ledger.execute(.voidCreditGrant(grantId: id))
            let expected = model.void(index)
            if case .rejected(let code) = expected { count(code.reason) } else { count("voided") }
            trace.append("\(minutes) \(step) = \(index.map { "#\($0)" } ?? "unknown") \(id) → \(brief(reply))")
            switch (expected, reply) {
            case (.rejected(let code), .rejected(let rejection)):
                if rejection.code != code { problems.append("voidCreditGrant: rejected with \(rejection.code), the model with \(code)") }
            case (.voided(let index), .applied(.grant(let grant))):
                compare(grant, index, "voidCreditGrant reply")
            default:
                problems.append("voidCreditGrant: the engine answered \(brief(reply)); the model \(expected)")
            }

        case .clock(let m):
            move(m)
            trace.append("\(minutes) \(step)")
            // A read at T never counts a grant whose expireAt ≤ T, written CREDITS_EXPIRED or not.
            checkState()
            guard problems.isEmpty else { return }
            await expire()

        case .restart(let downtime):
            ledger.shutdown()
            ledger = nil
            count("restart")
            if let downtime { move(downtime) }
            trace.append("\(minutes) \(step)")
            do {
                ledger = try openLedger(dir, clock: clock)
            } catch {
                problems.append("reopen: \(error)")
                return
            }
            if ledger.head.sequence != seen { problems.append("reopen: head \(ledger.head.sequence), expected \(seen)") }
            checkState()
            guard problems.isEmpty else { return }
            // The daemon's first expiry tick: expiries missed while stopped.
            await expire()
        }
    }

    /// What the daemon's expiry timer does: appends CREDITS_EXPIRED for what is due.
    private func expire() async {
        let reply = await ledger.execute(.expireCredits)
        pendingExpiries = model.expireDue()
        if !pendingExpiries.isEmpty {
            trace.append("  expired \(pendingExpiries)")
            count("expired")
        }
        guard case .applied(.expired(let count)) = reply else {
            problems.append("expireCredits: \(brief(reply))")
            return
        }
        if count != pendingExpiries.count { problems.append("expireCredits: \(count) grants expired; the model expires \(pendingExpiries)") }
    }

    // MARK: Checks

    /// The breakdown of the last applied usage and the expiries of the last expiry, as the model has them.
    private var pendingBreakdown: [CreditsReferenceModel.Draw]?
    private var pendingExpiries: [CreditsReferenceModel.Draw] = []

    private func index(of grantId: String) -> Int? { engineIds.firstIndex(of: grantId) }

    private func draws(_ breakdown: [(String, Amount)]) -> [CreditsReferenceModel.Draw] {
        breakdown.map { CreditsReferenceModel.Draw(grant: index(of: $0.0) ?? -1, amount: $0.1) }
    }

    /// The events appended by the last step: the draws of each CREDITS_CONSUMED, the expiries.
    private func checkEvents() {
        let records: [EventRecord]
        do {
            records = try ledger.events(after: seen, limit: 10_000)
        } catch {
            problems.append("events: \(error)")
            return
        }
        var expired: [CreditsReferenceModel.Draw] = []
        var lastExpireAt: Timestamp?
        for record in records {
            let event = record.event
            switch event.payload {
            case .creditsConsumed(let e):
                let drawn = draws(e.breakdown)
                if let expected = pendingBreakdown {
                    if drawn != expected { problems.append("CREDITS_CONSUMED at \(event.sequence) draws \(drawn); the contract's order draws \(expected)") }
                } else {
                    problems.append("CREDITS_CONSUMED at \(event.sequence) that the model does not expect")
                }
                pendingBreakdown = nil
                // Never a voided, expired or scheduled grant (as the model has its status).
                for draw in drawn {
                    guard model.grants.indices.contains(draw.grant) else {
                        problems.append("CREDITS_CONSUMED at \(event.sequence) draws an unknown grant")
                        continue
                    }
                    let status = model.grants[draw.grant].status(at: event.recordedAt)
                    if status != .active { problems.append("CREDITS_CONSUMED at \(event.sequence) draws #\(draw.grant), which is \(status.rawValue)") }
                    if !draw.amount.isPositive { problems.append("CREDITS_CONSUMED at \(event.sequence) draws \(draw.amount) of #\(draw.grant)") }
                }
            case .creditsExpired(let e):
                expired.append(CreditsReferenceModel.Draw(grant: index(of: e.removal.grantId) ?? -1, amount: e.removal.amount))
                if let i = index(of: e.removal.grantId), let expireAt = model.grants[i].expireAt {
                    if let lastExpireAt, expireAt < lastExpireAt { problems.append("CREDITS_EXPIRED out of time order at \(event.sequence)") }
                    lastExpireAt = expireAt
                    if event.recordedAt < expireAt { problems.append("CREDITS_EXPIRED of #\(i) at \(event.recordedAt), before its expireAt \(expireAt)") }
                }
            case .creditsVoided(let e):
                if let i = index(of: e.removal.grantId), model.grants[i].voided != e.removal.amount {
                    problems.append("CREDITS_VOIDED of #\(i) removes \(e.removal.amount); the model \(model.grants[i].voided.map(\.description) ?? "nothing")")
                }
            default:
                break
            }
        }
        if let pendingBreakdown {
            problems.append("no CREDITS_CONSUMED appended; the model draws \(pendingBreakdown)")
            self.pendingBreakdown = nil
        }
        // Ties in expireAt may come in any order.
        let key = { (d: CreditsReferenceModel.Draw) in d.grant }
        if expired.sorted(by: { key($0) < key($1) }) != pendingExpiries.sorted(by: { key($0) < key($1) }) {
            problems.append("CREDITS_EXPIRED \(expired); the model expires \(pendingExpiries)")
        }
        pendingExpiries = []
        seen = records.last?.event.sequence ?? seen
    }

    /// Every pool's balance at the clock's instant, every grant, and the credit ledger, against the
    /// model; and the engine's own identities.
    private func checkState() {
        let now = clock.now()
        do {
            // Grants: 0 ≤ remaining ≤ amount, and as the model has them.
            var notCounted: [String?: Amount] = [:]
            for (i, id) in engineIds.enumerated() {
                // As getCreditGrants reads it: a grant effective by now has repaid, CREDITS_ACTIVATED written or not.
                guard let grant = try Projections.grant(id, at: now, in: ledger.store) else {
                    problems.append("grant \(id) (#\(i)) is missing")
                    continue
                }
                compare(grant, i, "stored grant")
                if grant.status(at: now) != .active, grant.voidedAt == nil, grant.expiredAt == nil {
                    notCounted[grant.resourceId, default: .zero] = notCounted[grant.resourceId, default: .zero] + grant.remaining
                }
            }
            // The credit ledger (getCreditLedger), entry by entry.
            let entries = try ledger.store.scan(prefix: KeyLayout.creditLedgerPrefix(customerId: Self.customer)).map { try CreditLedgerEntry.decode($0.value) }
            let got = entries.map {
                CreditsReferenceModel.Entry(
                    type: $0.eventType, pool: $0.resourceId, amount: $0.amount, balanceAfter: $0.balanceAfter,
                    grant: $0.grantId.map { index(of: $0) ?? -1 }, breakdown: draws($0.breakdown)
                )
            }
            if got != model.entries {
                let first = Array(zip(got, model.entries)).firstIndex { $0 != $1 } ?? min(got.count, model.entries.count)
                problems.append("credit ledger differs from entry \(first): engine \(Array(got[first...])), model \(Array(model.entries[first...]))")
            }
            for pool in Self.pools {
                let b = try Projections.balance(customerId: Self.customer, currencyId: Self.currency, resourceId: pool, at: now, in: ledger.store)
                let name = pool ?? "global"
                if b.balance != model.balance(pool) || b.grantsRemaining != model.grantsRemaining(pool) || b.overdraft != model.overdraft(pool) || b.ledgerBalance != model.ledgerBalance(pool) {
                    problems.append(
                        "balance[\(name)] at \(now): engine {balance \(b.balance), grantsRemaining \(b.grantsRemaining), overdraft \(b.overdraft), ledger \(b.ledgerBalance)}; "
                            + "model {balance \(model.balance(pool)), grantsRemaining \(model.grantsRemaining(pool)), overdraft \(model.overdraft(pool)), ledger \(model.ledgerBalance(pool))}"
                    )
                }
                // balance = granted − consumed − expired − voided − what is not counted at the instant.
                let sum = entries.filter { $0.resourceId == pool }.reduce(Amount.zero) { $0 + $1.amount }
                if sum != b.ledgerBalance || b.balance != sum - notCounted[pool, default: .zero] {
                    problems.append("balance[\(name)]: Σ entries \(sum), ledger balance \(b.ledgerBalance), not counted \(notCounted[pool, default: .zero]), balance \(b.balance)")
                }
            }
        } catch {
            problems.append("read: \(error)")
        }
    }

    private func compare(_ grant: CreditGrant, _ i: Int, _ what: String) {
        let m = model.grants[i]
        let now = clock.now()
        if grant.remaining.isNegative || grant.amount < grant.remaining {
            problems.append("\(what) #\(i) \(grant.grantId): remaining \(grant.remaining) outside [0, \(grant.amount)]")
        }
        let got = (grant.remaining, grant.consumed + grant.repaid, grant.status(at: now))
        let expected = (m.remaining, m.consumed + m.repaid, m.status(at: now))
        if got != expected || grant.amount != m.amount || grant.priority != m.priority || grant.grantType != m.type
            || grant.effectiveAt != m.effectiveAt || grant.expireAt != m.expireAt || grant.resourceId != m.pool {
            problems.append(
                "\(what) #\(i) \(grant.grantId): engine {remaining \(got.0), consumedAmount \(got.1), \(got.2.rawValue)}; "
                    + "model {remaining \(expected.0), consumedAmount \(expected.1), \(expected.2.rawValue)}"
            )
        }
    }

    private func brief(_ reply: CommandReply) -> String {
        switch reply {
        case .applied(.grant(let g)): "\(g.grantId) remaining \(g.remaining) \(g.status(at: clock.now()).rawValue)"
        case .applied(.usage(let u)): "consumed \(u.credit?.consumed.description ?? "-") balance \(u.credit?.balance.description ?? "-")"
        case .applied(.expired(let n)): "expired \(n)"
        case .applied(let r): "applied \(r)"
        case .rejected(let r): "rejected \(r.code.reason)"
        default: "\(reply)"
        }
    }
}
