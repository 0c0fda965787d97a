import Testing
import TallyProtocol

@Suite("JSON values and objects")
struct JSONValueTests {
    @Test func literals() {
        let v: JSONValue = ["s": "x", "i": 42, "neg": -7, "b": true, "n": nil, "a": [1, "two", false]]
        #expect(v["s"] == .string("x"))
        #expect(v["i"] == .number("42"))
        #expect(v["neg"] == .number("-7"))
        #expect(v["b"] == .bool(true))
        #expect(v["n"] == .null)
        #expect(v["a"] == .array([.number("1"), .string("two"), .bool(false)]))
        #expect(v["missing"] == nil)
        #expect(JSONValue.integer(UInt64.max) == .number("18446744073709551615"))
        #expect(JSONValue.integer(Int8(-128)) == .number("-128"))
    }

    @Test func dictionaryLiteralOrderPreserved() {
        let v: JSONValue = ["zeta": 1, "alpha": 2, "mid": 3, "beta": 4]
        #expect(v.objectValue?.keys == ["zeta", "alpha", "mid", "beta"])
        #expect(v.jsonText == #"{"zeta":1,"alpha":2,"mid":3,"beta":4}"#)
        let o: JSONObject = ["b": 1, "a": 2]
        #expect(o.map(\.key) == ["b", "a"])
        #expect(o.map(\.value) == [1, 2])
    }

    @Test func scalarTextIsTheTextAsWritten() {
        #expect(JSONValue.string("eu-west").scalarText == "eu-west")
        #expect(JSONValue.number("3.50").scalarText == "3.50")
        #expect(JSONValue.number("-1e3").scalarText == "-1e3")
        #expect(JSONValue.bool(true).scalarText == "true")
        #expect(JSONValue.bool(false).scalarText == "false")
        #expect(JSONValue.null.scalarText == nil)
        #expect(JSONValue.array(["a"]).scalarText == nil)
        #expect(JSONValue.object(["a": "b"]).scalarText == nil)
    }

    @Test func accessorsAndTypeNames() {
        let cases: [(JSONValue, String)] = [
            (.null, "null"), (true, "boolean"), (1, "number"), ("s", "string"), ([], "array"), ([:], "object"),
        ]
        for (v, name) in cases { #expect(v.typeName == name) }
        #expect(JSONValue.string("s").stringValue == "s")
        #expect(JSONValue.number("1").stringValue == nil)
        #expect(JSONValue.bool(false).boolValue == false)
        #expect(JSONValue.null.boolValue == nil)
        #expect(JSONValue.number("1.5").numberText == "1.5")
        #expect(JSONValue.string("1.5").numberText == nil)
        #expect(JSONValue.array([1]).arrayValue == [1])
        #expect(JSONValue.object(["a": 1]).objectValue?["a"] == 1)
        #expect(JSONValue.null.isNull)
        #expect(!JSONValue.bool(false).isNull)
        #expect(JSONValue.array([1])["a"] == nil)
    }

    @Test func objectMutation() {
        var o = JSONObject()
        #expect(o.isEmpty)
        o["a"] = 1
        o["b"] = 2
        o["c"] = 3
        o["a"] = 10  // replaced in place
        #expect(o.keys == ["a", "b", "c"])
        #expect(o["a"] == 10)
        o["b"] = nil  // removed
        #expect(o.keys == ["a", "c"])
        #expect(o.count == 2)
        o["zz"] = nil  // no-op
        #expect(o.count == 2)
        o["b"] = 4  // appended
        #expect(o.keys == ["a", "c", "b"])
    }

    @Test func largeObjectMutationUsesIndexCorrectly() {
        var o = JSONObject()
        for i in 0..<200 { o["k\(i)"] = .integer(i) }
        #expect(o.count == 200)
        #expect(o["k150"] == 150)
        o["k150"] = nil
        #expect(o["k150"] == nil)
        #expect(o["k151"] == 151)
        #expect(o["k199"] == 199)
        for i in 0..<195 where i != 150 { o["k\(i)"] = nil }
        #expect(o.keys == ["k195", "k196", "k197", "k198", "k199"])
        #expect(o["k197"] == 197)
        o["k197"] = "x"
        #expect(o.keys == ["k195", "k196", "k197", "k198", "k199"])
        #expect(o["k197"] == "x")
    }

    @Test func objectEqualityIgnoresOrderAndHashesConsistently() {
        let a: JSONObject = ["x": 1, "y": [true]]
        let b: JSONObject = ["y": [true], "x": 1]
        #expect(a == b)
        #expect(a.hashValue == b.hashValue)
        #expect(Set([JSONValue.object(a), JSONValue.object(b)]).count == 1)
        let c: JSONObject = ["x": 1, "y": [false]]
        #expect(a != c)
        let d: JSONObject = ["x": 1, "z": [true]]
        #expect(a != d)
    }

    @Test func stringsAndNumbersCompareByExactBytes() {
        #expect(JSONValue.string("\u{E9}") != JSONValue.string("e\u{301}"))
        #expect(JSONValue.number("1.0") != JSONValue.number("1"))
        #expect(JSONValue.string("a") != JSONValue.number("a"))
        var o = JSONObject()
        o["\u{E9}"] = 1
        o["e\u{301}"] = 2
        #expect(o.count == 2)
        #expect(Set([JSONValue.string("\u{E9}"), .string("e\u{301}")]).count == 2)
    }

    @Test func objectInitFromPairs() {
        let o = JSONObject([("one", 1), ("two", 2)])
        #expect(o.keys == ["one", "two"])
        #expect(o["two"] == 2)
        let big = JSONObject((0..<50).map { ("k\($0)", JSONValue.integer($0)) })
        #expect(big["k49"] == 49)
        #expect(big.count == 50)
    }
}
