import Foundation
import TallyCore
import TallyEngine
import TallyStorage
import Testing

@Suite("replay for time travel")
struct ReplayTests {
    /// Two customers with grants (one expiring), deductions with dimensions, an overdraft and a
    /// void, interleaved, on a clock that moves and once steps back.
    func interleavedLedger(_ dir: TempDir, clock: ManualClock) async throws -> Ledger {
        let ledger = try openLedger(dir, clock: clock)
        _ = await ledger.execute(.defineCurrency(DefineCurrency(currencyId: "t", displayName: "T", symbol: nil)))
        _ = await ledger.execute(.defineFeature(DefineFeature(featureId: "f", displayName: nil, type: .metered, unit: nil, meter: nil, creditCost: CreditCost(currencyId: "t", amountPerUnit: Amount(2)))))
        for customer in ["alice", "bob"] { _ = await ledger.execute(provision(customer)) }
        func grant(_ customer: String, _ amount: Int, expireAt: Timestamp? = nil) async -> String? {
            let reply = await ledger.execute(.grantCredits(GrantCredits(customerId: customer, currencyId: "t", amount: Amount(amount), grantType: .promotional, displayName: nil, priority: 50, effectiveAt: nil, expireAt: expireAt, resourceId: nil, cost: nil, metadata: [], comment: nil, idempotencyKey: nil)))
            if case .applied(.grant(let g)) = reply { return g.grantId }
            return nil
        }
        func use(_ customer: String, _ value: Int, region: String) async {
            _ = await ledger.execute(.reportUsage(ReportUsage(customerId: customer, featureId: "f", value: Amount(value), updateBehavior: .delta, resourceId: nil, idempotencyKey: nil, timestamp: nil, dimensions: Dimensions([("region", region)]), strict: false)))
        }
        _ = await grant("alice", 100, expireAt: clock.now().adding(microseconds: 1_800_000_000))
        _ = await grant("bob", 40)
        for step in 0..<12 {
            await use(step % 3 == 0 ? "bob" : "alice", step + 1, region: step % 2 == 0 ? "eu" : "us")
            clock.advance(seconds: step == 5 ? -600 : 300)
        }
        if let id = await grant("bob", 7) { _ = await ledger.execute(.voidCreditGrant(grantId: id)) }
        _ = await grant("alice", 30)
        return ledger
    }

    @Test("a replay for one customer gives every record of that customer's as the full replay does, and the same balances")
    func oneCustomer() async throws {
        let dir = TempDir()
        let clock = ManualClock()
        let ledger = try await interleavedLedger(dir, clock: clock)
        let full = try Replay.run(store: ledger.store, snapshot: nil)
        for customer in ["alice", "bob"] {
            let only = try Replay.run(store: ledger.store, snapshot: nil, customer: customer)
            #expect(only.eventsRead == full.eventsRead && only.headHash == full.headHash && only.chainProblem == nil)
            var compared = 0
            only.projections.forEachRecord { key, value in
                #expect(full.projections.projection(key) == value, "record \(String(decoding: key, as: UTF8.self))")
                compared += 1
            }
            #expect(compared < full.projections.count, "the other customer's records are left out")
            // Every record of the full replay that names this customer is in the one-customer replay.
            let name = Array(customer.utf8)
            for key in full.projections.keys where key.bytes.split(separator: 0).contains(where: { $0.elementsEqual(name) }) {
                #expect(only.projections.projection(key.bytes) != nil, "missing \(String(decoding: key.bytes, as: UTF8.self))")
            }
            let at = clock.now()
            let balance = try Projections.balance(customerId: customer, currencyId: "t", resourceId: nil, at: at, in: only.projections)
            #expect(balance == (try Projections.balance(customerId: customer, currencyId: "t", resourceId: nil, at: at, in: full.projections)))
        }
        ledger.shutdown()
    }

    @Test("the asOf lookup finds the last event recorded at or before each instant, also where several share one recordedAt")
    func sequenceAsOf() async throws {
        let dir = TempDir()
        let clock = ManualClock()
        let ledger = try await interleavedLedger(dir, clock: clock)
        let events = try ledger.events(after: 0, limit: 1000)
        func linear(_ t: Timestamp) -> UInt64 { events.last { $0.event.recordedAt <= t }?.event.sequence ?? 0 }
        #expect(Set(events.map(\.event.recordedAt)).count < events.count, "some events share a recordedAt (the clock stepped back)")
        var instants = [Timestamp.distantPast, events[0].event.recordedAt.adding(microseconds: -1)]
        for record in events {
            instants += [-1, 0, 1].map { record.event.recordedAt.adding(microseconds: $0) }
        }
        for t in instants {
            #expect(try Audit.sequence(asOf: t, store: ledger.store, snapshot: nil) == linear(t), "at \(t.rfc3339)")
        }
        ledger.shutdown()
    }
}
