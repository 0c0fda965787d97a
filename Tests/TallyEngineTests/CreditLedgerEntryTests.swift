import Foundation
import TallyCore
import TallyEngine
import TallyStorage
import Testing

@Suite("credit ledger entries")
struct CreditLedgerEntryTests {
    @Test("a deduction first appends, in its commit, the activation of a grant that became effective since: it repays the overdraft, the deduction only its cost")
    func activationBeforeDeduction() async throws {
        let dir = TempDir()
        let clock = ManualClock(Timestamp(secondsSinceEpoch: 1_790_000_000))
        let ledger = try openLedger(dir, clock: clock)
        _ = await ledger.execute(provision("c"))
        _ = await ledger.execute(.defineCurrency(DefineCurrency(currencyId: "t", displayName: "T", symbol: nil)))
        _ = await ledger.execute(.defineFeature(DefineFeature(featureId: "f", displayName: nil, type: .metered, unit: nil, meter: nil, creditCost: CreditCost(currencyId: "t", amountPerUnit: Amount(1)))))
        func grant(_ amount: Int, effectiveAt: Timestamp? = nil) async -> CommandReply {
            await ledger.execute(.grantCredits(GrantCredits(customerId: "c", currencyId: "t", amount: Amount(amount), grantType: .paid, displayName: nil, priority: 50, effectiveAt: effectiveAt, expireAt: nil, resourceId: nil, cost: nil, metadata: [], comment: nil, idempotencyKey: nil)))
        }
        func use(_ value: Int) async -> CommandReply {
            await ledger.execute(.reportUsage(ReportUsage(customerId: "c", featureId: "f", value: Amount(value), updateBehavior: .delta, resourceId: nil, idempotencyKey: nil, timestamp: nil, dimensions: .none, strict: false)))
        }
        _ = await grant(5)
        _ = await use(8)  // overdraft 3
        guard case .applied(.grant(let scheduled)) = await grant(10, effectiveAt: clock.now().adding(microseconds: 3_600_000_000)) else {
            Issue.record("the scheduled grant was refused")
            return
        }
        #expect(scheduled.repaid == .zero, "scheduled: it repays nothing yet")
        let before = ledger.head.sequence
        // No timer runs here: the deduction finds the activation due.
        clock.advance(seconds: 7200)
        _ = await use(4)
        let appended = try ledger.events(after: before, limit: 10).map(\.event.payload)
        #expect(appended.map(\.type) == ["USAGE_REPORTED", "CREDITS_ACTIVATED", "CREDITS_CONSUMED"])
        if case .creditsActivated(let a) = appended.dropFirst().first {
            #expect(a.grantId == scheduled.grantId && a.overdraftRepaid == Amount(3))
        }
        let entries = try ledger.store.scan(prefix: KeyLayout.creditLedgerPrefix(customerId: "c")).map { try CreditLedgerEntry.decode($0.value) }
        let last = try #require(entries.last)
        #expect(last.eventType == .consumed && last.amount == -Amount(4))
        #expect(last.breakdown.map(\.1) == [Amount(4)] && last.overdraftRepaid == .zero)
        let grant = try #require(try Projections.grant(scheduled.grantId, in: ledger.store))
        #expect(grant.repaid == Amount(3) && grant.consumed == Amount(4) && grant.remaining == Amount(3))
        #expect(try ledger.verify().isValid)
        ledger.shutdown()
    }

    @Test("grants that expire at the same instant expire in the order they were granted (grant_9 before grant_10)")
    func sameInstantExpiryOrder() async throws {
        let dir = TempDir()
        let clock = ManualClock(Timestamp(secondsSinceEpoch: 1_790_000_000))
        let ledger = try openLedger(dir, clock: clock)
        _ = await ledger.execute(provision("c"))
        _ = await ledger.execute(.defineCurrency(DefineCurrency(currencyId: "t", displayName: "T", symbol: nil)))
        let expireAt = clock.now().adding(microseconds: 3_600_000_000)
        func grant() async -> String? {
            let reply = await ledger.execute(.grantCredits(GrantCredits(customerId: "c", currencyId: "t", amount: Amount(1), grantType: .paid, displayName: nil, priority: 50, effectiveAt: nil, expireAt: expireAt, resourceId: nil, cost: nil, metadata: [], comment: nil, idempotencyKey: nil)))
            if case .applied(.grant(let g)) = reply { return g.grantId }
            return nil
        }
        // Events 1 and 2 are the customer and the currency; filler customers bring the first grant to sequence 9.
        for i in 0..<6 { _ = await ledger.execute(provision("filler\(i)")) }
        let first = try #require(await grant())
        let second = try #require(await grant())
        #expect([first, second] == ["grant_9", "grant_10"])
        clock.advance(seconds: 7200)
        _ = await ledger.execute(.expireCredits)
        let expired = try ledger.store.scan(prefix: KeyLayout.creditLedgerPrefix(customerId: "c")).map { try CreditLedgerEntry.decode($0.value) }
            .filter { $0.eventType == .expired }.compactMap(\.grantId)
        #expect(expired == [first, second])
        #expect(try ledger.verify().isValid)
        ledger.shutdown()
    }
}
