import TallyCore
import Testing

/// Stored bytes are hostile: a damaged record must fail to decode (and be reported), never make a
/// later step trap. Each case here trapped the daemon before its decoder checked it.
@Suite("damaged records throw instead of trapping")
struct DamagedRecordTests {
    @Test("a count beyond Int in an idempotency result")
    func countBeyondInt() throws {
        var w = ByteWriter()
        w.writeByte(1)  // CommandResult record version
        w.writeByte(12)  // .expired(count:)
        w.writeVarUInt(.max)
        #expect(throws: DecodingError.self) { try CommandResult.decode(w.bytes) }
        var ok = ByteWriter()
        ok.writeByte(1)
        ok.writeByte(12)
        ok.writeVarUInt(3)
        #expect(try CommandResult.decode(ok.bytes) == .expired(count: 3))
    }

    @Test("a key repeated in stored metadata; keys distinct by bytes but canonically equal are two keys")
    func repeatedMapKey() throws {
        let repeated = Customer(id: "c", name: nil, email: nil, metadata: [("k", "1"), ("k", "2")], createdAt: .distantPast, updatedAt: .distantPast, lastSequence: 1)
        #expect(throws: DecodingError.self) { try Customer.decode(repeated.encoded()) }
        let distinct = Customer(id: "c", name: nil, email: nil, metadata: [("e\u{301}", "1"), ("\u{e9}", "2")], createdAt: .distantPast, updatedAt: .distantPast, lastSequence: 1)
        #expect(try Customer.decode(distinct.encoded()).metadata.count == 2)
    }

    @Test("a credit amount beyond the ledger's range; a usage total may be any Int128")
    func amountRange() throws {
        var w = ByteWriter()
        w.writeAmount(Amount(units: .min))
        var r = ByteReader(w.bytes)
        #expect(throws: DecodingError.self) { try r.readAmount() }
        var total = ByteReader(w.bytes)
        #expect(try total.readUsageTotal() == Amount(units: .min))
        var limit = ByteWriter()
        limit.writeAmount(Amount.maxMagnitude)
        var fits = ByteReader(limit.bytes)
        #expect(try fits.readAmount() == Amount.maxMagnitude)
    }

    @Test("a version that leaves no next version; trialDays beyond the API's range")
    func versionAndTrialDays() throws {
        #expect(throws: DecodingError.self) { try Currency.decode(Currency(id: "x", displayName: "X", symbol: nil, version: .max).encoded()) }
        #expect((try? Currency.decode(Currency(id: "x", displayName: "X", symbol: nil, version: 7).encoded()))?.version == 7)
        let plan = Plan(id: "p", displayName: "P", entitlements: [], trialDays: 1 << 62, version: 1)
        #expect(throws: DecodingError.self) { try Plan.decode(plan.encoded()) }
    }
}
