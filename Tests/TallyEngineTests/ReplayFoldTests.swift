import PropertyBased
import TallyCore
import TallyStorage
import Testing

/// `ReplayFold` (replay's fold, with its own table of usage cells) against `Projector.fold` (the
/// writer's): over the same events, both must build exactly the same records, byte for byte.
@Suite("replay's fold builds what the writer's fold builds")
struct ReplayFoldTests {
    static let start = Timestamp(secondsSinceEpoch: 1_790_000_000)

    /// Strings that are equal by Swift's `==` (canonical equivalence) but not byte for byte, beside plain ones.
    static let customers = ["acme", "é", "e\u{301}"]
    static let eventNames = ["api", "login", "é", "e\u{301}"]
    static let values = ["eu", "us", "é", "e\u{301}"]
    static let resources: [String?] = [nil, "r1", "é", "e\u{301}"]
    static let featureIds = ["calls", "tokens", "mau", "peak"]

    /// Folds `events` both ways and expects equal records.
    static func expectSameRecords(_ events: [Event]) throws {
        var writer = MemoryProjections()
        var replay = ReplayFold(expectedRecords: 64)
        for event in events {
            try Projector.fold(event, into: &writer)
            try replay.fold(event)
        }
        let folded = replay.finish().sortedRecords
        let expected = writer.sortedRecords
        #expect(folded.count == expected.count)
        for (a, b) in zip(folded, expected) where a.key != b.key || a.value != b.value {
            Issue.record("replay \(Self.readable(a.key)) ≠ writer \(Self.readable(b.key))")
            break
        }
    }

    static func readable(_ key: [UInt8]) -> String { String(decoding: key.map { $0 == 0 ? UInt8(ascii: "|") : $0 }, as: UTF8.self) }

    static func feature(_ index: Int, variant: Int) -> EventPayload {
        let id = featureIds[index % featureIds.count]
        let eventName = eventNames[variant % eventNames.count]
        let meter: Meter? = switch index % featureIds.count {
        case 0: Meter(eventName: eventName, filters: variant % 3 == 0 ? [MeterFilter(key: "region", op: .notEquals, values: ["us"])] : [], aggregation: .count, field: nil)
        case 1: Meter(eventName: eventName, filters: [MeterFilter(key: "model", op: .exists, values: [])], aggregation: variant % 2 == 0 ? .sum : .min, field: "tokens")
        case 2: Meter(eventName: eventName, filters: [], aggregation: .uniqueCount, field: "user")
        default: variant % 4 == 0 ? nil : Meter(eventName: eventName, filters: [MeterFilter(key: "region", op: .isIn, values: ["eu", "é"])], aggregation: variant % 2 == 0 ? .max : .latest, field: "tokens")
        }
        return .featureDefined(FeatureDefined(feature: Feature(id: id, displayName: nil, type: .metered, unit: nil, meter: meter, creditCost: nil, version: UInt32(variant + 1))))
    }

    /// One step's event from raw numbers (so that the library shrinks them).
    static func payload(_ kind: Int, _ a: Int, _ b: Int, _ c: Int) -> EventPayload {
        let customer = customers[a % customers.count]
        let resource = resources[b % resources.count]
        let at = start.adding(microseconds: Int64(c) * 3_700_000_000 - 400 * 3_600_000_000)  // ~±17 days, out of order
        var pairs: [(String, String)] = [("region", values[b / 4 % values.count])]
        if a % 2 == 0 { pairs.append(("model", "m\(a % 3)")) }
        if c % 3 != 0 { pairs.append(("tokens", c % 7 == 0 ? "x" : "\(c % 50).5")) }
        if b % 5 != 0 { pairs.append(("user", values[c % values.count] + "\(a % 2)")) }
        switch kind {
        case 0:
            return feature(a, variant: b)
        case 1...5:
            return .eventReceived(EventReceived(customerId: customer, eventName: eventNames[c % eventNames.count], idempotencyKey: "k\(a)-\(b)-\(c)", resourceId: resource, timestamp: at, dimensions: Dimensions(pairs)))
        case 6, 7:
            let value = Amount(c % 40)
            return .usageReported(UsageReported(customerId: customer, featureId: featureIds[b % featureIds.count], resourceId: resource, updateBehavior: .delta, value: value, delta: value, timestamp: at, dimensions: Dimensions(Array(pairs.prefix(1))), idempotencyKey: nil))
        default:
            return .usageReset(UsageReset(customerId: customer, featureId: featureIds[b % featureIds.count], resourceId: resource, timestamp: at))
        }
    }

    static let steps = zip(Gen.int(in: 0...8), Gen.int(in: 0...99), Gen.int(in: 0...99), Gen.int(in: 0...199)).array(of: 1...120)

    @Test("random feature definitions and redefinitions, raw events, reported usage and resets, with look-alike Unicode ids")
    func randomLogs() async {
        await propertyCheck(count: 60, input: Self.steps) { steps in
            // Every feature defined first (some steps redefine them), so that most events meter.
            var payloads = Self.featureIds.indices.map { Self.feature($0, variant: $0) }
            payloads += steps.map { Self.payload($0.0, $0.1, $0.2, $0.3) }
            let events = payloads.enumerated().map { Event(sequence: UInt64($0.offset + 1), recordedAt: Self.start, payload: $0.element) }
            try Self.expectSameRecords(events)
        }
    }

    @Test("a customer \"é\" and a customer \"e\\u{301}\" keep cells of their own, as their byte keys do")
    func lookAlikeCustomers() throws {
        var events = [Event(sequence: 1, recordedAt: Self.start, payload: Self.feature(0, variant: 1))]  // calls: COUNT of "login"
        for (index, customer) in ["é", "e\u{301}", "é"].enumerated() {
            let payload = EventPayload.eventReceived(EventReceived(customerId: customer, eventName: "login", idempotencyKey: "k\(index)", resourceId: nil, timestamp: Self.start, dimensions: Dimensions([("region", "eu")])))
            events.append(Event(sequence: UInt64(index + 2), recordedAt: Self.start, payload: payload))
        }
        try Self.expectSameRecords(events)
        var replay = ReplayFold(expectedRecords: 64)
        for event in events { try replay.fold(event) }
        let projections = replay.finish()
        let composed = try Projections.usageTotal(customerId: "é", featureId: "calls", resourceId: nil, period: nil, at: Self.start, in: projections)
        let decomposed = try Projections.usageTotal(customerId: "e\u{301}", featureId: "calls", resourceId: nil, period: nil, at: Self.start, in: projections)
        #expect(composed.value == Amount(2) && decomposed.value == Amount(1))
    }

    @Test("look-alike feature ids both meter an event, and a meter moved to a look-alike event name leaves the old one")
    func lookAlikeFeaturesAndEventNames() throws {
        func count(_ id: String, on eventName: String) -> EventPayload {
            .featureDefined(FeatureDefined(feature: Feature(id: id, displayName: nil, type: .metered, unit: nil, meter: Meter(eventName: eventName, filters: [], aggregation: .count, field: nil), creditCost: nil, version: 1)))
        }
        func event(_ name: String, _ key: String) -> EventPayload {
            .eventReceived(EventReceived(customerId: "acme", eventName: name, idempotencyKey: key, resourceId: nil, timestamp: Self.start, dimensions: .none))
        }
        let payloads = [
            count("é", on: "api"), count("e\u{301}", on: "api"), event("api", "1"),
            count("moved", on: "é"), count("moved", on: "e\u{301}"), event("é", "2"), event("e\u{301}", "3"), event("e\u{301}", "4"),
        ]
        let events = payloads.enumerated().map { Event(sequence: UInt64($0.offset + 1), recordedAt: Self.start, payload: $0.element) }
        try Self.expectSameRecords(events)
        var projections = MemoryProjections()
        for event in events { try Projector.fold(event, into: &projections) }
        func total(_ featureId: String) throws -> Amount {
            try Projections.usageTotal(customerId: "acme", featureId: featureId, resourceId: nil, period: nil, at: Self.start, in: projections).value
        }
        #expect(try total("é") == Amount(1) && total("e\u{301}") == Amount(1))
        #expect(try total("moved") == Amount(2), "only the events named as the meter now reads")
        #expect(try Projections.meteredFeatureIDs(eventName: "é", in: projections).isEmpty)
    }
}
