import Foundation
import TallyCore
import TallyEngine
import TallyStorage
import Testing

@Suite("credit ledger entries")
struct CreditLedgerEntryTests {
    @Test("a deduction that repays a leftover overdraft records the repayment in its ledger entry")
    func overdraftRepaidInEntry() async throws {
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
        _ = await grant(10, effectiveAt: clock.now().adding(microseconds: 3_600_000_000))  // scheduled: repays nothing
        clock.advance(seconds: 7200)
        _ = await use(4)  // repays 3, then covers 4
        let entries = try ledger.store.scan(prefix: KeyLayout.creditLedgerPrefix(customerId: "c")).map { try CreditLedgerEntry.decode($0.value) }
        let last = try #require(entries.last)
        #expect(last.eventType == .consumed)
        #expect(last.amount == -Amount(4))
        #expect(last.breakdown.map(\.1) == [Amount(7)])
        #expect(last.overdraftRepaid == Amount(3))
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
