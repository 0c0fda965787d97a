import TallyCore
import Testing

@Suite("entitlement resolution")
struct EntitlementResolveTests {
    let t = Timestamp(secondsSinceEpoch: 1_790_000_000)

    func plan(_ id: String, limit: Amount?, unlimited: Bool = false, period: CalendarPeriod) -> Plan {
        Plan(id: id, displayName: id, entitlements: [PlanEntitlement(featureId: "f", hasAccess: true, usageLimit: limit, hasUnlimitedUsage: unlimited, resetPeriod: period)], trialDays: nil, version: 1)
    }

    @Test("no usageLimit is a limit of 0: it ties with an explicit 0, and a tie goes to the promotion, then to the first plan")
    func noLimitTiesWithZero() {
        let promotion = PromotionalEntitlement(customerId: "c", featureId: "f", usageLimit: nil, hasUnlimitedUsage: false, resetPeriod: .year, endDate: nil, grantedAt: t)
        let zero = plan("zero", limit: .zero, period: .month)
        #expect(ResolvedEntitlement.resolve(featureId: "f", plans: [zero], promotional: promotion, at: t)?.source == "PROMOTIONAL")
        let none = plan("none", limit: nil, period: .day)
        #expect(ResolvedEntitlement.resolve(featureId: "f", plans: [none, zero], promotional: nil, at: t)?.source == "PLAN:none")
        #expect(ResolvedEntitlement.resolve(featureId: "f", plans: [zero, none], promotional: nil, at: t)?.source == "PLAN:zero")
    }

    @Test("unlimited wins, then the highest limit, whatever the order")
    func order() {
        let five = plan("five", limit: Amount(5), period: .month), nine = plan("nine", limit: Amount(9), period: .month)
        let unlimited = plan("unl", limit: nil, unlimited: true, period: .month), none = plan("none", limit: nil, period: .month)
        #expect(ResolvedEntitlement.resolve(featureId: "f", plans: [none, five, nine], promotional: nil, at: t)?.source == "PLAN:nine")
        #expect(ResolvedEntitlement.resolve(featureId: "f", plans: [nine, none, five], promotional: nil, at: t)?.source == "PLAN:nine")
        #expect(ResolvedEntitlement.resolve(featureId: "f", plans: [five, unlimited, nine], promotional: nil, at: t)?.source == "PLAN:unl")
    }
}
