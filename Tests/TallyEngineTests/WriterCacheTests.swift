import Foundation
import TallyCore
import TallyEngine
import TallyStorage
import Testing

@Suite("the writer's cache of projection records across groups")
struct WriterCacheTests {
    /// Commands that read records earlier groups read or changed: the catalog (a feature's cost
    /// redefined), a customer (renamed), the pool and grants (drawn, voided, topped up), the
    /// auto-recharge configuration and entitlements. Each awaited on its own, so each is a group.
    static func script(_ clock: ManualClock) -> [Command] {
        func feature(cost: Int) -> Command {
            .defineFeature(DefineFeature(featureId: "f", displayName: nil, type: .metered, unit: nil, meter: nil, creditCost: CreditCost(currencyId: "t", amountPerUnit: Amount(cost))))
        }
        func grant(_ amount: Int) -> Command {
            .grantCredits(GrantCredits(customerId: "c", currencyId: "t", amount: Amount(amount), grantType: .paid, displayName: nil, priority: 50, effectiveAt: nil, expireAt: nil, resourceId: nil, cost: nil, metadata: [], comment: nil, idempotencyKey: nil))
        }
        func use(_ value: Int, strict: Bool = true, key: String? = nil) -> Command {
            .reportUsage(ReportUsage(customerId: "c", featureId: "f", value: Amount(value), updateBehavior: .delta, resourceId: nil, idempotencyKey: key, timestamp: nil, dimensions: .none, strict: strict))
        }
        return [
            use(1),  // no customer, no feature yet: rejected, and remembered as absent
            .defineCurrency(DefineCurrency(currencyId: "t", displayName: "T", symbol: nil)),
            feature(cost: 1),
            provision("c", name: "A"),
            use(1),  // no credits
            grant(10),
            use(3, key: "u1"),
            feature(cost: 2),
            use(2),
            use(2),  // costs 4, balance 3: refused
            .setAutoRecharge(SetAutoRecharge(customerId: "c", currencyId: "t", isEnabled: true, thresholdValue: Amount(5), targetBalance: Amount(20), maxSpendLimit: .unchanged, grantExpirationPeriod: .unchanged)),
            use(1),  // balance 1: topped up to 20
            .voidCreditGrant(grantId: "grant_4"),
            use(3, key: "u1"),  // a duplicate of the first answer
            provision("c", name: "B"),
            .grantPromotional(GrantPromotional(customerId: "c", featureId: "f", usageLimit: Amount(100), hasUnlimitedUsage: false, resetPeriod: .month, endDate: nil)),
            use(2, strict: false),
            .revokePromotional(customerId: "c", featureId: "f"),
            feature(cost: 3),
            use(1),
            use(50, strict: false),
            grant(500),
            use(5),
        ]
    }

    @Test("answers are the same with the cache as without it (every group reading RocksDB), with a cache too small to keep a group, and after a restart")
    func sameAnswers() async throws {
        func run(cachedRecordsMax: Int) async throws -> [CommandReply] {
            let dir = TempDir()
            let clock = ManualClock()
            var limits = Ledger.Limits()
            limits.cachedRecordsMax = cachedRecordsMax
            var ledger: Ledger! = try Ledger(dataDirectory: dir.path, clock: clock, limits: limits, logger: quietLogger)
            var replies: [CommandReply] = []
            for (index, command) in Self.script(clock).enumerated() {
                if index == 14 {
                    // A restart starts with an empty cache.
                    ledger.shutdown()
                    ledger = nil  // closes the database before it opens again
                    ledger = try Ledger(dataDirectory: dir.path, clock: clock, limits: limits, logger: quietLogger)
                }
                // The key of a reportUsage, bound to its params as the dispatcher would.
                var claim: IdempotencyClaim?
                if case .reportUsage(let usage) = command, let key = usage.idempotencyKey {
                    claim = IdempotencyClaim(key: key, fingerprint: fingerprint("\(key) \(usage.value)"))
                }
                replies.append(await ledger.execute(command, idempotency: claim))
                clock.advance(seconds: 61)
            }
            #expect(try ledger.verify().isValid)
            ledger.shutdown()
            return replies
        }
        let uncached = try await run(cachedRecordsMax: 0)
        #expect(try await run(cachedRecordsMax: 3) == uncached)
        #expect(try await run(cachedRecordsMax: Ledger.Limits().cachedRecordsMax) == uncached)

        // And they are the right answers, not merely the same ones.
        func credit(_ reply: CommandReply) -> CreditOutcome? {
            if case .applied(.usage(let outcome)) = reply { outcome.credit } else { nil }
        }
        #expect(credit(uncached[6]) == CreditOutcome(currencyId: "t", consumed: Amount(3), balance: Amount(7), autoRecharged: nil))
        #expect(credit(uncached[8]) == CreditOutcome(currencyId: "t", consumed: Amount(4), balance: Amount(3), autoRecharged: nil))
        guard case .rejected(let refused) = uncached[9] else { Issue.record("\(uncached[9])"); return }
        #expect(refused.code == .insufficientCredits)
        #expect(credit(uncached[11]) == CreditOutcome(currencyId: "t", consumed: Amount(2), balance: Amount(20), autoRecharged: Amount(19)))
        guard case .duplicate = uncached[13] else { Issue.record("\(uncached[13])"); return }
        #expect(uncached[14].customer?.name == "B")
        #expect(credit(uncached[19]) == CreditOutcome(currencyId: "t", consumed: Amount(3), balance: Amount(12), autoRecharged: nil))
    }
}
